"""MQTT broker addresses and the live bus topics (`pvp/live/<site>/<device>`)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_MQTT_PORT = 1883


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int = DEFAULT_MQTT_PORT
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # TLS: trust this CA (a private one) instead of the system's

    def __repr__(self) -> str:  # never print the password
        return f"BrokerAddress({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"

    __str__ = __repr__

    def client_kwargs(self) -> dict:
        """Keyword arguments for `aiomqtt.Client`."""
        kwargs: dict = {"hostname": self.host, "port": self.port}
        if self.username:
            kwargs.update(username=self.username, password=self.password)
        if self.tls:
            import ssl

            kwargs["tls_context"] = ssl.create_default_context(cafile=self.ca_file)
        return kwargs


def parse_mqtt_url(url: str) -> BrokerAddress:
    """`mqtt://user:pass@host:1883`, `mqtts://host:8883` or `mqtts://host:8883?ca_file=/etc/pvp/ca.crt`
    (TLS against a private CA) to a BrokerAddress."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts", "tcp"):
        raise ValueError(f"PVP_MQTT_URL {url.split('@')[-1]!r}: scheme must be mqtt:// or mqtts://")
    if not parsed.hostname:
        raise ValueError("PVP_MQTT_URL has no host; example: mqtt://127.0.0.1:1883")
    tls = parsed.scheme == "mqtts"
    return BrokerAddress(
        host=parsed.hostname,
        port=parsed.port or (8883 if tls else DEFAULT_MQTT_PORT),
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        tls=tls,
        ca_file=(parse_qs(parsed.query).get("ca_file") or [None])[0],
    )


INSTALLATION_ID_FILE = "installation-id"


def installation_id(folder: Path) -> str:
    """A random id of this installation, made once and kept in `folder` (the landing folder: it
    lives as long as the persistent MQTT sessions it names)."""
    path = Path(folder) / INSTALLATION_ID_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{INSTALLATION_ID_FILE}.{os.getpid()}.tmp")
    tmp.write_text(secrets.token_hex(8) + "\n", encoding="ascii")
    try:
        os.link(tmp, path)  # atomic, and never replaces an id another process made first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def mqtt_client_id(prefix: str | None, folder: Path, site_id: str, device_id: str) -> str:
    """The MQTT client id of one device's persistent session: `<prefix>-<site>-<device>` with the
    configured prefix (PVP_MQTT_CLIENT_ID_PREFIX) or this installation's random id, so another broker
    user cannot guess it and take the session over."""
    return f"{prefix or 'pvp-' + installation_id(folder)}-{site_id}-{device_id}"


def live_topic(prefix: str, site_id: str, device_id: str) -> str:
    return f"{prefix}/{site_id}/{device_id}"


def live_payload(ts: datetime, values: dict[str, float]) -> bytes:
    """One device's newest values: `{"ts": ISO-8601, "values": {metric: value}}`."""
    return json.dumps({"ts": ts.isoformat(), "values": values}).encode()


def device_info_topic(prefix: str, site_id: str, device_id: str) -> str:
    """Where a device's identity is published, retained, beside its live values."""
    return f"{prefix}/{site_id}/{device_id}/info"


def device_info_payload(info: dict[str, str]) -> bytes:
    """`{"device_info": {"manufacturer": ..., "model": ..., "serial_number": ..., "sw_version": ...}}`
    (the fields the device told; a live-values reader skips it: it has no `values`)."""
    return json.dumps({"device_info": info}).encode()
