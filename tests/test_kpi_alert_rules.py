"""Fewer false KPI alarms, faster true ones (issue 17 item 3): the model band keeps low-sun hours quiet, a
smaller shortfall held for two hours is underperformance, data-quality alerts name the device (frozen
sensor, quarantine rate) and a sleeping inverter at night is not missing data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from integrations.simulator.scenarios import Scenario
from pv_platform.alerts.hour_judge import held_underperformance
from pv_platform.alerts.kpi_rules import (
    KpiThresholds,
    kpi_candidates,
    model_band,
)
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.storage.alerts import AlertStore
from tests.conftest import demo_plant_dict
from tests.test_running_platform import _checks, _frame

DAY = datetime(2026, 6, 21, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def _hour(hour: int, insolation: float, pr: float, deviation: float, device: str = "inv1") -> dict:
    return {
        "site_id": "s", "device_id": device, "period_start": at(hour), "pr": pr,
        "expected_deviation": deviation, "insolation_poa_kwh_m2": insolation,
        "availability_time": 1.0, "time_forced_outage_s": 0.0, "time_no_data_s": 0.0,
        "time_grid_outage_s": 0.0, "time_planned_s": 0.0,
    }  # fmt: skip


def test_the_model_band_widens_the_margin_at_low_sun():
    t = KpiThresholds()
    # 30 W/m2 of model error: 0.03 at 1000 W/m2 mean, 0.12 at 250 W/m2
    assert model_band(1.0, t) == 0.03 and model_band(0.25, t) == 0.12
    # the first daylight hour: PR 0.78, 17 % below expected at 250 W/m2 -> limit 27 %: quiet
    dawn = pd.DataFrame([_hour(4, 0.25, 0.78, -0.17)])
    assert [c.rule for c in kpi_candidates(dawn, pd.DataFrame(), at(5))] == []
    # the same shortfall at 900 W/m2 (limit 15 % + 3.3 %) is underperformance
    noon = pd.DataFrame([_hour(11, 0.9, 0.70, -0.19)])
    assert [c.rule for c in kpi_candidates(noon, pd.DataFrame(), at(12))] == ["underperformance"]


def test_a_smaller_drop_held_for_two_judged_hours_is_underperformance():
    # an efficiency drop to 88 %: 12 % below expected, under one hour's 18 % limit, over 8 % + 3 % held
    one = pd.DataFrame([_hour(9, 0.9, 0.86, 0.01), _hour(10, 1.0, 0.76, -0.12)])
    assert kpi_candidates(one, pd.DataFrame(), at(11)) == []
    assert held_underperformance(one, at(10), at(11), at(11)) == []  # only one hour so far
    two = pd.DataFrame([*one.to_dict("records"), _hour(11, 1.0, 0.76, -0.12)])
    found = held_underperformance(two, at(11), at(12), at(12))
    assert [(c.rule, c.device_id, c.context["expected_deviation"]) for c in found] == [
        ("underperformance", "inv1", [-0.12, -0.12])
    ]
    # an hour with downtime between is not judged: it neither breaks nor makes the run
    gap = _hour(11, 1.0, 0.5, -0.5) | {"time_forced_outage_s": 600.0}
    assert (
        held_underperformance(pd.DataFrame([*one.to_dict("records"), gap]), at(11), at(12), at(12))
        == []
    )


def test_a_sleeping_inverter_at_night_is_not_missing_data():
    """Night (POA 0): the inverter sends nothing at all - completeness passes; in daylight the same
    silence fails and names the inverter."""
    from tests.test_running_platform import _two_sites

    plant = _two_sites()
    night, noon = DAY + timedelta(hours=0), DAY + timedelta(hours=10)
    rows = []
    for start, poa in ((night, 0.0), (noon, 700.0)):
        for i, ts in enumerate(
            pd.date_range(start - timedelta(minutes=15), start + timedelta(minutes=75), freq="1min")
        ):
            rows += [("a", "wx", "poa_irradiance", ts, poa + (i % 5 if poa else 0.0)),
                     ("a", "m", "grid_frequency", ts, 50.0 + (i % 4) * 0.01)]  # fmt: skip
    samples = _frame(rows)
    out = _checks(samples, plant, night, night + timedelta(hours=1), night + timedelta(hours=3))
    assert out[("a", pd.Timestamp(night), "completeness")].passed
    out = _checks(samples, plant, noon, noon + timedelta(hours=1), noon + timedelta(hours=3))
    failed = out[("a", pd.Timestamp(noon), "completeness")]
    assert not failed.passed and failed.metadata["entity_keys"] == ["a.inv1.ac_power"]


def test_frozen_sensor_quarantine_flood_and_held_drop_through_the_alerts_asset(
    db, pg_url, tmp_path
):
    """A simulated day through the hourly KPIs and the `alerts` asset (hour by hour, each judging its
    10-minute windows as they close): inv2 converts 12 % less from 10:00 to 12:00, wx1's irradiance freezes from 13:00 to 14:00 and its gateway sends 40 malformed
    payloads at 15:10. Expected: underperformance for inv2 (held), data_quality for wx1 (frozen_values,
    quarantine), nothing else from the healthy dawn (04:00-06:00) to dusk."""
    import dagster as dg

    from integrations.simulator.runner import backfill_landing
    from pv_platform import clock
    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.resources import platform_resources
    from pv_platform.landing import SegmentWriter, list_closed, read_segment, segment_path

    spec = demo_plant_dict([15020, 15021, 15022])
    plant = parse_plant(spec)
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    scenario = Scenario.model_validate({"faults": [
        {"kind": "efficiency_drop", "device": "inv2", "loss": 0.12, "start": at(10), "end": at(12)},
        {"kind": "frozen_sensor", "device": "wx1", "metric": "poa_irradiance", "start": at(13), "end": at(14)},
    ]})  # fmt: skip
    backfill_landing(plant, landing, 4, at(3, 45), at(18, 15), 60, scenario)
    writer = SegmentWriter(landing, writer_name="gateway")
    clock.set_clock(at(15, 10), 1.0)
    try:
        for _ in range(40):
            writer.add_quarantine(f"mqtt:{spec['sites'][0]['devices'][-1]['config']['topic']}",
                                  b'{"ts": "garbage", "poa": [1, 2', "not JSON")  # fmt: skip
    finally:
        clock.set_clock()
    writer.close()
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    resources = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )
    with dg.instance_for_test() as instance:
        dg.materialize(
            [hourly_kpis], instance=instance, resources=resources, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2026-06-21-04:00",
                  "dagster/asset_partition_range_end": "2026-06-21-17:00"},
        )  # fmt: skip
        for hour in range(4, 18):
            assert dg.materialize(
                [alerts],
                partition_key=f"2026-06-21-{hour:02d}:00",
                instance=instance,
                resources=resources,
            ).success
    rows = AlertStore(db.engine).list()
    summary = rows[["fingerprint", "opened_at", "message"]].to_string()
    opened = {r.fingerprint: r.opened_at for r in rows.itertuples()}
    assert set(opened) == {
        "underperformance:testsite:inv2",
        "data_quality:testsite:wx1:frozen_values",
        "data_quality:testsite:wx1:quarantine",
        # the frozen (too low) irradiance makes the site's PR impossible in that hour: a symptom of
        # the weather station's fault, not a second cause (incidents group it under the station)
        "data_quality:testsite:*:pr_plausible",
    }, summary
    # the drop's second 10-minute window closes at 10:20 (held over 2 windows; then held by hysteresis,
    # one alert to its end), frozen when the 13:20 window closes (20 min stuck), the flood when the
    # 15:20 window closes (the hour up to it over the limit), not at their hours' ends
    assert opened["underperformance:testsite:inv2"] == at(10, 20), summary
    assert len(rows) == 4, summary
    assert opened["data_quality:testsite:wx1:frozen_values"] == at(13, 20), summary
    assert opened["data_quality:testsite:wx1:quarantine"] == at(15, 20), summary


def test_an_hour_with_missing_data_is_not_judged_for_plausible_pr():
    """Across a collector restart energy (counter) and insolation cover different minutes: PR 1.6 then
    says nothing about the plant (completeness reports the gap); in a covered hour it is an error."""
    from pv_platform.kpi.quality import _Hours, pr_plausible

    hours = _Hours(at(9), at(11))
    rows = pd.DataFrame(
        [{"site_id": "s", "device_id": "*", "period_start": pd.Timestamp(at(9)), "pr": 1.6,
          "insolation_poa_kwh_m2": 0.7, "time_no_data_s": 840.0},
         {"site_id": "s", "device_id": "*", "period_start": pd.Timestamp(at(10)), "pr": 1.6,
          "insolation_poa_kwh_m2": 0.7, "time_no_data_s": 0.0}]
    )  # fmt: skip
    gap, covered = pr_plausible(rows, hours)
    assert gap.passed and not covered.passed and covered.severity == "ERROR"


def test_fifteen_minute_windows_add_up_to_the_hour_and_judge_a_drop_within_two_windows(
    db, tmp_path
):
    """The window KPIs (`hourly_kpis_range(window_min=15)`) of an hour add up to its hourly row; an
    inverter converting 25 % less from 10:05 is `underperformance` when the 10:30 window closes (one
    window short by more than 15 % + band, PR < 0.8; the 10:00 window is only partly short), and the
    healthy inverters never are."""
    from integrations.simulator.runner import backfill_landing
    from pv_platform.alerts.window_judge import window_candidates
    from pv_platform.alerts.window_rules import judged_windows, window_ends
    from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
    from pv_platform.landing import list_closed, read_segment, segment_path

    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    scenario = Scenario.model_validate({"faults": [
        {"kind": "efficiency_drop", "device": "inv2", "loss": 0.25, "start": at(10, 5), "end": at(12)},
    ]})  # fmt: skip
    landing = tmp_path / "landing"
    backfill_landing(plant, landing, 4, at(8, 30), at(11, 30), 60, scenario)
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    samples = db.telemetry.sample_set(at(9) - EDGE_MARGIN, at(11) + EDGE_MARGIN, HOURLY_METRICS)
    hourly = hourly_kpis_range(samples, plant, at(9), at(11))
    quarters = hourly_kpis_range(samples, plant, at(9), at(11), window_min=15)
    assert set(quarters["period_h"]) == {0.25}
    for column in ("energy_ac_kwh", "energy_expected_kwh", "insolation_poa_kwh_m2"):
        summed = quarters.groupby(["device_id", quarters["period_start"].dt.floor("h")])[
            column
        ].sum()
        by_hour = hourly.set_index(["device_id", "period_start"])[column]
        assert (summed - by_hour).abs().max() < 1e-6 * max(1.0, by_hour.abs().max()), column
    windows = judged_windows(quarters)
    fired = {
        t: sorted(c.fingerprint for c in window_candidates(windows, pd.DataFrame(), t, 15))
        for t in window_ends(at(9), at(11), 15)
    }
    assert all(v == [] for t, v in fired.items() if t <= at(10, 15)), fired
    assert fired[at(10, 30)] == ["underperformance:testsite:inv2"], fired
    # every inverter short alike (an irradiance sensor reading 30 % high): the site's data-quality
    # finding, not three underperformances
    inverters = windows["device_id"] != "*"
    alike = windows.assign(expected_deviation=windows["expected_deviation"].where(~inverters, -0.3))
    found = window_candidates(alike, pd.DataFrame(), at(10, 30), 15)
    assert sorted(c.fingerprint for c in found) == ["data_quality:testsite:*:common_mode"], found


def _minutes(key: tuple, start: datetime, values: list[float]) -> pd.DataFrame:
    """One sample a minute from `start` for entity `key` (site, device, metric)."""
    ts = [start + timedelta(minutes=i) for i in range(len(values))]
    return pd.DataFrame({"site_id": key[0], "device_id": key[1], "metric": key[2], "ts": ts, "value": values})  # fmt: skip


def test_a_frozen_sensor_is_found_on_the_fifteen_minute_windows_never_at_night():
    """A POA sensor stuck at 692.5 W/m² from 10:06 is flagged when the 10:45 window closes (30 min
    held, 2 windows), not at the hour's end; the same sensor flat at -2 W/m² (its night offset) and a
    module temperature flat at night raise nothing; a silent sensor is not frozen; AC power held at
    the rating is clipping; an energy counter that does not move is no frozen value, nor is a
    temperature in whole degrees that moves a degree at a time."""
    from pv_platform.alerts.window_rules import frozen_windows
    from pv_platform.kpi.samples import SampleSet

    plant = parse_plant(demo_plant_dict([15020]))
    site = "testsite"
    poa = [600.0 + 3.7 * i for i in range(26)]  # 09:41..10:06, then stuck to 11:06
    poa += [poa[-1]] * 60
    day = pd.concat([
        _minutes((site, "wx1", "poa_irradiance"), at(9, 41), poa),
        _minutes((site, "inv1", "ac_power"), at(9, 41), [100_000.0] * 86),  # clipping at the rating
        _minutes((site, "inv1", "ac_energy"), at(9, 41), [5e6] * 86),  # a counter (tripped inverter)
    ])  # fmt: skip
    samples = SampleSet.from_frame(day)
    assert frozen_windows(samples, plant, at(10, 30), 15) == []  # 23 min: not yet
    found = frozen_windows(samples, plant, at(10, 45), 15)
    assert [(c.rule, c.device_id, c.key) for c in found] == [
        ("data_quality", "wx1", "frozen_values")
    ]
    assert found[0].context["entities"] == ["testsite.wx1.poa_irradiance"]
    assert found[0].context["hour"] == str(pd.Timestamp(at(10, 6)))
    assert "692.5" in found[0].message
    # silent since 10:50: nothing in the newest window, so no frozen value (communication's concern)
    silent = SampleSet.from_frame(day[pd.to_datetime(day["ts"]) < at(10, 50)])
    assert frozen_windows(silent, plant, at(11, 15), 15) == []
    # at night: the irradiance sensor's offset and the module temperature are flat, legitimately
    night = SampleSet.from_frame(pd.concat([
        _minutes((site, "wx1", "poa_irradiance"), at(0), [-2.0] * 90),
        _minutes((site, "wx1", "module_temperature"), at(0), [11.5] * 90),
    ]))  # fmt: skip
    assert frozen_windows(night, plant, at(1, 15), 15) == []
    # in daylight the same flat module temperature is frozen; a cabinet temperature read in whole
    # degrees (SunSpec model 103) that moves a degree at a time is flat for long stretches by nature
    sunny = SampleSet.from_frame(pd.concat([
        _minutes((site, "wx1", "poa_irradiance"), at(10), [700.0 + i for i in range(90)]),
        _minutes((site, "wx1", "module_temperature"), at(10), [41.5] * 90),
        _minutes((site, "inv1", "cabinet_temperature"), at(10), [39.0, 40.0, 40.0] + [41.0] * 87),
    ]))  # fmt: skip
    found = frozen_windows(sunny, plant, at(11, 0), 15)
    assert [c.context["entities"] for c in found] == [["testsite.wx1.module_temperature"]]
    # two inverters' cabinet temperatures (0.1 degree steps) flat together from 10:20 (both clipping
    # in the same weather): the plant's physics, no alert; inv2's moving on while inv1's stays flat:
    # inv1's sensor
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    rising = [round(40.0 + 0.37 * i, 1) for i in range(20)]  # warming by 0.3-0.4 degree a minute
    both = [
        _minutes((site, "wx1", "poa_irradiance"), at(10), [700.0 + i for i in range(90)]),
        _minutes((site, "inv1", "cabinet_temperature"), at(10), rising + [rising[-1] + 0.1] * 70),
    ]
    together = both + [
        _minutes((site, "inv2", "cabinet_temperature"), at(10), rising + [rising[-1] + 0.1] * 70)
    ]
    assert frozen_windows(SampleSet.from_frame(pd.concat(together)), plant, at(11, 0), 15) == []
    apart = both + [
        _minutes(
            (site, "inv2", "cabinet_temperature"),
            at(10),
            [round(40.0 + 0.37 * i, 1) for i in range(90)],
        )
    ]
    found = frozen_windows(SampleSet.from_frame(pd.concat(apart)), plant, at(11, 0), 15)
    assert [c.context["entities"] for c in found] == [["testsite.inv1.cabinet_temperature"]]
    # the hourly frozen_values check (which raises data_quality alerts too) judges peers alike: seed
    # 7373's two healthy inverters' cabinet temperatures, flat together, were alerts from the hour
    from pv_platform.kpi.quality import _Hours, frozen_values

    def hourly(frames) -> set[str]:
        outcomes = frozen_values(
            SampleSet.from_frame(pd.concat(frames)), _Hours(at(10), at(12)), plant
        )
        return {k for o in outcomes for k in o.metadata["entity_keys"]}

    assert hourly(together) == set()
    assert hourly(apart) == {"testsite.inv1.cabinet_temperature"}
    # seed 7373: model-103 cabinet temperatures (0.1 degree steps) near the day's warmest hour. inv1
    # dips with a cloud (steps of 0.4-1.0 degree: not a coarse signal's single steps), then sits at
    # 26.5 for an hour; inv2 crosses one step meanwhile (where the quantization falls): resolution,
    # not a fault. A peer drifting by three steps means inv1's sensor is stuck.
    dip = [26.6] * 14 + [25.7, 25.2, 25.6, 26.2, 26.6] + [26.6] * 11 + [26.5] * 60
    poa = _minutes((site, "wx1", "poa_irradiance"), at(10), [700.0 + i for i in range(90)])
    inv1 = _minutes((site, "inv1", "cabinet_temperature"), at(10), dip)
    for peer, expected in (([26.5] * 70 + [26.4] * 20, set()),
                           ([26.5] * 70 + [26.4, 26.3] * 5 + [26.2] * 10, {"testsite.inv1.cabinet_temperature"})):  # fmt: skip
        frames = [poa, inv1, _minutes((site, "inv2", "cabinet_temperature"), at(10), peer)]
        assert hourly(frames) == expected
        found = frozen_windows(SampleSet.from_frame(pd.concat(frames)), plant, at(11, 30), 15)
        assert {e for c in found for e in c.context["entities"]} == expected


def _random_windows(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DatetimeIndex]:
    """A day of judged 15-minute windows of two sites (four and three inverters, some rows
    missing), with shortfalls, outages and three strings per inverter, some of them low."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ts = pd.date_range(at(0), periods=4 * 24, freq="15min")
    rows, strings = [], []
    for site, device in [
        *(("a", f"inv{i}") for i in range(1, 5)),
        *(("b", f"inv{i}") for i in (1, 2, 3)),
    ]:
        for t in ts[rng.random(len(ts)) > 0.05]:
            rows.append({
                "site_id": site, "device_id": device, "period_start": t, "t": t, "period_h": 0.25,
                "expected_deviation": rng.uniform(-0.5, 0.1), "band": rng.uniform(0.02, 0.1),
                "pr": rng.uniform(0.6, 0.95), "judged": rng.random() < 0.7,
                "availability_time": rng.choice([np.nan, 1.0, rng.uniform(0, 1)], p=[0.2, 0.77, 0.03]),
                "time_forced_outage_s": rng.choice([0.0, 300.0]),
            })  # fmt: skip
            strings += [
                {"site_id": site, "device_id": device, "metric": f"mppt{m}_dc_current", "bucket": t,
                 "avg_value": 8.0 + rng.normal() if rng.random() < 0.6 else rng.uniform(0, 8)}
                for m in (1, 2, 3) if rng.random() < 0.9
            ]  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(strings), ts


