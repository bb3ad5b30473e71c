"""Real services for the tests: PostgreSQL (embedded unless PVP_TEST_DATABASE_URL) and an MQTT broker
(the Mosquitto on 127.0.0.1:1883 when it answers, an in-process amqtt broker otherwise)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from pv_platform.plant import Plant, parse_plant
from pv_platform.services import (
    ThreadedBroker,
    drop_database,
    ensure_database,
    free_port,
    port_is_open,
    start_embedded_postgres,
)
from pv_platform.storage import Database
from pv_platform.storage.urls import sqlalchemy_url


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("PVP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # its own folder, not pytest's basetemp: a second pytest run prunes old basetemps, and with them
    # the data directory of a server still in use
    folder = Path(tempfile.mkdtemp(prefix="pvp-test-pg-"))
    server = start_embedded_postgres(folder / "pg")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_admin_url) -> str:
    """A fresh, empty database for one test."""
    name = f"pvp_test_{uuid.uuid4().hex[:10]}"
    url = ensure_database(pg_admin_url, name)
    yield url
    drop_database(pg_admin_url, name)


def scalar(db: Database, sql: str, params: dict | None = None):
    """The first value of a query's first row (how tests read what the database holds)."""
    with db.engine.connect() as conn:
        return conn.execute(sa.text(sql), params or {}).scalar()


