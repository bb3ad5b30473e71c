"""Hostile database roles (issue 15): each route is tried by logging in as the role on the real
PostgreSQL, and the service's own work is done as that role too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pv_platform.landing import SegmentWriter, read_segment, segment_path
from pv_platform.readings import Reading
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import scalar

pytestmark = pytest.mark.hostile
PASSWORDS = {"pvp_ingest": "ingest-pw-15", "pvp_reader": "reader-pw-15"}
REPO = Path(__file__).resolve().parent.parent


def role_url(pg_url: str, role: str) -> str:
    return make_url(pg_url).set(username=role, password=PASSWORDS[role]).render_as_string(False)


def connect(pg_url: str, role: str) -> psycopg.Connection:
    u = make_url(pg_url)
    return psycopg.connect(
        host=u.query.get("host") or u.host, port=u.port, dbname=u.database, user=role,
        password=PASSWORDS[role], autocommit=True,
    )  # fmt: skip


@pytest.fixture
def roles(db, pg_url, pg_admin_url):
    """The owner migrated the database and made the two roles (what `pvp migrate --roles` does)."""
    db.migrations.ensure_roles(PASSWORDS)
    yield db
    # a route that worked before the fix must not leak into the other tests of this server
    with psycopg.connect(make_url(pg_admin_url).render_as_string(False).replace("+psycopg", ""),
                         autocommit=True) as admin:  # fmt: skip
        admin.execute("ALTER ROLE pvp_ingest NOSUPERUSER")
        admin.execute("ALTER ROLE pvp_reader NOSUPERUSER")


def _segment(landing: Path, start: datetime, n: int = 6) -> object:
    writer = SegmentWriter(landing, max_rows=10_000)
    writer.add(
        [
            Reading(
                entity="s1.inv1.ac_power", ts=start + timedelta(minutes=10 * i), value=100.0 + i
            )
            for i in range(n)
        ]
    )
    (segment_id,) = writer.close()
    return read_segment(segment_path(landing, segment_id))


def test_ingest_cannot_plant_a_function_the_owner_would_run(roles, pg_url):
    """CVE-2018-1058: a `public.pg_advisory_xact_lock(integer)` would beat pg_catalog's (bigint) one
    in the owner's next `migrate`; and no other object may be created where the owner resolves names."""
    plant = (
        "CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE plpgsql"
        " AS $$ BEGIN EXECUTE 'ALTER ROLE pvp_ingest SUPERUSER'; END $$"
    )
    for role in ("pvp_ingest", "pvp_reader"):
        with connect(pg_url, role) as conn:
            for statement in (
                plant.replace("pvp_ingest", role),
                "CREATE TABLE public.planted (x int)",
                "CREATE VIEW public.planted_v AS SELECT 1",
                "CREATE SCHEMA planted",
                "CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    roles.migrations.migrate()  # the owner's routine migrate
    with connect(pg_url, "pvp_ingest") as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'pvp_ingest'").fetchone() == (False,)  # fmt: skip
    # PUBLIC and every non-owner role: no CREATE on public
    assert scalar(roles, "SELECT has_schema_privilege('pvp_ingest', 'public', 'CREATE')") is False
    assert scalar(roles, "SELECT has_schema_privilege('pvp_reader', 'public', 'CREATE')") is False


def test_owner_code_calls_catalog_functions_by_their_schema(db):
    """Even if something planted a better-matching function in public (here: the superuser itself,
    since no role can any more), the owner's migrate and partition code call pg_catalog's."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'planted function ran'; END $$"
        )
    db.migrations.migrate()
    with db.engine.begin() as conn:
        db.dialect.ensure_partitions(
            conn, datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 2, tzinfo=UTC)
        )
    assert scalar(db, "SELECT to_regclass('public.samples_y2027m03') IS NOT NULL") is True


def test_ingest_cannot_rewrite_schema_migrations(roles, pg_url):
    """Deleting a row of schema_migrations made the owner's next migrate re-run a migration (v3
    drops and recreates the KPI tables): schema_migrations is writable by the owner only."""
    roles.kpis.replace(
        "kpi_hourly", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC),
        __import__("pandas").DataFrame({"site_id": ["s1"], "device_id": ["*"],
            "period_start": [datetime(2026, 6, 1, 12, tzinfo=UTC)], "energy_ac_kwh": [42.0], "samples": [60]}),
    )  # fmt: skip
    for role in ("pvp_ingest", "pvp_reader"):
        with connect(pg_url, role) as conn:
            for statement in (
                "DELETE FROM schema_migrations WHERE version = 3",
                "UPDATE schema_migrations SET version = 99 WHERE version = 3",
                "INSERT INTO schema_migrations (version) VALUES (99)",
                "TRUNCATE schema_migrations",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    assert roles.migrations.migrate() == []
    assert scalar(roles, "SELECT energy_ac_kwh FROM kpi_hourly") == 42.0


def test_ingest_as_the_ingest_role_still_works_including_a_new_month(roles, pg_url, landing):
    """The collector's and Dagster's work as pvp_ingest: the resource's migrate (nothing pending: no
    DDL), a segment into a month that has no partition yet, a second month, KPIs, alerts."""
    ingest = Database(role_url(pg_url, "pvp_ingest"))
    try:
        assert ingest.migrations.migrate() == []
        first = ingest.telemetry.ingest_segment(
            _segment(landing, datetime(2025, 1, 31, 23, 30, tzinfo=UTC))
        )
        assert (first.rows, first.inserted) == (6, 6)
        assert scalar(roles, "SELECT count(*) FROM samples") == 6
        parts = scalar(
            roles,
            "SELECT string_agg(c.relname || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY c.relname)"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass",
        )
        owner = scalar(
            roles, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'samples'"
        )
        assert parts == f"samples_y2025m01:{owner},samples_y2025m02:{owner}"
        store = AlertStore(ingest.engine)
        alert = store.open("r:s1:inv1", "r", "HIGH", "s1", "inv1", "m", {}, datetime.now(UTC))
        store.touch(alert["id"], datetime.now(UTC), "m2", {})
    finally:
        ingest.dispose()


def test_reader_still_reads(roles, pg_url, landing):
    roles.telemetry.ingest_segment(_segment(landing, datetime(2026, 6, 1, 10, tzinfo=UTC)))
    reader = Database(role_url(pg_url, "pvp_reader"))
    try:
        rows = reader.telemetry.hourly_rollup(
            datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)
        )
        assert rows["n"].tolist() == [6]
        assert reader.kpis.read(
            "kpi_hourly", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)
        ).empty
        assert AlertStore(reader.engine).list().empty
    finally:
        reader.dispose()


def test_pvp_alerts_under_the_reader_role_does_not_migrate(roles, pg_url):
    """`pvp alerts list` as pvp_reader ran `migrate` (DDL it may not do) and failed: only `pvp
    migrate` migrates."""
    AlertStore(roles.engine).open("r:s1:inv1", "rule_x", "HIGH", "s1", "inv1", "inverter down", {}, datetime.now(UTC))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env["PVP_DATABASE_URL"] = role_url(pg_url, "pvp_reader")
    pvp = str(Path(sys.executable).parent / "pvp")
    done = subprocess.run([pvp, "alerts", "list"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rule_x: inverter down" in done.stdout
    alert_id = AlertStore(roles.engine).list()["id"].iloc[0]
    ack = subprocess.run([pvp, "alerts", "ack", str(alert_id), "--by", "alice"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ack.returncode == 0 and f"alert {alert_id} acknowledged" in ack.stdout, ack.stderr
    assert AlertStore(roles.engine).list()["acknowledged_by"].tolist() == ["alice"]


def test_reader_only_signs_alerts_off_never_rewrites_them(roles, pg_url):
    """pvp_reader could UPDATE any column of any alert; now it may only acknowledge or resolve, through
    the owner's pvp_sign_alert, and the sign-off time is the server's, not the caller's."""
    store = AlertStore(roles.engine)
    opened = datetime.now(UTC) - timedelta(hours=2)
    a = store.open(
        "f:s1:inv1", "equipment_fault", "CRITICAL", "s1", "inv1", "GROUND_FAULT", {}, opened
    )
    b = store.open(
        "f:s1:inv2", "equipment_fault", "CRITICAL", "s1", "inv2", "ARC_FAULT", {}, opened
    )
    with connect(pg_url, "pvp_reader") as conn:
        for statement in (
            "UPDATE alerts SET message = 'all good', severity = 'INFO'",
            "UPDATE alerts SET state = 'resolved', resolved_by = 'nobody'",
            "UPDATE alerts SET acknowledged_by = 'alice' WHERE false",
            "UPDATE alerts SET opened_at = now()",
            "DELETE FROM alerts",
            "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
            " last_seen_at, message) VALUES ('x', 'x', 'LOW', 's', 'd', 'open', now(), now(), 'fake')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        signed = conn.execute(
            "SELECT pvp_sign_alert(%s, 'acknowledge', 'alice', 'crew booked', '2000-01-01')",
            (a["id"],),
        ).fetchone()
        assert signed == (True,)
        for bad in ("", "   ", "x" * 201):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("SELECT pvp_sign_alert(%s, 'resolve', %s, '', NULL)", (b["id"], bad))
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT pvp_sign_alert(%s, 'reopen', 'alice', '', NULL)", (b["id"],))
    reader = Database(role_url(pg_url, "pvp_reader"))
    try:
        rstore = AlertStore(reader.engine)
        assert rstore.resolve(b["id"], "bob", "fuse replaced", datetime(2000, 1, 1, tzinfo=UTC))
        assert not rstore.resolve(b["id"], "bob", "again", datetime.now(UTC))  # already resolved
    finally:
        reader.dispose()
    rows = store.list().set_index("id")
    now = datetime.now(UTC)
    first, second = rows.loc[a["id"]], rows.loc[b["id"]]
    assert (first["state"], first["acknowledged_by"], first["ack_comment"]) == (
        "acknowledged",
        "alice",
        "crew booked",
    )
    assert (second["state"], second["resolved_by"], second["resolve_comment"]) == (
        "resolved",
        "bob",
        "fuse replaced",
    )
    for at in (first["acknowledged_at"], second["resolved_at"]):
        assert (
            abs((at - now).total_seconds()) < 60
        )  # the server's clock, not the caller's 2000-01-01
    assert (first["message"], first["severity"], second["message"]) == (
        "GROUND_FAULT",
        "CRITICAL",
        "ARC_FAULT",
    )
    assert first["opened_at"] == opened


