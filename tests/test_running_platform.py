"""The defects the platform showed when run as users run it, each pinned by a test of its own (the whole
platform under the daemon is tests/test_acceptance.py): which hours the KPI sensor asks for and when, data
quality per site, the running hour and grid outages judged fairly, hours reported after a failed ingest,
incomplete periods flagged, days closed where DST skips midnight, the History page's local dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from pv_platform.clock import ingest_lag_s
from pv_platform.defs.kpis.planning import (
    NO_OPEN_HOUR,
    RETRY_BASE_S,
    contiguous_ranges,
    due_hours,
    hours_between,
)
from pv_platform.kpi.hourly import hourly_kpis_range
from pv_platform.kpi.quality import run_checks
from pv_platform.plant import parse_plant
from pv_platform.storage import Database

H = "2026-10-25-{:02d}:00"


# -- which hours hourly_kpis_sensor requests -------------------------------------------------------


def test_contiguous_hours_become_one_range_of_at_most_48():
    keys = [H.format(h) for h in (0, 1, 2, 3, 5, 6)] + ["2026-10-24-23:00"]
    assert contiguous_ranges(keys) == [
        ("2026-10-24-23:00", H.format(3)),
        (H.format(5), H.format(6)),
    ]
    day = hours_between("2026-10-20-00:00", "2026-10-23-23:00")  # 96 hours
    assert contiguous_ranges(day) == [
        ("2026-10-20-00:00", "2026-10-21-23:00"),
        ("2026-10-22-00:00", "2026-10-23-23:00"),
    ]
    # unbounded (a cursor's record of a backfill's hours): one range per run of consecutive hours
    assert contiguous_ranges(day + keys, longest=None) == [
        ("2026-10-20-00:00", "2026-10-23-23:00"),
        ("2026-10-24-23:00", H.format(3)),
        (H.format(5), H.format(6)),
    ]


def test_due_hours_new_late_failed_running_and_live():
    telemetry = {H.format(1): 10, H.format(2): 11, H.format(3): 12, H.format(5): 13}
    computed = {H.format(1): 20}  # hour 1 computed after its telemetry
    open_hour = H.format(5)
    # first tick: 2, 3 and the open hour 5 are due; 1 is up to date
    due, book = due_hours(telemetry, computed, set(), {}, 1000.0, open_hour, 300.0)
    assert due == [H.format(2), H.format(3), H.format(5)]
    # the runs failed (nothing computed, same telemetry): not again before the retry delay...
    due, book2 = due_hours(
        telemetry, computed, set(), book, 1000.0 + RETRY_BASE_S - 1, open_hour, 300.0
    )
    assert due == [] and book2[H.format(2)] == book[H.format(2)]
    # ...then again, with the attempt counted (and the open hour still waits for its live interval)
    due, book3 = due_hours(
        telemetry, computed, set(), book, 1000.0 + RETRY_BASE_S, open_hour, 300.0
    )
    assert due == [H.format(2), H.format(3)] and book3[H.format(2)][0] == 2
    # the next failure waits twice as long
    due, _ = due_hours(
        telemetry, computed, set(), book3, 1000.0 + 3 * RETRY_BASE_S - 1, open_hour, 300.0
    )
    assert due == []
    # late data for hour 3 (new telemetry id): due at once, not a failure
    late = {**telemetry, H.format(3): 40}
    due, book4 = due_hours(
        late, computed, set(), book3, 1000.0 + RETRY_BASE_S + 1, open_hour, 300.0
    )
    assert due == [H.format(3)] and book4[H.format(3)][0] == 1
    # an hour in a queued or running run is never requested twice
    due, _ = due_hours(late, computed, {H.format(3)}, {}, 5000.0, open_hour, 300.0)
    assert H.format(3) not in due
    # the open hour, computed a minute ago: its request is remembered while it is up to date...
    book5 = {H.format(5): [1, 1000.0, 13]}
    due, book6 = due_hours(telemetry, {H.format(5): 30}, set(), book5, 1030.0, open_hour, 300.0)
    assert H.format(5) not in due and book6[H.format(5)] == [1, 1000.0, 13]
    # ...so, changed since by every ingest, it waits for the live interval (not a run per ingest)
    live = {**telemetry, H.format(5): 50}
    due, _ = due_hours(live, {H.format(5): 30}, set(), book6, 1060.0, open_hour, 300.0)
    assert H.format(5) not in due
    due, _ = due_hours(live, {H.format(5): 30}, set(), book5, 1300.0, open_hour, 300.0)
    assert H.format(5) in due
    # the hour before the running one, which the running hour's first 15 minutes touch (the KPIs
    # interpolate across the edge): paced alike, not a run per ingest for those 15 minutes
    edge = {H.format(4): 60}
    due, book7 = due_hours(edge, {H.format(4): 70}, set(), {H.format(4): [1, 900.0, 12]}, 950.0,
                           open_hour, 300.0)  # fmt: skip
    assert due == [] and book7[H.format(4)] == [1, 900.0, 12]
    edge = {H.format(4): 80}
    assert due_hours(edge, {H.format(4): 70}, set(), book7, 1100.0, open_hour, 300.0)[0] == []
    assert due_hours(edge, {H.format(4): 70}, set(), book7, 1201.0, open_hour, 300.0)[0] == [
        H.format(4)
    ]
    # history (the history sensor's call): no hour is live, every changed one is due at once
    history = due_hours(edge, {H.format(4): 70}, set(), book7, 950.0, NO_OPEN_HOUR, 0.0)
    assert history[0] == [H.format(4)]


def test_the_running_hour_yields_its_slot_while_other_runs_wait():
    from pv_platform.clock import set_clock
    from pv_platform.defs.kpis.sensors import LIVE_YIELD_WALL_S, live_interval_wall_s

    assert live_interval_wall_s(0) == live_interval_wall_s(2) == 300.0  # real time: 5 min anyway
    set_clock(datetime(2026, 10, 26, 3, tzinfo=UTC), 20.0)  # the acceptance run's 20x
    try:
        assert live_interval_wall_s(0) == 15.0  # 300 platform s
        assert live_interval_wall_s(1) == LIVE_YIELD_WALL_S == 120.0  # a rollup waits: let it go
        set_clock(datetime(2026, 10, 26, 3, tzinfo=UTC), 600.0)
        assert live_interval_wall_s(0) == 10.0  # never closer than LIVE_MIN_WALL_S
    finally:
        set_clock()


# -- data quality per site, the running hour, grid outages ----------------------------------------

T0 = datetime(2026, 6, 21, 10, tzinfo=UTC)


def _two_sites():
    site = lambda sid, lon, tz: {  # noqa: E731
        "id": sid, "name": sid, "latitude": 47.4, "longitude": lon, "timezone": tz,
        "devices": [
            {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 90},
            {"id": "wx", "kind": "weather_station", "integration": "simulator"},
            {"id": "m", "kind": "meter", "integration": "simulator"},
        ],
    }  # fmt: skip
    return parse_plant(
        {"sites": [site("a", 8.5, "Europe/Zurich"), site("b", -120.0, "America/Los_Angeles")]}
    )


def _series(
    site: str, start, end, poa: float, power: float, freq: float = 50.0, frozen: float | None = None
):
    rows = []
    for i, t in enumerate(pd.date_range(start, end, freq="1min", inclusive="left")):
        rows += [
            (site, "inv1", "ac_power", t, frozen if frozen is not None else power + (i % 3)),
            (site, "wx", "poa_irradiance", t, poa + (i % 5) if poa else 0.0),
            (site, "m", "grid_frequency", t, freq + (i % 4) * 0.01 if freq else 0.0),
        ]
    return rows


def _frame(rows):
    return pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])


def _checks(samples, plant, start, end, now, speed: float = 1.0):
    kpis = hourly_kpis_range(samples, plant, start, end)
    return {
        (o.site_id, o.hour, o.name): o
        for o in run_checks(samples, kpis, plant, start, end, now, ingest_lag_s(speed))
    }


def test_one_sites_gap_and_sun_do_not_judge_another_site():
    plant = _two_sites()
    margin = timedelta(minutes=15)
    # site a: a sunny, complete hour; site b (night there): no data at all, and a power frozen at 500 W
    rows = _series("a", T0 - margin, T0 + timedelta(hours=1) + margin, 700.0, 50_000.0)
    rows += _series("b", T0 - margin, T0 + timedelta(hours=1) + margin, 0.0, 0.0, frozen=500.0)
    samples = _frame([r for r in rows if not (r[0] == "b" and r[2] == "poa_irradiance")])
    out = _checks(samples, plant, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    key = pd.Timestamp(T0)
    assert out[("a", key, "completeness")].passed
    assert (
        not out[("b", key, "completeness")].passed
        and out[("b", key, "completeness")].severity == "ERROR"
    )
    # b's power stuck at 500 W at night is not judged with a's sun
    assert out[("b", key, "frozen_values")].passed
    assert out[("a", key, "frozen_values")].passed


def test_the_running_hour_is_judged_on_its_minutes_so_far_and_zero_hz_is_an_outage():
    plant = _two_sites()
    now = T0 + timedelta(minutes=40)
    # data up to now (readings of the last minutes still arriving); a grid outage reads 0 Hz
    rows = _series(
        "a", T0 - timedelta(minutes=15), now - timedelta(minutes=2), 700.0, 50_000.0, freq=0.0
    )
    rows += _series("b", T0 - timedelta(minutes=15), now - timedelta(minutes=2), 0.0, 0.0)
    out = _checks(_frame(rows), plant, T0, T0 + timedelta(hours=1), now)
    key = pd.Timestamp(T0)
    completeness = out[("a", key, "completeness")]
    assert completeness.passed, completeness.detail
    assert completeness.metadata["minutes_judged"] == 35  # 40 min less the 5-min ingest allowance
    assert out[("a", key, "physical_ranges")].passed  # 0 Hz: an outage, not a broken meter
    # ... but 12 Hz is impossible
    rows12 = _series("a", T0 - timedelta(minutes=15), now, 700.0, 50_000.0, freq=12.0)
    out12 = _checks(_frame(rows12), plant, T0, T0 + timedelta(hours=1), now)
    assert not out12[("a", key, "physical_ranges")].passed
    # the next hour, not begun: passes as not judged
    later = _checks(_frame(rows), plant, T0 + timedelta(hours=1), T0 + timedelta(hours=2), now)
    assert (
        later[("a", pd.Timestamp(T0 + timedelta(hours=1)), "completeness")].detail
        == "hour not started yet"
    )


def test_an_accelerated_running_hour_allows_its_ingest_a_minute_of_wall_time():
    """Readings up to 7 min past the hour, judged 22 min into it: at real time the 15 minutes missing
    beyond the 5-min allowance fail completeness; at 30x the allowance is 60 wall s, 30 platform
    minutes (a segment waits for the sensor's tick and an ingest run: the clean week through the
    daemon got four false completeness alerts at 11:22, coverage 0.43, from readings still on their
    way), so the hour is not judged yet, and a gap older than that fails alike."""
    plant = _two_sites()
    rows = _series("a", T0 - timedelta(minutes=15), T0 + timedelta(minutes=7), 700.0, 50_000.0)
    key, hour = pd.Timestamp(T0), (T0, T0 + timedelta(hours=1))
    real = _checks(_frame(rows), plant, *hour, T0 + timedelta(minutes=22))[
        ("a", key, "completeness")
    ]
    assert not real.passed and real.metadata["minutes_judged"] == 17, real.detail
    fast = _checks(_frame(rows), plant, *hour, T0 + timedelta(minutes=22), speed=30.0)
    assert fast[("a", key, "completeness")].detail == "hour not started yet"
    later = _checks(_frame(rows), plant, *hour, T0 + timedelta(minutes=50), speed=30.0)
    late = later[("a", key, "completeness")]
    assert not late.passed and late.metadata["minutes_judged"] == 20, late.detail


# -- days close where DST skips local midnight; the History page's dates ----------------------------


def test_days_close_in_zones_whose_dst_change_skips_midnight():
    from pv_platform.defs.kpis.schedules import closing_requests

    plant = parse_plant({"sites": [
        {"id": "scl", "name": "Santiago", "latitude": -33.45, "longitude": -70.67, "timezone": "America/Santiago", "devices": []},
        {"id": "zrh", "name": "Zurich", "latitude": 47.4, "longitude": 8.5, "timezone": "Europe/Zurich", "devices": []},
    ]})  # fmt: skip
    # Chile starts DST on 2026-09-06: 23:59 on the 5th is followed by 01:00 on the 6th (04:00 UTC)
    closed = {}
    for h in range(48):
        at = datetime(2026, 9, 5, 0, 20, tzinfo=UTC) + timedelta(hours=h)
        for r in closing_requests(plant, at, "date"):
            # one run per closed day, for the sites whose day it was (by run config)
            sites = r.run_config["ops"]["daily_kpis"]["config"]["sites"]
            closed.setdefault(f"{r.partition_key}|{','.join(sites)}", []).append(at)
    assert "2026-09-05|scl" in closed and len(closed["2026-09-05|scl"]) == 1
    assert closed["2026-09-05|scl"][0] == datetime(2026, 9, 6, 4, 20, tzinfo=UTC)  # 01:20 local
    assert len(closed["2026-09-05|zrh"]) == 1
    assert all(
        r.job_name == "daily_kpis_job"
        for r in closing_requests(plant, closed["2026-09-05|scl"][0], "date")
    )


def test_history_dates_are_local_and_midnight_that_does_not_exist_is_handled():
    from dashboards.pages.history import local_midnight

    start = local_midnight(datetime(2026, 9, 6).date(), "America/Santiago")
    assert start == pd.Timestamp("2026-09-06 01:00", tz="America/Santiago")
    assert local_midnight(datetime(2026, 10, 25).date(), "Europe/Zurich").utcoffset() == timedelta(
        hours=2
    )


# -- hours reported after a failed ingest; a period computed from missing hours says so ------------


@pytest.fixture
def platform(pg_url, plant, landing, tmp_path):
    """The Dagster resource on a fresh database and the test plant (definitions built with it)."""
    from pv_platform.definitions import build_definitions
    from pv_platform.defs.resources import platform_resources
    from pv_platform.plant import dump_plant

    dump_plant(plant, tmp_path / "plant.yaml")
    Database(pg_url).migrations.migrate()  # `pvp migrate`: the resources never migrate
    resource = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(tmp_path / "plant.yaml")
    )
    build_definitions(resource)
    return resource


def test_hours_loaded_by_a_failed_attempt_are_reported_by_the_next_run(platform, plant, landing):
    from integrations.simulator.runner import backfill_landing
    from pv_platform.defs.telemetry.jobs import ingest_job
    from pv_platform.landing import list_closed, read_segment, segment_path

    start = datetime(2026, 6, 21, 8, tzinfo=UTC)
    backfill_landing(plant, landing, seed=3, start=start, end=start + timedelta(hours=3))
    segments = list_closed(landing)
    db = Database(platform["kpi_store"].database_url)
    # an attempt loaded the first segment, then the database went away before it reported anything
    db.telemetry.ingest_segment(read_segment(segment_path(landing, segments[0])))
    loaded = {h for h, _ in db.telemetry.unreported_hours()}
    assert loaded
    with dg.instance_for_test() as instance:
        run = ingest_job.execute_in_process(
            run_config={"ops": {"ingest_segments": {"config": {"segment_ids": segments}}}},
            instance=instance, resources=platform,
        )  # fmt: skip
        assert run.success
        reported = {
            r.asset_materialization.partition
            for r in instance.fetch_materializations(dg.AssetKey("telemetry"), limit=100).records
        }
    assert {h.strftime("%Y-%m-%d-%H:%M") for h in loaded} <= reported
    assert reported == {"2026-06-21-08:00", "2026-06-21-09:00", "2026-06-21-10:00"}
    assert db.telemetry.unreported_hours() == []


def test_a_day_with_missing_hours_is_computed_and_flagged_incomplete(platform, plant, landing):
    from integrations.simulator.runner import backfill_landing
    from pv_platform.defs.kpis.assets import daily_kpis, hourly_kpis
    from pv_platform.defs.telemetry.jobs import ingest_job
    from pv_platform.landing import list_closed

    day_start = datetime(2026, 6, 20, 22, tzinfo=UTC)  # Zurich's 2026-06-21
    backfill_landing(plant, landing, seed=4, start=day_start, end=day_start + timedelta(hours=24))
    with dg.instance_for_test() as instance:
        assert ingest_job.execute_in_process(
            run_config={"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}},
            instance=instance, resources=platform,
        ).success  # fmt: skip
        # only the first 12 hours get their KPIs (the run for the rest failed)
        assert dg.materialize(
            [hourly_kpis], instance=instance, resources=platform,
            tags={"dagster/asset_partition_range_start": "2026-06-20-22:00",
                  "dagster/asset_partition_range_end": "2026-06-21-09:00"},
        ).success  # fmt: skip
        run = dg.materialize(
            [daily_kpis], instance=instance, resources=platform, partition_key="2026-06-21",
        )  # fmt: skip
        assert run.success
        check = next(
            e for e in run.get_asset_check_evaluations() if e.check_name == "all_hours_present"
        )
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert "12 of 24 hours" in check.description
        materialization = run.get_asset_materialization_events()[0].materialization
        assert materialization.metadata["sites"].value == {"testsite": "closed"}  # not complete
        db = Database(platform["kpi_store"].database_url)
        coverage = db.kpis.coverage("daily", day_start, day_start + timedelta(days=1), "testsite")
        assert coverage[["hours_expected", "hours_present"]].values.tolist() == [[24, 12]]
        # the missing hours land: the day is recomputed complete
        assert dg.materialize(
            [hourly_kpis], instance=instance, resources=platform,
            tags={"dagster/asset_partition_range_start": "2026-06-21-10:00",
                  "dagster/asset_partition_range_end": "2026-06-21-21:00"},
        ).success  # fmt: skip
        again = dg.materialize(
            [daily_kpis], instance=instance, resources=platform, partition_key="2026-06-21",
        )  # fmt: skip
        assert next(e for e in again.get_asset_check_evaluations()).passed
        coverage = db.kpis.coverage("daily", day_start, day_start + timedelta(days=1), "testsite")
        assert coverage[["hours_expected", "hours_present"]].values.tolist() == [[24, 24]]
        day = db.kpis.read("kpi_daily", day_start, day_start + timedelta(days=1), "testsite", "*")
        hours = db.kpis.read(
            "kpi_hourly", day_start, day_start + timedelta(days=1), "testsite", "*"
        )
        assert day["energy_ac_kwh"].iloc[0] == pytest.approx(hours["energy_ac_kwh"].sum())


def test_rollup_periods_are_requested_until_computed_from_their_newest_hours():
    from pv_platform.defs.kpis.planning import MAX_ATTEMPTS, due_periods

    day = "daily_kpis_job:2026-10-25|zrh"
    # new hours (trigger 7): requested at once
    due, book, _ = due_periods({day: [7, -1, 0.0, 0, -1]}, {}, set(), 100.0)
    assert due == [day] and book[day] == [7, 7, 100.0, 1, -1]
    # queued or running: wait; more hours arrive meanwhile (trigger 9)
    book[day][0] = 9
    due, book, _ = due_periods(book, {}, {day}, 110.0)
    assert due == []
    # that run ends with a materialization (id 12) but was requested for trigger 7: run again, at once
    due, book, _ = due_periods(book, {day: 12}, set(), 111.0)
    assert due == [day] and book[day][1] == 9
    # this one failed (no newer materialization): again after the retry delay, not before
    due, book2, _ = due_periods(book, {day: 12}, set(), 111.0 + RETRY_BASE_S - 1)
    assert due == [] and book2[day] == book[day]
    due, book, _ = due_periods(book, {day: 12}, set(), 111.0 + RETRY_BASE_S)
    assert due == [day] and book[day][3] == 2
    # materialized after its trigger by a run requested for it: done
    due, book, _ = due_periods(book, {day: 20}, set(), 500.0)
    assert due == [] and book == {}
    # a period that keeps failing (blocked by a failed ERROR check) is given up after MAX_ATTEMPTS
    given = due_periods({day: [30, 30, 0.0, MAX_ATTEMPTS, 12]}, {day: 12}, set(), 10_000.0)[2]
    assert given == [day]


def test_a_range_run_judges_every_hour_for_kpi_alerts(platform, plant, landing):
    """A run over many back-filled hours raises the alerts of its early hours too (it judged only the
    last three hours of the range before)."""
    from integrations.simulator.runner import backfill_landing
    from integrations.simulator.scenarios import Scenario
    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.telemetry.jobs import ingest_job
    from pv_platform.landing import list_closed

    start = datetime(2026, 6, 21, 6, tzinfo=UTC)
    trip = Scenario.model_validate({"faults": [{
        "kind": "inverter_trip", "device": "inv2", "events": ["GROUND_FAULT"],
        "start": "2026-06-21T08:00:00Z", "end": "2026-06-21T09:00:00Z",
    }]})  # fmt: skip
    backfill_landing(plant, landing, 6, start, start + timedelta(hours=12), 60, trip)
    with dg.instance_for_test() as instance:
        assert ingest_job.execute_in_process(
            run_config={"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}},
            instance=instance, resources=platform,
        ).success  # fmt: skip
        run = dg.materialize(
            [hourly_kpis, alerts], instance=instance, resources=platform,
            tags={"dagster/asset_partition_range_start": "2026-06-21-06:00",
                  "dagster/asset_partition_range_end": "2026-06-21-17:00"},
        )  # fmt: skip
        assert run.success
    opened = Database(platform["kpi_store"].database_url).query_df(
        "SELECT rule, device_id, message FROM alerts"
    )
    drops = opened[opened["rule"] == "availability_drop"]
    assert drops["device_id"].tolist() == ["inv2"], opened
    assert "2026-06-21 08:00" in drops["message"].iloc[0]


def test_the_history_page_flags_periods_computed_from_missing_hours():
    from dashboards.data import with_coverage
    from dashboards.pages.history import incomplete_note

    day = pd.Timestamp("2026-10-24 22:00", tz="UTC")  # Zurich's 2026-10-25 (25 hours)
    rows = pd.DataFrame({"period_start": [day, day + pd.Timedelta(hours=25)], "pr": [0.8, 0.8]})
    cover = pd.DataFrame({
        "period_start": [day, day + pd.Timedelta(hours=25)], "hours_expected": [25, 24], "hours_present": [12, 24],
    })  # fmt: skip
    note = incomplete_note(with_coverage(rows, cover), "Europe/Zurich", "day")
    assert "incomplete" in note and "2026-10-25 (12 of 25 h)" in note and "2026-10-26" not in note
    assert incomplete_note(with_coverage(rows, cover.iloc[1:]), "Europe/Zurich", "day") == ""
