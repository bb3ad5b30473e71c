"""The detectors as per-hour checks (`mask_checks`) on a simulated day of the demo plant: healthy
signals pass every hour, day and night; a power stuck at night, a frozen module sensor and a gap filled
with a straight line fail the hours they are in, with and without an irradiance sensor at the site."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from integrations.simulator.devices import backfill_frames
from integrations.simulator.scenarios import Scenario
from pv_platform.analytics.hour_checks import MASK_CHECK_NAMES, mask_checks
from pv_platform.kpi.hourly import hourly_kpis_range
from pv_platform.plant import parse_plant
from tests.conftest import demo_plant_dict

DAY = datetime(2026, 6, 21, tzinfo=UTC)
FROZEN = Scenario.model_validate({"faults": [{
    "kind": "frozen_sensor", "device": "wx1", "metric": "module_temperature",
    "start": DAY + timedelta(hours=13), "end": DAY + timedelta(hours=13, minutes=50)}]})  # fmt: skip


def _long(frames: dict[str, pd.DataFrame], site_id: str) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"site_id": site_id, "device_id": d, "metric": m, "ts": f.index, "value": f[m].to_numpy()})
        for d, f in frames.items()
        for m in f.columns
    ]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def day():
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    frames = backfill_frames(
        plant.sites[0], 4, DAY - timedelta(minutes=15), DAY + timedelta(hours=24, minutes=15)
    )
    return plant, frames


def _failed(outcomes) -> dict[str, list[int]]:
    return {
        name: sorted(o.hour.hour for o in outcomes if o.name == name and not o.passed)
        for name in MASK_CHECK_NAMES
    }


def test_a_healthy_day_passes_every_hour_day_and_night(day):
    plant, frames = day
    outcomes = mask_checks(_long(frames, "testsite"), plant, DAY, DAY + timedelta(hours=24))
    assert len(outcomes) == 24 * len(MASK_CHECK_NAMES)
    failed = _failed(outcomes)
    assert failed["stale_values"] == [] and failed["interpolated_values"] == [], [
        o.detail for o in outcomes if not o.passed
    ]


def test_stuck_frozen_and_interpolated_signals_fail_their_hours(day):
    plant, _ = day
    frames = backfill_frames(plant.sites[0], 4, DAY - timedelta(minutes=15), DAY + timedelta(hours=24, minutes=15),
                             scenario=FROZEN)  # fmt: skip
    inv1, inv2 = frames["inv1"].copy(), frames["inv2"].copy()
    night = (inv1.index >= DAY + timedelta(hours=21)) & (
        inv1.index < DAY + timedelta(hours=22, minutes=30)
    )
    inv1.loc[night, "ac_power"] = (
        4321.0  # stuck at a daytime value after sunset (19:26 UTC in Zurich)
    )
    gap = (inv2.index >= DAY + timedelta(hours=10)) & (
        inv2.index <= DAY + timedelta(hours=10, minutes=40)
    )
    inv2.loc[gap, "ac_power"] = np.linspace(
        inv2.loc[gap, "ac_power"].iloc[0], inv2.loc[gap, "ac_power"].iloc[-1], gap.sum()
    )
    frames = {**frames, "inv1": inv1, "inv2": inv2}
    outcomes = mask_checks(_long(frames, "testsite"), plant, DAY, DAY + timedelta(hours=24))
    failed = _failed(outcomes)
    assert failed["stale_values"] == [13, 21, 22], [o.detail for o in outcomes if not o.passed]
    assert failed["interpolated_values"] == [10]
    at = {(o.hour.hour, o.name): o for o in outcomes}
    assert "inv1.ac_power (night)" in at[(21, "stale_values")].detail
    assert "wx1.module_temperature" in at[(13, "stale_values")].detail
    # the same site without its weather station: night is taken from the sun's position
    no_sensor = {k: v for k, v in frames.items() if k != "wx1"}
    site = plant.sites[0].model_copy(
        update={"devices": [d for d in plant.sites[0].devices if d.id != "wx1"]}
    )
    blind = plant.model_copy(update={"sites": [site]})
    outcomes = mask_checks(_long(no_sensor, "testsite"), blind, DAY, DAY + timedelta(hours=24))
    assert _failed(outcomes)["stale_values"] == [21, 22]


def test_clipping_hours_report_minutes_and_the_energy_lost(day):
    # the same plant with 75 kW inverters behind 110 kWp: the simulator clips them around noon
    plant, _ = day
    site = plant.sites[0]
    small = [
        d.model_copy(update={"p_ac_kw": 75.0}) if d.kind == "inverter" else d for d in site.devices
    ]
    site = site.model_copy(update={"devices": small})
    clipped_plant = plant.model_copy(update={"sites": [site]})
    frames = backfill_frames(
        site, 4, DAY - timedelta(minutes=15), DAY + timedelta(hours=24, minutes=15)
    )
    samples = _long(frames, "testsite")
    outcomes = [
        o
        for o in mask_checks(samples, clipped_plant, DAY, DAY + timedelta(hours=24))
        if o.name == "clipping"
    ]
    flagged = [o for o in outcomes if not o.passed]
    assert 2 <= len(flagged) <= 8 and all(8 <= o.hour.hour <= 13 for o in flagged), [
        (o.hour, o.detail) for o in flagged
    ]
    kpis = hourly_kpis_range(samples, clipped_plant, DAY, DAY + timedelta(hours=24)).set_index(
        ["period_start", "device_id"]
    )
    for o in flagged:
        kwh = float(re.search(r"'inv1.ac_power': '\d+ min, ([\d.]+) kWh'", o.detail).group(1))
        model = kpis.loc[
            (o.hour, "inv1"), "energy_clipped_kwh"
        ]  # the model's own clipping of that hour
        assert kwh == pytest.approx(model, rel=0.05, abs=0.05), (o.hour, o.detail, model)