# -- MQTT: client ids and the shipped broker ACL (item 10) ---------------------------------------------


def test_mqtt_client_ids_are_unguessable_unique_per_installation_and_configurable(tmp_path):
    """`pvp-<site>-<device>` let any broker user take over the collector's persistent session."""
    from integrations.mqtt import setup
    from pv_platform.plant import parse_plant
    from pv_platform.settings import Settings
    from tests.conftest import demo_plant_dict

    plant = parse_plant(demo_plant_dict([1502]))
    site = plant.sites[0]
    wx1 = next(d for d in site.devices if d.id == "wx1")

    def client_id(**settings) -> str:
        return setup(site, wx1, Settings(mqtt_url="mqtt://127.0.0.1:1883", **settings)).identifier

    first = client_id(landing_dir=tmp_path / "a")
    installation = (tmp_path / "a" / "installation-id").read_text().strip()
    assert len(installation) == 16 and first == f"pvp-{installation}-testsite-wx1"
    assert (
        client_id(landing_dir=tmp_path / "a") == first
    )  # stable: the persistent session survives restarts
    assert client_id(landing_dir=tmp_path / "b") not in (
        first,
        "pvp-testsite-wx1",
    )  # another installation
    assert (
        client_id(landing_dir=tmp_path / "a", mqtt_client_id_prefix="plant7-x93kq")
        == "plant7-x93kq-testsite-wx1"
    )
    with pytest.raises(ValueError, match="mqtt_client_id_prefix"):
        Settings(mqtt_client_id_prefix="a/#")


