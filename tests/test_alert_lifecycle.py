"""Alert lifecycle and bookkeeping (issue 17): a total loss is CRITICAL and stays open through the night
until the device produces again; messages keep their opening text; the rate limit judges the minute before
the evaluated time; callbacks and notifiers hear acknowledgements (Python API, HTTP API); the CLI's
severity filter, detail view and paging. Real PostgreSQL, Dagster's own materialization, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import sqlalchemy as sa

from integrations.simulator.scenarios import Scenario
from pv_platform.alerts.engine import AlertLifecycle, EnginePolicy
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import free_port
from pv_platform.storage.alerts import AlertStore
from tests.conftest import demo_plant_dict

PVP = str(Path(sys.executable).parent / "pvp")
DAY = datetime(2026, 6, 21, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def test_a_whole_day_outage_is_critical_through_dusk_until_the_inverter_produces_again(
    db, pg_url, tmp_path
):
    """inv1 trips at 06:00 UTC and stays dead until 05:00 the next morning (Zurich, June: sun from about
    03:30 to 19:30 UTC). The hourly `alerts` asset, run hour by hour as the sensor would, keeps one
    CRITICAL availability_drop open through the evening and night, and resolves it only after inv1 has
    produced again; its message still starts with the opening text."""
    import dagster as dg

    from integrations.simulator.runner import backfill_landing
    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.resources import platform_resources
    from pv_platform.landing import list_closed, read_segment, segment_path

    plant = parse_plant(demo_plant_dict([15020, 15021]))
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    trip = {"kind": "inverter_trip", "device": "inv1", "start": at(6), "end": at(5, day=1)}
    backfill_landing(
        plant,
        landing,
        4,
        at(5, 45),
        at(8, 15, day=1),
        60,
        Scenario.model_validate({"faults": [trip]}),
    )
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    resources = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )
    hours = [at(6) + timedelta(hours=h) for h in range(26)]  # 06:00 .. 07:00 next day
    store = AlertStore(db.engine)
    fp = "availability_drop:testsite:inv1"
    seen = {}
    with dg.instance_for_test() as instance:
        for first, last in ((hours[0], hours[12]), (hours[13], hours[-1])):  # runs of <= 48 h
            dg.materialize(
                [hourly_kpis], instance=instance, resources=resources, raise_on_error=False,
                tags={"dagster/asset_partition_range_start": f"{first:%Y-%m-%d-%H:%M}",
                      "dagster/asset_partition_range_end": f"{last:%Y-%m-%d-%H:%M}"},
            )  # fmt: skip
        for hour in hours:
            assert dg.materialize(
                [alerts], partition_key=f"{hour:%Y-%m-%d-%H:%M}", instance=instance,
                resources=resources,
            ).success  # fmt: skip
            row = store.list().set_index("fingerprint").loc[fp]
            seen[hour.hour + 24 * (hour.day - DAY.day)] = (row["state"], row["severity"])
    row = store.list().set_index("fingerprint").loc[fp]
    assert seen[6] == ("open", "CRITICAL")  # the first hour of the outage is a total loss
    # evening, dusk (19:00-20:00) and the night: still open, never auto-resolved
    assert all(seen[h] == ("open", "CRITICAL") for h in range(6, 24 + 5)), seen
    # 05:00-06:00 next day: inv1 produces again (cleared, held), resolved by the next hour's run
    assert row["state"] == "resolved" and row["resolved_by"] == "auto", seen
    assert row["resolved_at"] >= at(6, day=1)
    lines = row["message"].split("\n")
    # opened by the first 10-minute window; the hour's total loss (CRITICAL) appended, not overwritten
    assert lines[0] == "inv1: no production in the 10 minutes from 2026-06-21 06:00 UTC"
    assert len(lines) > 2 and all(line.startswith("[2026-06-2") for line in lines[1:]), lines
    assert "] inv1: total loss, no production in the hour from 2026-06-21 " in lines[1], lines


def _candidate(message: str, ts: datetime, severity=Severity.MEDIUM) -> AlertCandidate:
    return AlertCandidate("availability_drop", severity, "s", "inv1", message, ts)


def test_messages_keep_the_opening_text_and_severity_only_rises(db):
    engine = AlertLifecycle(AlertStore(db.engine))
    t0 = at(10)
    engine.process([_candidate("availability 60% at 10:00", t0)], t0, {"availability_drop"})
    engine.process([_candidate("availability 50% at 10:05", t0 + timedelta(minutes=5))],
                   t0 + timedelta(minutes=5), {"availability_drop"})  # fmt: skip
    engine.process(
        [_candidate("availability 0% at 10:11", t0 + timedelta(minutes=11), Severity.CRITICAL)],
        t0 + timedelta(minutes=11), {"availability_drop"},
    )  # fmt: skip
    engine.process([_candidate("availability 40% at 10:30", t0 + timedelta(minutes=30))],
                   t0 + timedelta(minutes=30), {"availability_drop"})  # fmt: skip
    row = AlertStore(db.engine).list().iloc[0]
    # 10:05 comes less than 10 min after the opening: not appended; 10:11 and 10:30 are
    assert row["message"].split("\n") == [
        "availability 60% at 10:00",
        "[2026-06-21 10:11 UTC] availability 0% at 10:11",
        "[2026-06-21 10:30 UTC] availability 40% at 10:30",
    ]
    assert row["severity"] == "CRITICAL"  # raised by the 10:11 candidate, not lowered after


def test_the_rate_limit_counts_only_the_minute_before_the_evaluated_time(db):
    engine = AlertLifecycle(AlertStore(db.engine), EnginePolicy(max_new_per_minute=3))
    later = at(15)
    for i in range(5):  # five alerts opened at 15:00
        c = AlertCandidate("hot_spot", Severity.MEDIUM, "s", f"inv{i}", "hot", later)
        engine.process([c], later, set())
    assert len(AlertStore(db.engine).list()) == 3  # the limit holds within its own minute
    # re-evaluating 10:00 (a back-filled hour): alerts opened after it do not count
    past = AlertCandidate("underperformance", Severity.HIGH, "s", "inv1", "PR 0.6", at(10))
    result = engine.process([past], at(10), set())
    assert len(result.opened) == 1 and not result.suppressed


def test_callbacks_of_the_python_api_hear_acknowledge_and_resolve(db, pg_url, tmp_path):
    from pv_platform.api import AlertEngine as ApiAlertEngine
    from pv_platform.settings import Settings

    plant_file = tmp_path / "plant.yaml"
    dump_plant(parse_plant(demo_plant_dict([15020])), plant_file)
    alerts = ApiAlertEngine(Settings(database_url=pg_url, plant_file=plant_file))
    events = []
    alerts.register_callback(lambda event, alert: events.append((event, alert["state"])))
    low = alerts.underperformance_detection(
        0.62, site="testsite", device="inv1", expected_deviation=-0.3, at=at(12)
    )
    assert alerts.acknowledge(low["id"], by="alice", comment="cleaning booked")
    assert alerts.resolve(low["id"], by="alice", comment="cleaned")
    alerts.close()
    assert events == [
        ("opened", "open"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]


class _Hook(BaseHTTPRequestHandler):
    posts: list = []

    def do_POST(self):
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_acknowledgement_through_the_http_api_reaches_the_webhook(db, pg_url, tmp_path):
    from pv_platform.http_api import token_hash
    from tests.test_hostile_roles import PASSWORDS, role_url

    store = AlertStore(db.engine)
    alert = store.open("grid_outage:testsite:meter1", "grid_outage", "CRITICAL", "testsite",
                       "meter1", "grid voltage 0 V", {}, at(11))  # fmt: skip
    (tmp_path / "tokens.json").write_text(
        json.dumps({"tokens": [{"name": "ops", "sha256": token_hash("s3cret-ack"),
                                "scopes": ["alerts:read", "alerts:ack"]}]})
    )  # fmt: skip
    db.migrations.ensure_roles(PASSWORDS)
    _Hook.posts = []
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env |= {"PVP_DATABASE_URL": role_url(pg_url, "pvp_reader"),
            "PVP_API_TOKENS_FILE": str(tmp_path / "tokens.json"),
            "PVP_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_port}/hook"}  # fmt: skip
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([PVP, "api", "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while b"API on http" not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/alerts/{alert['id']}/ack", method="POST",
                data=json.dumps({"comment": "crew on site"}).encode(),
                headers={"Authorization": "Bearer s3cret-ack", "Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            deadline = time.monotonic() + 15
            while not _Hook.posts and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
            hook.shutdown()
    assert [p["event"] for p in _Hook.posts] == ["acknowledged"], log.read_text()
    assert _Hook.posts[0]["alert"]["acknowledged_by"] == "api:ops"


def test_cli_severity_in_any_case_a_detail_view_and_no_silent_cap(db, pg_url):
    with db.engine.begin() as conn:
        for i in range(205):
            conn.execute(
                sa.text(
                    "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
                    " last_seen_at, message, context) VALUES (:f, 'hot_spot', :sev, 's', :d, 'resolved',"
                    " :t, :t, :m, '{\"temperature_c\": 91}')"
                ),
                {"f": f"hot_spot:s:inv{i}", "sev": "HIGH" if i % 2 else "LOW", "d": f"inv{i}",
                 "t": at(0) + timedelta(minutes=i), "m": f"inv{i} hot\n[2026-06-21 10:00 UTC] still hot"},
            )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env["PVP_DATABASE_URL"] = pg_url

    def cli(*args: str) -> str:
        done = subprocess.run(
            [PVP, "alerts", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    high = cli("list", "--severity", "high").splitlines()
    assert len(high) == 102 and all(" HIGH " in line for line in high)  # 102 of 205 are HIGH
    everything = cli("list").splitlines()
    assert len(everything) == 201 and everything[-1].startswith("-- 200 of 205 alerts shown")
    rest = cli("list", "--offset", "200").splitlines()
    assert [line.split()[3] for line in rest] == [f"s/inv{i}" for i in (4, 3, 2, 1, 0)]
    alert_id = everything[0].split()[0]
    shown = cli("show", alert_id)
    assert "inv204 hot" in shown and "[2026-06-21 10:00 UTC] still hot" in shown
    assert '"temperature_c": 91' in shown and "severity: LOW" in shown
