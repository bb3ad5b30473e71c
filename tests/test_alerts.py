"""The alert engine on the simulator's fault scenarios: each rule fires on its fault within its delay, with
the right severity and device; a clean day raises nothing; cooldown, rate limit and the lifecycle hold
across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from integrations.simulator.devices import backfill_frames
from integrations.simulator.scenarios import Scenario
from pv_platform.alerts import AlertCandidate, AlertLifecycle, RealtimeRules, Severity
from pv_platform.alerts.engine import EnginePolicy
from pv_platform.plant import parse_plant
from pv_platform.readings import Reading
from pv_platform.storage.alerts import AlertStore
from tests.conftest import demo_plant_dict

DAY = datetime(2026, 6, 21, tzinfo=UTC)
STEP_S = 10  # the collector polls every few seconds; 10 s keeps the replay fast


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def run(db, plant, start, end, scenario=None, policy=None, fleet=None, step_s=STEP_S):
    frames = backfill_frames(plant.sites[0], 4, start, end, step_s, scenario)
    readings: dict[pd.Timestamp, list[Reading]] = {}
    for device_id, frame in frames.items():
        for metric in frame.columns:
            for ts, value in frame[metric].items():
                readings.setdefault(ts, []).append(
                    Reading.model_construct(
                        entity=f"testsite.{device_id}.{metric}",
                        ts=ts.to_pydatetime(),
                        value=float(value),
                    )
                )
    rules = RealtimeRules(plant, fleet or {})
    engine = AlertLifecycle(AlertStore(db.engine), policy or EnginePolicy())
    events = []
    engine.register_callback(lambda event, alert: events.append((event, alert["fingerprint"])))
    for ts in pd.date_range(start, end, freq=f"{step_s}s", inclusive="left"):
        rules.feed(readings.get(ts, []), ts.to_pydatetime())
        engine.process(rules.evaluate(ts.to_pydatetime()), ts.to_pydatetime())
    return engine, AlertStore(db.engine).list(), events


@pytest.fixture
def plant():
    return parse_plant(demo_plant_dict([15020, 15021, 15022]))


def test_a_clean_day_raises_no_alert(db, plant):
    _, alerts, events = run(db, plant, at(5), at(17))
    assert alerts.empty, alerts[["fingerprint", "message"]].to_string()
    assert events == []


def test_each_fault_raises_its_alert_in_time_and_resolves(db, plant):
    scenario = Scenario.model_validate(
        {
            "faults": [
                {
                    "kind": "inverter_trip",
                    "device": "inv1",
                    "start": at(10),
                    "end": at(10, 20),
                    "events": ["GROUND_FAULT"],
                },
                {"kind": "grid_outage", "start": at(10, 40), "end": at(10, 50)},
                {
                    "kind": "string_disconnect",
                    "device": "inv2",
                    "mppt": 1,
                    "start": at(11, 10),
                    "end": at(11, 40),
                },
                {
                    "kind": "hot_spot",
                    "device": "inv3",
                    "mppt": 2,
                    "delta_c": 30,
                    "start": at(11, 10),
                    "end": at(11, 40),
                },
                {"kind": "device_silent", "device": "wx1", "start": at(11, 50), "end": at(12, 10)},
            ]
        }
    )
    _, alerts, events = run(db, plant, at(9, 30), at(12, 30), scenario)
    by_fp = {row.fingerprint: row for row in alerts.itertuples()}
    expected = {
        # fingerprint: (fault start, severity, stated delay [s])
        "equipment_fault:testsite:inv1": (at(10), "CRITICAL", 10 + 2 * STEP_S),
        "grid_outage:testsite:meter1": (at(10, 40), "CRITICAL", 10 + 2 * STEP_S),
        "string_fault:testsite:inv2:mppt1": (at(11, 10), "HIGH", 2 * STEP_S),
        "hot_spot:testsite:inv3:mppt2": (at(11, 10), "MEDIUM", 2 * STEP_S),
        "communication_lost:testsite:wx1": (at(11, 50), "HIGH", 60 + 2 * STEP_S),
    }
    assert set(by_fp) == set(expected), sorted(by_fp)
    for fp, (start, severity, delay_s) in expected.items():
        row = by_fp[fp]
        opened = pd.Timestamp(row.opened_at).to_pydatetime()
        assert start <= opened <= start + timedelta(seconds=delay_s), (fp, opened)
        assert row.severity == severity
        assert (
            row.state == "resolved" and row.resolved_by == "auto"
        )  # cleared, then resolved after the hold
    assert "GROUND_FAULT" in by_fp["equipment_fault:testsite:inv1"].message
    assert ("opened", "equipment_fault:testsite:inv1") in events and (
        "resolved",
        "equipment_fault:testsite:inv1",
    ) in events


def test_cooldown_rate_limit_and_lifecycle_survive_a_restart(db, plant):
    store = AlertStore(db.engine)
    engine = AlertLifecycle(
        store, EnginePolicy(cooldown_s={"*": 600.0}, max_new_per_minute=5, auto_resolve_after_s=60)
    )
    t0 = at(12)
    c = AlertCandidate("over_temperature", Severity.HIGH, "testsite", "inv1", "hot", t0)
    assert len(engine.process([c], t0).opened) == 1
    assert engine.process([c], t0 + timedelta(seconds=10)).updated == 1  # deduplicated, count 2
    engine.process([], t0 + timedelta(seconds=20))  # clear from now
    assert (
        len(engine.process([], t0 + timedelta(seconds=90)).resolved) == 1
    )  # clear for 70 s > 60 s
    again = engine.process([c], t0 + timedelta(seconds=120))  # returns within the 600-s cooldown
    assert again.opened == [] and "cooldown" in again.suppressed[0][1]
    # rate limit: 8 new fingerprints in one minute, 5 open
    burst = [
        AlertCandidate("string_fault", Severity.HIGH, "testsite", f"inv{i}", "low", t0, key="mppt1")
        for i in range(8)
    ]
    result = engine.process(burst, t0 + timedelta(minutes=30))
    assert len(result.opened) == 5 and sum("rate limit" in why for _, why in result.suppressed) == 3
    # acknowledge and resolve by hand, then a "restart": a new engine on the same table sees it all
    first, second = result.opened[0]["id"], result.opened[1]["id"]
    assert engine.acknowledge(first, "alice", "crew on the way")
    assert engine.resolve(second, "bob", "fuse replaced")
    restarted = AlertLifecycle(AlertStore(db.engine))
    rows = restarted.store.list().set_index("id")
    assert (
        rows.loc[first, "state"] == "acknowledged" and rows.loc[first, "acknowledged_by"] == "alice"
    )
    assert (
        rows.loc[second, "state"] == "resolved"
        and rows.loc[second, "resolve_comment"] == "fuse replaced"
    )
    assert rows.loc[rows["rule"] == "over_temperature", "count"].iloc[0] == 2


def test_a_failing_callback_never_loses_the_alert(db):
    engine = AlertLifecycle(AlertStore(db.engine))
    seen = []

    def broken(event, alert):
        raise RuntimeError("webhook down")

    async def async_ok(event, alert):
        seen.append(alert["fingerprint"])

    engine.register_callback(broken)
    engine.register_callback(lambda e, a: seen.append(a["fingerprint"]))
    result = engine.process(
        [AlertCandidate("grid_outage", Severity.CRITICAL, "s", "meter1", "down", at(12))], at(12)
    )
    assert len(result.opened) == 1 and seen == ["grid_outage:s:meter1"]
    assert AlertStore(db.engine).list()["state"].tolist() == ["open"]


def test_collector_raises_communication_loss_and_notifies_and_the_cli_handles_it(
    db, pg_url, mqtt_url, tmp_path
):
    """`pvp collect` with an inverter that never answers: a HIGH communication_lost alert is stored and
    published on pvp/alerts/<site>/HIGH and posted to a webhook; `pvp alerts` lists, acknowledges, resolves."""
    import asyncio
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    import uuid
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from pathlib import Path

    import aiomqtt

    from pv_platform.bus import parse_mqtt_url
    from pv_platform.plant import dump_plant
    from pv_platform.services import free_port

    posts, attempts = [], []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # the first attempt fails: the notifier must retry
            attempts.append(1)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if len(attempts) == 1:
                self.send_response(503)
            else:
                posts.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    http = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    site = f"a{uuid.uuid4().hex[:6]}"
    plant_file = tmp_path / "plant.yaml"
    dump_plant(parse_plant({"sites": [{"id": site, "name": "A", "latitude": 47, "longitude": 8, "devices": [
        {"id": "inv9", "kind": "inverter", "integration": "sunspec_modbus", "p_dc_kw": 10, "p_ac_kw": 9,
         "config": {"host": "127.0.0.1", "port": free_port(), "poll_interval_s": 1}}]}]}), plant_file)  # fmt: skip
    env = dict(
        os.environ, PVP_PLANT_FILE=str(plant_file), PVP_LANDING_DIR=str(tmp_path / "landing"), PVP_MQTT_URL=mqtt_url,
        PVP_DATABASE_URL=pg_url, PVP_ALERT_STALE_AFTER_S="3", PVP_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{http.server_port}/hook",
    )  # fmt: skip
    received = []

    async def listen():
        async with aiomqtt.Client(**parse_mqtt_url(mqtt_url).client_kwargs()) as client:
            await client.subscribe(f"pvp/alerts/{site}/#", qos=1)
            async with asyncio.timeout(40):
                async for message in client.messages:
                    received.append((str(message.topic), json.loads(message.payload)))
                    return

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    time.sleep(0.5)
    pvp = str(Path(sys.executable).parent / "pvp")
    collector = subprocess.Popen(
        [pvp, "collect"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        listener.join(40)
        assert received, "no alert was published on the MQTT bus"
        topic, payload = received[0]
        assert topic == f"pvp/alerts/{site}/HIGH" and payload["event"] == "opened"
        assert (
            payload["alert"]["rule"] == "communication_lost"
            and payload["alert"]["device_id"] == "inv9"
        )
        deadline = (
            time.monotonic() + 15
        )  # the webhook's first attempt got 503: it retries after 1 s
        while not posts and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(20)
    assert (
        posts
        and posts[0]["alert"]["fingerprint"] == f"communication_lost:{site}:inv9"
        and len(attempts) >= 2
    )
    http.shutdown()

    def cli(*args):
        return subprocess.run(
            [pvp, "alerts", *args], env=env, capture_output=True, text=True, timeout=60
        )

    listed = cli("list", "--site", site)
    assert "communication_lost" in listed.stdout and "HIGH" in listed.stdout, (
        listed.stdout + listed.stderr
    )
    alert_id = int(listed.stdout.split()[0])
    assert (
        cli("ack", str(alert_id), "--by", "carol", "--comment", "checking the gateway").returncode
        == 0
    )
    assert cli("ack", str(alert_id)).returncode == 1  # already acknowledged
    assert cli("resolve", str(alert_id), "--by", "carol").returncode == 0
    row = AlertStore(db.engine).list(site_id=site).iloc[0]
    assert (row["state"], row["acknowledged_by"], row["ack_comment"], row["resolved_by"]) == (
        "resolved",
        "carol",
        "checking the gateway",
        "carol",
    )


def test_kpi_alerts_asset_raises_underperformance_availability_and_data_quality(
    db, pg_url, tmp_path
):
    import dagster as dg

    from integrations.simulator.runner import backfill_landing
    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.resources import platform_resources
    from pv_platform.landing import SegmentWriter, list_closed, read_segment, segment_path
    from pv_platform.plant import dump_plant

    plant = parse_plant(demo_plant_dict([15020, 15021]))
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    scenario = Scenario.model_validate(
        {
            "faults": [
                {"kind": "inverter_trip", "device": "inv1", "start": at(10, 15), "end": at(10, 45)},
                {
                    "kind": "soiling_ramp",
                    "device": "inv2",
                    "loss_per_day": 20.0,
                    "max_loss": 0.4,
                    "start": at(11),
                },
            ]
        }
    )
    backfill_landing(plant, landing, 4, at(8, 45), at(13, 15), 60, scenario)
    writer = SegmentWriter(landing, writer_name="bad")
    writer.add(
        [
            Reading(
                entity="testsite.wx1.poa_irradiance",
                ts=at(12, 30) + timedelta(seconds=30),
                value=4000.0,
            )
        ]
    )  # impossible
    writer.close()
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    platform = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )
    tags = {
        "dagster/asset_partition_range_start": "2026-06-21-09:00",
        "dagster/asset_partition_range_end": "2026-06-21-12:00",
    }
    with dg.instance_for_test() as instance:
        # the 12:00 hour fails its blocking physical_ranges check, so the run reports failure; the rows are written
        dg.materialize(
            [hourly_kpis],
            instance=instance,
            resources=platform,
            tags=tags,
            raise_on_error=False,
        )
        assert len(db.kpis.read("kpi_hourly", at(9), at(13))) == 4 * 3
        for hour in (
            "2026-06-21-09:00",
            "2026-06-21-10:00",
            "2026-06-21-11:00",
            "2026-06-21-12:00",
        ):
            assert dg.materialize(
                [alerts], partition_key=hour, instance=instance, resources=platform
            ).success
    rows = AlertStore(db.engine).list().set_index("fingerprint")
    assert set(rows.index) == {
        "availability_drop:testsite:inv1",  # 30 minutes tripped in the 10:00 hour
        "underperformance:testsite:inv2",  # soiled from 11:00
        "data_quality:testsite:wx1:physical_ranges",  # 4000 W/m2 at 12:30: the sensor's
    }, sorted(rows.index)
    assert rows.loc["availability_drop:testsite:inv1", "severity"] == "MEDIUM"
    # 30 tripped minutes on a minute grid: the minute where power falls still averages > 0, so 29 count
    context = rows.loc["availability_drop:testsite:inv1", "context"]
    assert (
        0.48 <= context["availability"] <= 0.55
        and "29 min forced outage" in rows.loc["availability_drop:testsite:inv1", "message"]
    )
    assert rows.loc["underperformance:testsite:inv2", "severity"] == "HIGH"
    assert (
        "testsite.wx1.poa_irradiance"
        in rows.loc["data_quality:testsite:wx1:physical_ranges", "message"]
    )
    # the trip ended in the 10:00 hour: by 12:00 the availability alert is clear (resolved after the hold)
    assert rows.loc["availability_drop:testsite:inv1", "state"] in ("open", "resolved")


def opened_within(alerts: pd.DataFrame, fingerprint: str, start: datetime, delay_s: float) -> bool:
    row = alerts.set_index("fingerprint").loc[fingerprint]
    return (
        start
        <= pd.Timestamp(row["opened_at"]).to_pydatetime()
        <= start + timedelta(seconds=delay_s)
    )


def test_low_efficiency_and_per_site_thresholds_from_the_plant_file(db):
    site_plant = demo_plant_dict([15020, 15021, 15022])
    # this site is stricter than the defaults: hot spots from +8 °C (default 15), efficiency judged after 2 min
    site_plant["sites"][0]["alerts"] = {"hot_spot_delta_c": 8, "efficiency_hold_s": 120}
    plant = parse_plant(site_plant)
    scenario = Scenario.model_validate(
        {
            "faults": [
                {"kind": "efficiency_drop", "device": "inv3", "loss": 0.12, "start": at(10), "end": at(10, 30)},
                {"kind": "hot_spot", "device": "inv1", "mppt": 1, "delta_c": 10, "start": at(11), "end": at(11, 20)},
                # one string at 65 % of its peers: not a dead string, so no real-time string fault
                {"kind": "string_degradation", "device": "inv2", "mppt": 2, "loss": 0.35, "start": at(11, 30), "end": at(12)},
            ]
        }
    )  # fmt: skip
    _, alerts, _ = run(db, plant, at(9, 45), at(12, 15), scenario)
    assert set(alerts["fingerprint"]) == {
        "low_efficiency:testsite:inv3",
        "hot_spot:testsite:inv1:mppt1",
    }
    assert opened_within(alerts, "low_efficiency:testsite:inv3", at(10, 2), 2 * STEP_S)
    assert opened_within(alerts, "hot_spot:testsite:inv1:mppt1", at(11), 2 * STEP_S)
    low = alerts.set_index("fingerprint").loc["low_efficiency:testsite:inv3"]
    # PVWatts efficiency ~0.96 at this load, 12 % less converted: 0.96 x 0.88 = 0.845
    assert low["severity"] == "MEDIUM" and 0.83 < low["context"]["efficiency"] < 0.86

    # the same faults on a plant file without overrides: the +10 °C hot spot stays under the default 15 °C,
    # and a fleet-wide setting (PVP_ALERT_THRESHOLDS) lengthens the efficiency hold past the 30-min drop
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alerts")
    plain = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    _, alerts, _ = run(
        db, plain, at(9, 45), at(12, 15), scenario, fleet={"efficiency_hold_s": 3600}
    )
    assert alerts.empty, alerts["fingerprint"].tolist()


def test_threshold_errors_name_the_file_the_site_and_the_field():
    from pv_platform.alerts.limits import fleet_limits
    from pv_platform.plant import PlantFileError

    bad = demo_plant_dict([15020])
    bad["sites"][0]["alerts"] = {"pr_minimum": 0.7}
    with pytest.raises(PlantFileError) as err:
        parse_plant(bad, "plants/zurich.yaml")
    assert "plants/zurich.yaml" in str(err.value) and "pr_minimum" in str(err.value)
    with pytest.raises(
        ValueError, match=r"PVP_ALERT_THRESHOLDS: min_efficiency: .*less than or equal to 1"
    ):
        fleet_limits({"min_efficiency": 1.5})
    # a window length that does not tile the hour (the window KPIs add up to the hourly ones)
    with pytest.raises(ValueError, match=r"window_min: Input should be 5, 10, 15, 20, 30 or 60"):
        fleet_limits({"window_min": 25})
    assert fleet_limits({"window_min": 15}) == {"window_min": 15}


def _kpi_alerts(db, plant, landing, start: datetime, end: datetime) -> pd.DataFrame:
    """The KPI path the `alerts` asset wires, hour by hour: ingest, hourly KPIs, then the KPI rules over the
    stored rows and string rollups through the engine (the asset itself is exercised in the test below)."""
    from pv_platform.alerts.hour_judge import hour_candidates
    from pv_platform.alerts.kpi_rules import KPI_RULES, STRING_CURRENT_LIKE
    from pv_platform.alerts.limits import kpi_thresholds
    from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
    from pv_platform.landing import list_closed, read_segment, segment_path

    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    samples = db.telemetry.sample_set(
        start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS
    ).to_frame()
    db.kpis.replace("kpi_hourly", start, end, hourly_kpis_range(samples, plant, start, end))
    limits = {site.id: kpi_thresholds(site) for site in plant.sites}
    engine = AlertLifecycle(AlertStore(db.engine))
    back = timedelta(hours=3)
    for hour in pd.date_range(start, end, freq="1h", inclusive="left"):
        h0, h1 = hour.to_pydatetime(), (hour + pd.Timedelta(hours=1)).to_pydatetime()
        candidates = hour_candidates(
            db.kpis.read("kpi_hourly", h1 - back, h1),
            db.telemetry.hourly_rollup(h1 - back, h1, metric_like=STRING_CURRENT_LIKE),
            db.kpis.blocking_failures(h0, h1),
            h0,
            h1,
            limits,
        )
        engine.process(candidates, h1, KPI_RULES)
    return AlertStore(db.engine).list()


def test_a_string_below_its_peers_for_three_hours_is_a_persistent_outlier(db, tmp_path):
    from integrations.simulator.runner import backfill_landing

    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    scenario = Scenario.model_validate(
        {"faults": [{"kind": "string_degradation", "device": "inv1", "mppt": 2, "loss": 0.35, "start": at(8), "end": at(14)}]}
    )  # fmt: skip
    backfill_landing(plant, tmp_path, 4, at(7, 45), at(15, 15), 60, scenario)
    alerts = _kpi_alerts(db, plant, tmp_path, at(7), at(15))
    # the inverter loses 35 % / 2 strings = 17.5 %: it underperforms too (from its first hour)
    assert sorted(alerts["fingerprint"]) == [
        "string_outlier:testsite:inv1:mppt2",
        "underperformance:testsite:inv1",
    ]
    row = alerts.set_index("fingerprint").loc["string_outlier:testsite:inv1:mppt2"]
    # judged hours 08, 09, 10 at 65 % of the median string: opened when the 10:00 hour closes
    assert pd.Timestamp(row["opened_at"]).to_pydatetime() == at(11)
    assert row["severity"] == "MEDIUM" and all(0.6 < r < 0.7 for r in row["context"]["ratios"])


def test_a_clean_simulated_week_raises_no_alert(db, tmp_path):
    from integrations.simulator.runner import backfill_landing

    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    week_start, week_end = DAY - timedelta(days=3), DAY + timedelta(days=4)
    # real-time rules over every minute of the week (nights, dawns, clouds, clipping) ...
    _, alerts, events = run(db, plant, week_start, week_end, step_s=60)
    assert alerts.empty and events == [], alerts[["fingerprint", "message"]].to_string()
    # ... and the KPI rules over its 168 hours
    backfill_landing(plant, tmp_path, 4, week_start - timedelta(minutes=15), week_end, 60)
    alerts = _kpi_alerts(db, plant, tmp_path, week_start, week_end - timedelta(hours=1))
    assert alerts.empty, alerts[["fingerprint", "message"]].to_string()


def test_communication_loss_waits_k_poll_intervals_for_slowly_polled_devices():
    """A device polled every 2 minutes is lost after 3 x 120 s, not after the site's 60 s; a fast one
    after 60 s."""
    spec = demo_plant_dict([15020, 15021])
    spec["sites"][0]["devices"][0]["config"]["poll_interval_s"] = 120
    spec["sites"][0]["devices"] = spec["sites"][0]["devices"][:2]
    rules = RealtimeRules(parse_plant(spec))
    t0 = at(12)
    rules.feed([Reading(entity=f"testsite.inv{i}.ac_power", ts=t0, value=1.0) for i in (1, 2)], t0)

    def lost(seconds: int) -> set[str]:
        now = t0 + timedelta(seconds=seconds)
        return {c.device_id for c in rules.evaluate(now) if c.rule == "communication_lost"}

    assert lost(59) == set()
    assert lost(61) == {"inv2"}
    assert lost(359) == {"inv2"}
    assert lost(361) == {"inv1", "inv2"}


def test_a_device_back_from_silence_is_no_hot_spot_its_stale_or_first_values_are_not_judged():
    """inv3 falls silent at 12:00 with its strings at 50 °C; a cloud cools every module to 30 °C;
    inv3's last values are history, not a hot spot while it is silent, and the first answer after the
    silence (the gateway's held image: 50 °C) is not judged either. A real hot spot (inv1 mppt1 at
    60 °C while the others read 30 °C) is still seen at once."""
    rules = RealtimeRules(parse_plant(demo_plant_dict([15020, 15021, 15022])))

    def feed(t: datetime, devices: dict[str, tuple[float, float]]) -> None:
        readings = [Reading(entity="testsite.wx1.poa_irradiance", ts=t, value=800.0)]
        for device_id, temps in devices.items():
            readings.append(Reading(entity=f"testsite.{device_id}.ac_power", ts=t, value=50_000.0))
            for i, temp in enumerate(temps, start=1):
                readings += [
                    Reading(entity=f"testsite.{device_id}.mppt{i}_temperature", ts=t, value=temp),
                    Reading(entity=f"testsite.{device_id}.mppt{i}_dc_current", ts=t, value=9.0),
                ]
        rules.feed(readings, t)

    def hot(t: datetime) -> set[str]:
        return {f"{c.device_id} {c.key}" for c in rules.evaluate(t) if c.rule == "hot_spot"}

    all_at = lambda c: {d: (c, c) for d in ("inv1", "inv2", "inv3")}  # noqa: E731
    for s in range(0, 60, 10):
        feed(at(12) + timedelta(seconds=s), all_at(50.0))
    assert hot(at(12, 1)) == set()
    for s in range(60, 20 * 60, 10):  # inv3 silent for 19 minutes, the others cool down to 30 °C
        t, temp = at(12) + timedelta(seconds=s), max(30.0, 50.0 - 20.0 * (s - 60) / 600)
        feed(t, {"inv1": (temp, temp), "inv2": (temp, temp)})
        assert hot(t) == set(), t
    t = at(12, 20)
    feed(t, {"inv1": (30.0, 30.0), "inv2": (30.0, 30.0), "inv3": (50.0, 50.0)})  # held image
    assert hot(t) == set()
    for s in range(10, 120, 10):
        t = at(12, 20) + timedelta(seconds=s)
        feed(t, all_at(30.0))
        assert hot(t) == set(), t
    t = at(12, 22)
    feed(t, {"inv1": (60.0, 30.0), "inv2": (30.0, 30.0), "inv3": (30.0, 30.0)})
    assert hot(t) == {"inv1 mppt1"}


def test_an_accelerated_run_does_not_take_a_busy_machine_for_silent_devices():
    """At 60x one second of a starved collector is a silent minute of every device: the silence limit
    is at least STALL_WALL_S of wall time (120 platform seconds at 60x); at real time it stays 60 s."""
    from pv_platform.alerts.limits import Thresholds
    from pv_platform.alerts.realtime import stale_limit_s

    inverter = parse_plant(demo_plant_dict([15020])).sites[0].devices[0]  # polled every 0.5 s
    assert stale_limit_s(Thresholds(), inverter, speed=1.0) == 60.0
    assert stale_limit_s(Thresholds(), inverter, speed=60.0) == 120.0
    assert stale_limit_s(Thresholds(), inverter, speed=60.0, cadence_s=60.0) == 180.0