@pytest.fixture
def acl_broker(tmp_path_factory):
    """The machine's Mosquitto with the shipped deploy/mosquitto.acl, one password per service user."""
    import shutil
    import tempfile

    from pv_platform.services import free_port
    from tests.conftest import start_mosquitto

    d = Path(tempfile.mkdtemp(prefix="pvp-mqtt-acl-"))  # readable by the `mosquitto` user
    shutil.copy(REPO / "deploy" / "mosquitto.acl", d / "mosquitto.acl")
    users = {"pvp_collector": "c-pw-15", "pvp_dashboard": "d-pw-15", "pvp_device": "v-pw-15"}
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(d / "passwd"), user, password],
                       check=True, capture_output=True)  # fmt: skip
    port = free_port()
    (d / "mosquitto.conf").write_text(
        f"per_listener_settings false\nallow_anonymous false\npassword_file {d / 'passwd'}\n"
        f"acl_file {d / 'mosquitto.acl'}\npersistence false\nlog_dest stderr\nlistener {port} 127.0.0.1\n"
    )
    for f in d.iterdir():
        f.chmod(0o644)
    d.chmod(0o755)
    proc = start_mosquitto(d / "mosquitto.conf", [port])
    yield {user: f"mqtt://{user}:{pw}@127.0.0.1:{port}" for user, pw in users.items()}
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