def test_a_range_judges_each_window_as_a_run_of_its_hour_alone_would():
    """The alerts asset judges a back-filled range with one `WindowJudge`, seeing for each hour the
    rows from the holds' reach before it: every window's candidates (all four rules, hysteresis on
    random open alerts) equal those of a judge given only what a run of that one hour reads."""
    import random

    from pv_platform.alerts.window_judge import WindowJudge

    limits = {
        "a": KpiThresholds(),
        "b": KpiThresholds(window_hold=2, window_held=3, string_outlier_windows=3),
    }
    lead = timedelta(minutes=15 * 3)
    rules = set()
    for seed in range(2):
        windows, strings, ts = _random_windows(seed)
        judge, pick = WindowJudge(windows, strings, 15, limits), random.Random(seed)
        devices = sorted(set(zip(windows["site_id"], windows["device_id"], strict=True)))
        for end in (t.to_pydatetime() for t in ts[1:]):
            hour = (end - timedelta(minutes=1)).replace(minute=0)
            open_fps = frozenset(
                fp for s, d in devices
                for fp in (f"underperformance:{s}:{d}", *(f"string_outlier:{s}:{d}:mppt{m}" for m in (1, 2, 3)))
                if pick.random() < 0.3
            )  # fmt: skip
            alone = WindowJudge(
                windows[(windows["t"] >= hour - lead) & (windows["t"] < hour + timedelta(hours=1))],
                strings[(strings["bucket"] >= hour - lead) & (strings["bucket"] < hour + timedelta(hours=1))],
                15, limits,
            )  # fmt: skip
            want = alone.candidates(end, open_fps)
            got = judge.candidates(end, open_fps, since=hour - lead)
            assert [(c.fingerprint, c.message, c.context) for c in got] == [
                (c.fingerprint, c.message, c.context) for c in want
            ], end
            rules |= {c.rule + (f":{c.key}" if c.key == "common_mode" else "") for c in got}
    # every rule was exercised
    assert rules == {
        "availability_drop",
        "underperformance",
        "string_outlier",
        "data_quality:common_mode",
    }


