"""Security on real parts: a Mosquitto with a password file and a TLS listener (a private CA made here with
openssl) refuses anonymous and wrong clients and carries the collector's readings for the right one;
passwords never appear in a log line or a repr; database roles get least privilege."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import psycopg
import pytest

from pv_platform.bus import parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import parse_plant
from pv_platform.services import free_port
from pv_platform.settings import Settings
from pv_platform.storage import redact
from tests.conftest import demo_plant_dict, start_mosquitto

PASSWORD = "Xq7-s3cret-pw"


def _run(*cmd: str, cwd=None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def secured_broker():
    """Mosquitto (the machine's binary) with allow_anonymous false, a password file, a plain and a TLS
    listener on 127.0.0.1."""
    if not shutil.which("mosquitto_passwd") or not shutil.which("openssl"):
        pytest.fail("needs mosquitto, mosquitto_passwd and openssl (Debian: mosquitto, openssl)")
    # a folder of its own, readable by the `mosquitto` user the broker drops to when started as root
    d = Path(tempfile.mkdtemp(prefix="pvp-mqtt-secure-"))
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-subj", "/CN=pvp-test-ca", "-days", "2", cwd=d)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    _run("mosquitto_passwd", "-b", "-c", str(d / "passwd"), "pvp", PASSWORD)
    plain, tls = free_port(), free_port()
    (d / "mosquitto.conf").write_text(
        f"per_listener_settings false\nallow_anonymous false\npassword_file {d / 'passwd'}\n"
        f"persistence false\nlog_dest stderr\n"
        f"listener {plain} 127.0.0.1\n"
        f"listener {tls} 127.0.0.1\ncafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
    )  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o644)
    d.chmod(0o755)
    proc = start_mosquitto(d / "mosquitto.conf", [plain, tls])
    yield {"plain": plain, "tls": tls, "ca": str(d / "ca.crt")}
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


async def _connect(url: str) -> None:
    async with aiomqtt.Client(**parse_mqtt_url(url).client_kwargs(), timeout=5) as client:
        await client.publish("pvp/probe", b"1", qos=1)


def test_the_broker_refuses_anonymous_and_wrong_password(secured_broker):
    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(_connect(f"mqtt://127.0.0.1:{secured_broker['plain']}"))
    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(_connect(f"mqtt://pvp:wrong@127.0.0.1:{secured_broker['plain']}"))
    asyncio.run(_connect(f"mqtt://pvp:{PASSWORD}@127.0.0.1:{secured_broker['plain']}"))
    # TLS: trusted only through the private CA; the system's CAs do not know it
    tls = f"mqtts://pvp:{PASSWORD}@127.0.0.1:{secured_broker['tls']}"
    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(_connect(tls))
    asyncio.run(_connect(f"{tls}?ca_file={secured_broker['ca']}"))


def test_the_collector_collects_over_tls_with_a_password_and_never_logs_it(
    secured_broker, tmp_path, caplog
):
    url = f"mqtts://pvp:{PASSWORD}@127.0.0.1:{secured_broker['tls']}?ca_file={secured_broker['ca']}"
    topic = f"pvp/secure/{tmp_path.name}/wx1"
    plant = parse_plant(demo_plant_dict([free_port()], topic=topic))
    settings = Settings(mqtt_url=url, segment_max_age_s=0.3)
    broker = parse_mqtt_url(url)
    assert PASSWORD not in repr(broker) and PASSWORD not in str(broker)
    ts = datetime.now(UTC) - timedelta(seconds=5)

    async def go():
        stop = asyncio.Event()
        collector = Collector(plant, settings, tmp_path / "landing", broker)
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(1.5)
        async with aiomqtt.Client(**broker.client_kwargs()) as client:
            for i in range(5):
                await client.publish(
                    topic,
                    f'{{"ts": "{(ts + timedelta(seconds=i)).isoformat()}", "poa": {500 + i}, "t_mod": 40}}'.encode(),
                    qos=1,
                )
        await asyncio.sleep(2.0)
        stop.set()
        await task

    with caplog.at_level(logging.DEBUG):
        asyncio.run(go())
        # a wrong password: refused, retried, logged — without the password
        bad = parse_mqtt_url(url.replace(PASSWORD, "Wr0ng-" + PASSWORD[::-1]))

        async def wrong():
            stop = asyncio.Event()
            collector = Collector(plant, settings, tmp_path / "landing2", bad)
            task = asyncio.create_task(collector.run(stop))
            await asyncio.sleep(2.0)
            stop.set()
            await task

        asyncio.run(wrong())
    landed = [
        line for sid in list_closed(tmp_path / "landing")
        for line in read_segment(segment_path(tmp_path / "landing", sid)).csv_body.splitlines()
        if "wx1.poa_irradiance" in line
    ]  # fmt: skip
    assert sorted(float(line.split(",")[2]) for line in landed) == [
        500.0,
        501.0,
        502.0,
        503.0,
        504.0,
    ]
    assert caplog.records, "expected log lines (connection attempts, refusals)"
    for secret in (PASSWORD, PASSWORD[::-1]):
        assert secret not in caplog.text
    assert (
        "Not authorized" in caplog.text
        or "not authorised" in caplog.text.lower()
        or "refused" in caplog.text.lower()
    )


def test_database_roles_least_privilege(pg_admin_url, pg_url, db):
    """`pvp migrate --roles` makes pvp_ingest (collector/ingest: write telemetry and KPIs) and
    pvp_reader (dashboards: read, and sign alerts off); each can do its job and nothing else."""
    db.migrations.ensure_roles({"pvp_ingest": "ingest-pw", "pvp_reader": "reader-pw"})
    db.migrations.ensure_roles({"pvp_ingest": "ingest-pw", "pvp_reader": "reader-pw"})  # idempotent
    assert "reader-pw" not in redact(pg_url.replace("postgres@", "pvp_reader:reader-pw@"))

    def as_role(role: str, password: str) -> psycopg.Connection:
        from sqlalchemy.engine import make_url

        u = make_url(pg_url)
        return psycopg.connect(
            host=u.query.get("host") or u.host, port=u.port, dbname=u.database, user=role, password=password,
            autocommit=True,
        )  # fmt: skip

    with as_role("pvp_reader", "reader-pw") as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (0,)
        for statement in (
            "INSERT INTO entities (key, site_id, device_id, metric) VALUES ('a.b.c', 'a', 'b', 'c')",
            "DELETE FROM kpi_hourly",
            "DROP TABLE samples",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE alerts SET ack_comment = ack_comment WHERE false")
        # signs alerts off through the owner's function only (tests/test_hostile_roles.py)
        assert conn.execute(
            "SELECT pvp_sign_alert(0, 'acknowledge', 'alice', '', NULL)"
        ).fetchone() == (False,)
    with as_role("pvp_ingest", "ingest-pw") as conn:
        conn.execute(
            "INSERT INTO entities (key, site_id, device_id, metric) VALUES ('a.b.c', 'a', 'b', 'c')"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE samples")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE intruder SUPERUSER")