def test_the_shipped_broker_acl_keeps_each_service_to_its_topics(acl_broker):
    """A dashboard (reader) user can neither subscribe to device readings nor publish readings or live
    values; a device can neither read nor fake the live bus; the collector reads devices, writes live."""
    import asyncio

    import aiomqtt

    from pv_platform.bus import parse_mqtt_url

    def client(user: str) -> aiomqtt.Client:
        return aiomqtt.Client(**parse_mqtt_url(acl_broker[user]).client_kwargs(), timeout=5)

    async def collect(c: aiomqtt.Client, seconds: float) -> list[tuple[str, bytes]]:
        got = []
        try:
            async with asyncio.timeout(seconds):
                async for m in c.messages:
                    got.append((str(m.topic), bytes(m.payload)))
        except TimeoutError:
            pass
        return got

    async def go():
        async with (
            client("pvp_collector") as coll,
            client("pvp_dashboard") as dash,
            client("pvp_device") as dev,
        ):
            granted = {
                "collector devices": await coll.subscribe("pvp/devices/#", qos=1),
                "dashboard devices": await dash.subscribe("pvp/devices/#", qos=1),
                "dashboard everything": await dash.subscribe("#", qos=1),
                "dashboard live": await dash.subscribe("pvp/live/#", qos=1),
                "device live": await dev.subscribe("pvp/live/#", qos=1),
            }
            await dev.publish("pvp/devices/s1/wx1", b"device-reading", qos=1)
            await dash.publish("pvp/devices/s1/wx1", b"forged-by-dashboard", qos=1)
            await dash.publish("pvp/live/s1/inv1", b"live-forged-by-dashboard", qos=1)
            await dev.publish("pvp/live/s1/inv1", b"live-forged-by-device", qos=1)
            await coll.publish("pvp/live/s1/wx1", b"live-from-collector", qos=1)
            return (
                granted,
                await collect(coll, 1.5),
                await collect(dash, 0.5),
                await collect(dev, 0.5),
            )

    # the production broker uses this file, and every service its own user
    import yaml

    assert (
        "acl_file /mosquitto/config/mosquitto.acl"
        in (REPO / "deploy" / "mosquitto.conf").read_text()
    )
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert (
        "./deploy/mosquitto.acl:/mosquitto/config/mosquitto.acl:ro"
        in compose["services"]["mosquitto"]["volumes"]
    )
    assert "//pvp_collector:" in compose["x-pvp-env"]["PVP_MQTT_URL"]
    assert "//pvp_dashboard:" in compose["services"]["dashboard"]["environment"]["PVP_MQTT_URL"]
    granted, coll_got, dash_got, dev_got = asyncio.run(go())
    codes = {k: [getattr(rc, "value", rc) for rc in v] for k, v in granted.items()}
    assert codes["collector devices"] == [
        1
    ]  # Mosquitto 2.0 grants any filter, delivers only what the ACL allows
    assert codes["dashboard live"] == [1]
    assert coll_got == [("pvp/devices/s1/wx1", b"device-reading")]  # nothing forged reached it
    assert dash_got == [
        ("pvp/live/s1/wx1", b"live-from-collector")
    ]  # no device reading, no forgery
    assert dev_got == []  # a device reads nothing


def test_the_collector_and_dashboard_containers_never_hold_the_owner_login():
    """The schema owner (the database superuser of the compose file) is what the roles protect: its
    password reaches db-init, the database itself and Dagster's own storage only."""
    import yaml

    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    holders = sorted(
        n
        for n, s in services.items()
        if "PVP_DB_PASSWORD" in json.dumps(s.get("environment") or {})
    )
    assert holders == [
        "dagster-code",
        "dagster-daemon",
        "dagster-webserver",
        "db-init",
        "timescaledb",
    ]
    assert "pvp_ingest" in services["collector"]["environment"]["PVP_DATABASE_URL"]
    assert "pvp_reader" in services["dashboard"]["environment"]["PVP_DATABASE_URL"]