def test_the_range_judge_finds_what_each_hour_judged_alone_finds():
    """`HourJudge` judges a range's rows once; each hour must get exactly the candidates and cleared
    alerts `hour_candidates` and `kpi_cleared` give that hour on its own slice (from `back` before it).
    Random rows over two days of three inverters: shortfalls of every size, downtime, night, gaps, a
    failed check, sites with their own thresholds; the held rule fires in many hours."""
    import numpy as np

    from pv_platform.alerts.hour_judge import HourJudge, hour_candidates
    from pv_platform.alerts.kpi_rules import kpi_cleared

    rng = np.random.default_rng(7)
    rows = []
    for h in range(48):
        for site, device in (("s", "inv1"), ("s", "inv2"), ("t", "inv1")):
            if rng.random() < 0.08:
                continue  # a missing hour
            sun = max(0.0, np.sin((h % 24 - 5) / 14 * np.pi)) * rng.uniform(0.6, 1.0)
            row = _hour(h, sun, rng.uniform(0.55, 0.9), rng.uniform(-0.3, 0.02), device)
            row["site_id"] = site
            if rng.random() < 0.15:
                row |= {"time_forced_outage_s": 600.0, "availability_time": rng.choice([0.0, 0.5])}
            if sun == 0.0:
                row["availability_time"] = float("nan")
            rows.append(row)
    # a held shortfall split by a night: the evening hour is out of the morning's reach (`back`)
    rows += [_hour(16, 0.9, 0.86, -0.12, "inv3"), _hour(32, 0.9, 0.86, -0.12, "inv3")]
    recent = pd.DataFrame(rows)
    failed = pd.DataFrame(
        [{"site_id": "s", "period_start": at(30), "check_name": "completeness", "detail": "x"}]
    )
    limits = {"t": KpiThresholds(held_hours=3, held_margin=0.05, availability_min=0.6)}
    back, empty = timedelta(hours=3), pd.DataFrame()
    judge = HourJudge(recent, empty, failed, back, limits)

    def seen(candidates):
        return sorted((c.rule, c.site_id, c.device_id, c.message, c.ts) for c in candidates)

    period, held = pd.to_datetime(recent["period_start"], utc=True), 0
    for h in range(48):
        h0, h1 = at(h), at(h) + timedelta(hours=1)
        upto = recent[(period >= pd.Timestamp(h0 - back)) & (period < pd.Timestamp(h1))]
        mine = failed[failed["period_start"] == h0] if h == 30 else empty
        alone = hour_candidates(upto, empty, mine, h0, h1, limits)
        assert seen(judge.candidates(h0, h1)) == seen(alone), h
        assert judge.cleared(h0) == kpi_cleared(upto, limits, h0), h
        held += sum(1 for c in alone if c.context.get("held"))
    assert held >= 5  # the held rule was exercised, not only the one-hour rules