@pytest.fixture
def db(pg_url) -> Database:
    database = Database(pg_url)
    database.migrations.migrate()
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    if port_is_open("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    broker = ThreadedBroker().start()
    yield broker.url
    broker.stop()


def demo_plant_dict(ports: list[int], topic: str = "pvp/test/wx1") -> dict:
    """A site with len(ports) SunSpec inverters and one MQTT weather station."""
    return {
        "sites": [
            {
                "id": "testsite",
                "name": "Test Plant",
                "latitude": 47.37,
                "longitude": 8.54,
                "altitude_m": 410,
                "timezone": "Europe/Zurich",
                "tilt_deg": 30,
                "azimuth_deg": 180,
                "devices": [
                    *(
                        {
                            "id": f"inv{i + 1}",
                            "kind": "inverter",
                            "integration": "sunspec_modbus",
                            "p_dc_kw": 110.0,
                            "p_ac_kw": 100.0,
                            "config": {
                                "host": "127.0.0.1",
                                "port": port,
                                "unit_id": 1,
                                "poll_interval_s": 0.5,
                            },
                        }
                        for i, port in enumerate(ports)
                    ),
                    {
                        "id": "meter1",
                        "kind": "meter",
                        "integration": "mqtt",
                        "config": {
                            "topic": topic.replace("wx1", "meter1"),
                            "fields": {
                                "ac_power": "p_w",
                                "export_energy": "e_export_wh",
                                "import_energy": "e_import_wh",
                                "grid_frequency": "f_hz",
                                "grid_voltage": "u_v",
                                "power_factor": "pf",
                            },
                        },
                    },  # fmt: skip
                    {
                        "id": "wx1",
                        "kind": "weather_station",
                        "integration": "mqtt",
                        "config": {
                            "topic": topic,
                            "fields": {
                                "poa_irradiance": "poa",
                                "module_temperature": "t_mod",
                                "ambient_temperature": "t_amb",
                            },
                        },
                    },
                ],
            }
        ]
    }


@pytest.fixture
def plant() -> Plant:
    return parse_plant(
        demo_plant_dict([free_port(), free_port()], topic=f"pvp/test/{uuid.uuid4().hex[:8]}/wx1")
    )


@pytest.fixture
def landing(tmp_path) -> Path:
    return tmp_path / "landing"


TIMESCALE_DIR = Path(__file__).parent / "timescale"


def _ensure_timescale_packages() -> None:
    """npm install the PGlite TimescaleDB build into tests/timescale/node_modules once (reused after)."""
    if (TIMESCALE_DIR / "node_modules" / "@unni-craftsman" / "pglite").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "the TimescaleDB tests need Node.js and npm on PATH (apt-get install nodejs npm)"
        )
    subprocess.run(
        [npm, "install", "--legacy-peer-deps", "--no-audit", "--no-fund"],
        cwd=TIMESCALE_DIR,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def timescale_url() -> str:
    """A real TimescaleDB 2.23 on PostgreSQL 17 (WASM build served over the wire protocol).

    Its limits: one connection at a time, no COPY FROM STDIN, no background workers (policies run
    through `CALL run_job`), and psycopg must connect with sslmode=disable and some password.
    """
    _ensure_timescale_packages()
    port = free_port()
    proc = subprocess.Popen(
        ["node", "server.mjs", str(port)],
        cwd=TIMESCALE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        deadline = time.monotonic() + 60
        while not line.startswith("READY") and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"TimescaleDB test server exited: {line}{proc.stdout.read()}")
            line = proc.stdout.readline()
        yield f"postgresql://postgres:pvp@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_mosquitto(conf: Path, ports: list[int], timeout_s: float = 10.0) -> subprocess.Popen:
    """Run the machine's Mosquitto on `conf` until every port answers; its own error if it cannot start.
    (The folder must be readable by the `mosquitto` user it drops to when started as root.)"""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while not all(port_is_open("127.0.0.1", p) for p in ports):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"mosquitto did not listen on {ports}"
        time.sleep(0.05)
    return proc


def wait_for(
    predicate, timeout_s: float, what: str, every_s: float = 1.0, progress=None, ignore=()
):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout_s` naming
    `what` (and `progress()` or `progress`, if given). Exceptions in `ignore` count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every_s)
    detail = progress() if callable(progress) else progress
    pytest.fail(
        f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r} {detail or ''})"
    )


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def serial_line(tmp_path):
    """A real serial line: a pseudo-terminal pair joined by socat (simulator on one end, clients on the
    other)."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is needed for the Modbus RTU test (apt-get install socat)")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        if a.exists() and b.exists():
            break
        time.sleep(0.05)
    yield str(a), str(b)
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port, with a login, that keeps what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received: list[dict] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(
                {"to": envelope.rcpt_tos, "data": envelope.content, "login": session.login_data}
            )
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"reports" and auth_data.password == b"s3cret-pw"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield port, received
    controller.stop()


REPO_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def daemon_env(
    tmp_path: Path, pg_url: str, dagster_url: str, plant_file: Path, landing: Path
) -> dict:
    """The environment of a `dagster-daemon` of this repository on its own Dagster database and home
    (5-s sensors, partitions from the plant file), the telemetry database migrated."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != "PVP_KPI_START"}
    env.update(
        PVP_DATABASE_URL=pg_url, PVP_PLANT_FILE=str(plant_file), PVP_LANDING_DIR=str(landing),
        PVP_DAGSTER_STORAGE_URL=sqlalchemy_url(dagster_url, "psycopg2"), DAGSTER_HOME=str(home),
        PVP_SENSOR_INTERVAL_S="5", PVP_KPI_SENSOR_INTERVAL_S="5",
    )  # fmt: skip
    subprocess.run(
        [VENV_BIN / "pvp", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    return env


def start_daemon(env: dict, tmp_path: Path):
    """(the daemon in its own process group, its log file `<tmp_path>/daemon.log`)."""
    log = (tmp_path / "daemon.log").open("w")  # noqa: SIM115 - closed by stop_daemon
    daemon = subprocess.Popen(
        [VENV_BIN / "dagster-daemon", "run", "-w", REPO_DIR / "workspace.yaml"], env=env,
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return daemon, log


def stop_daemon(daemon: subprocess.Popen, log) -> None:
    """SIGTERM to the daemon's group (SIGKILL after 60 s; nothing of the group stays), then its log
    closed."""
    from pv_platform.services import stop_group

    stop_group(daemon)
    log.close()


def backfills(instance) -> list:
    """The platform's history backfills (hourly KPIs, then their days, months, years), newest first."""
    from dagster._core.execution.backfill import BulkActionStatus

    from pv_platform.defs.kpis.backfills import history_backfills

    return history_backfills(instance, list(BulkActionStatus))


KPI_JOBS = (
    "hourly_kpis_job",
    "daily_kpis_job",
    "monthly_kpis_job",
    "yearly_kpis_job",
    "__ASSET_JOB",
)


def kpi_runs(dagster_url: str) -> dict[str, tuple[str, str, str]]:
    """run id -> (its job, its backfill id or '', status) of the runs of a Dagster database that
    compute KPIs: the KPI jobs' and the backfills' (not ingest, reports, loss analytics)."""
    with psycopg.connect(dagster_url) as conn:
        rows = conn.execute(
            "SELECT r.run_id, r.pipeline_name, coalesce(t.value, ''), r.status FROM runs r"
            " LEFT JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'dagster/backfill'"
            " WHERE r.pipeline_name = ANY(%s)",
            (list(KPI_JOBS),),
        ).fetchall()
    return {run_id: (job, backfill, status) for run_id, job, backfill, status in rows}
