"""The randomized fault days of the alert scorer (issue 17): the same seed gives the same day; every
fault is one the simulator knows, on a device of the plant, with a ground truth; KPI-rule faults sit in
the history, real-time faults in the live window one after the other."""

from __future__ import annotations

import pandas as pd

from bench.alert_scores import load, plant_spec
from bench.fault_days import fault_day
from integrations.simulator.scenarios import Scenario
from pv_platform.plant import parse_plant


def test_a_seed_gives_one_valid_fault_day():
    assert fault_day(11) == fault_day(11) and fault_day(11) != fault_day(12)
    kinds = set()
    for seed in range(30):
        spec, faults, truths = load(fault_day(seed))
        Scenario.model_validate(faults)  # the simulator accepts the schedule
        plant = parse_plant(plant_spec(spec, iter(range(20000, 20100))))
        devices = {d.id for d in plant.sites[0].devices}
        live0, live1 = (pd.Timestamp(spec["live"][k]) for k in ("start", "end"))
        history, live = truths[:3], truths[3:]
        assert len(history) == 3 and len(live) == 4
        for t in truths:
            assert t.device is None or t.device in devices, t
            assert t.expect and t.start < t.end
            kinds.add(t.kind)
        assert all(pd.Timestamp(t.end) <= live0 for t in history)
        assert all(live0 < pd.Timestamp(t.start) and pd.Timestamp(t.end) <= live1 for t in live)
        assert all(a.end < b.start for a, b in zip(live, live[1:], strict=False))
    assert kinds == {
        "efficiency_drop", "string_degradation", "soiling_ramp", "frozen_sensor", "inverter_trip",
        "modbus_garbage", "grid_outage", "string_disconnect", "hot_spot", "device_silent",
        "malformed_payloads",
    }  # fmt: skip


def test_a_run_without_any_alert_scores_perfect_precision():
    """A clean week's best result - no alert at all - is scored, not a crash (it was: selecting the
    rows of an empty frame by an empty list dropped its columns, KeyError 'rule')."""
    from bench.alert_scores import before_switch_off, score

    columns = ["id", "rule", "site_id", "device_id", "opened_at", "context", "message"]
    none = before_switch_off(pd.DataFrame(columns=columns), pd.Timestamp("2026-06-21T11:30Z"))
    assert list(none.columns) == columns and none.empty
    result = score(none, pd.DataFrame(), [])
    assert (result["alerts"], result["precision"], result["recall"]) == (0, 1.0, None)
    # an alert about the hour the plant was switched off in is the harness's, one before it is scored
    found = pd.DataFrame(
        [[1, "availability_drop", "zrh", "inv1", pd.Timestamp("2026-06-21T12:00Z"),
          {"hour": "2026-06-21T11:00Z"}, "x"],
         [2, "underperformance", "zrh", "inv1", pd.Timestamp("2026-06-21T10:20Z"),
          {"hour": "2026-06-21T10:00Z"}, "y"]], columns=columns,
    )  # fmt: skip
    kept = before_switch_off(found, pd.Timestamp("2026-06-21T11:30Z"))
    assert kept["id"].tolist() == [2]