def test_a_stuck_value_is_known_at_the_live_step_it_held_long_enough():
    """POA stuck from 10:02: 30 min flat at 10:32. The 15-minute window ending 10:45 finds it; live,
    the running hour is judged every 5 minutes, so it was known at 10:35 - a back-fill opens it there."""
    from pv_platform.alerts.window_rules import frozen_by_end, window_ends
    from pv_platform.kpi.samples import SampleSet

    plant = parse_plant(demo_plant_dict([15020, 15021]))
    site = plant.sites[0].id
    poa = [700.0 + i for i in range(2)] + [702.5] * 88  # from 10:00, stuck at 10:02
    samples = SampleSet.from_frame(_minutes((site, "wx1", "poa_irradiance"), at(10), poa))
    ends = window_ends(at(10), at(11, 15), 15)
    found, early = frozen_by_end(samples, plant, ends, 15)
    assert [t for t in ends if found[t]] == [at(10, 45), at(11), at(11, 15)]
    assert [
        (t, step, [c.fingerprint for c in cs]) for t, pairs in early.items() for step, cs in pairs
    ] == [(at(10, 45), at(10, 35), ["data_quality:testsite:wx1:frozen_values"])]


def test_a_window_is_judged_once_its_readings_are_stored_not_before(db, pg_url, tmp_path):
    """Live, a window closes before its last readings are stored (they wait for the landing sensor's
    tick and an ingest run: 30 wall s, 15 platform minutes at 30x). inv2 converts 14 % less from
    10:00 (held over two windows: no hourly rule sees it yet). At 10:20 only the readings before 10:11
    are stored: the window 10:10-10:20 is held back - judged then, on one sample, it was not judged
    at all and, once a later window closed, never again: the drop was opened at 10:31 for the window
    to 10:30. The hour's next run, at 10:31 with the rest stored, judges it at its end: opened at 10:20."""
    import dataclasses

    import dagster as dg

    from integrations.simulator.runner import backfill_landing
    from pv_platform import clock
    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.resources import platform_resources
    from pv_platform.landing import list_closed, read_segment, segment_path

    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    scenario = Scenario.model_validate({"faults": [
        {"kind": "efficiency_drop", "device": "inv2", "loss": 0.14, "start": at(10), "end": at(12)},
    ]})  # fmt: skip
    backfill_landing(plant, landing, 4, at(8, 45), at(11), 60, scenario)
    segments = [read_segment(segment_path(landing, sid)) for sid in list_closed(landing)]

    def store_before(cut: datetime) -> None:
        for seg in segments:
            lines = [x for x in seg.csv_body.splitlines() if pd.Timestamp(x.split(",")[1]) < cut]
            db.telemetry.ingest_segment(dataclasses.replace(
                seg, segment_id=f"{seg.segment_id}-{cut:%H%M}", columns=None,
                csv_body="".join(f"{x}\n" for x in lines)))  # fmt: skip

    resources = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )
    under = "underperformance:testsite:inv2"
    with dg.instance_for_test() as instance:

        def run_at(now: datetime) -> str:
            clock.set_clock(now, 1.0)
            try:
                result = dg.materialize([hourly_kpis, alerts], partition_key="2026-06-21-10:00",
                                        instance=instance, resources=resources)  # fmt: skip
            finally:
                clock.set_clock()
            return (
                result.asset_materializations_for_node("alerts")[0].metadata["evaluated_to"].value
            )

        store_before(at(10, 11))
        assert run_at(at(10, 20)) == at(10, 10).isoformat()  # 10:10-10:20 waits for its data
        assert under not in set(AlertStore(db.engine).list()["fingerprint"])
        store_before(at(10, 31))
        assert run_at(at(10, 31)) == at(10, 30).isoformat()
    rows = AlertStore(db.engine).list()
    found = rows[rows["fingerprint"] == under]
    assert len(found) == 1, rows[["fingerprint", "opened_at", "message"]].to_string()
    assert found["opened_at"].iloc[0] == at(10, 20)
    assert "last 2 10-minute windows" in found["message"].iloc[0]
    assert "to 2026-06-21 10:20 UTC" in found["message"].iloc[0]


def test_a_window_availability_drop_names_its_window_not_an_hour():
    """A 10-minute window at 70 % reads as that window (it read "availability 70% in the hour from
    14:30 UTC": no hour starts at 14:30); a window with no production says so."""
    from pv_platform.alerts.window_rules import availability_windows

    def window(minute: int, availability: float, forced_s: float) -> dict:
        return {"site_id": "s", "device_id": "inv2", "period_start": pd.Timestamp(at(14, minute)),
                "period_h": 10 / 60, "availability_time": availability, "time_forced_outage_s": forced_s,
                "t": pd.Timestamp(at(14, minute))}  # fmt: skip

    partial = availability_windows(
        pd.DataFrame([window(30, 0.7, 180.0)]), at(14, 30), at(14, 40), at(14, 40)
    )
    assert [c.message for c in partial] == [
        "inv2: availability 70% in the 10 minutes from 2026-06-21 14:30 UTC (3 min forced outage)"
    ]
    assert partial[0].context["availability"] == 0.7
    dead = availability_windows(
        pd.DataFrame([window(40, 0.0, 600.0)]), at(14, 40), at(14, 50), at(14, 50)
    )
    assert [(c.message, c.severity.name) for c in dead] == [
        ("inv2: no production in the 10 minutes from 2026-06-21 14:40 UTC", "MEDIUM")
    ]
