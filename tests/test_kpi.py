"""KPI maths against hand-worked examples (arithmetic written out) and against pvlib."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pv_platform.kpi import counter_energy, hourly_kpis, integrate_rate, performance_ratio
from pv_platform.kpi.yields import final_yield_h, reference_yield_h
from pv_platform.plant import parse_plant

H0 = datetime(2026, 6, 21, 11, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)


def test_pr_of_a_hand_worked_hour():
    # 100 kWp array, 0.8 kWh/m2 of sun in the hour, 68 kWh delivered:
    # Y_f = 68 / 100 = 0.68 h; Y_r = 0.8 / 1 = 0.8 h; PR = 0.68 / 0.8 = 0.85
    assert final_yield_h(68.0, 100.0) == pytest.approx(0.68)
    assert reference_yield_h(0.8) == pytest.approx(0.8)
    assert performance_ratio(68.0, 0.8, 100.0) == pytest.approx(0.85)


def test_pr_is_nan_without_sun():
    assert np.isnan(performance_ratio(0.0, 0.0, 100.0))
    assert np.all(np.isnan(performance_ratio(np.array([0.0]), np.array([0.0]), 100.0)))


def test_counter_energy_interpolates_edges_and_skips_a_reset():
    # Samples at 10:50, 11:10, 11:30, 11:50, 12:10 of a Wh counter that resets once to 0 at 11:30.
    idx = pd.DatetimeIndex(
        [H0 - timedelta(minutes=10) + timedelta(minutes=20 * i) for i in range(5)]
    )
    counter = pd.Series([1000.0, 3000.0, 0.0, 2000.0, 4000.0], index=idx)
    # edge at 11:00: halfway 1000..3000 -> 2000; edge at 12:00: halfway 2000..4000 -> 3000
    # steps: 2000->3000 (+1000), 3000->0 (reset, skipped), 0->2000 (+2000), 2000->3000 (+1000) = 4000 Wh
    assert counter_energy(counter, H0, H1, max_gap_s=1800) == pytest.approx(4000.0)
    # with the default 15-minute bracket the 20-minute spacing cannot be interpolated at the edges:
    # only the inside steps count, 0->2000 = 2000 Wh (the reset still skipped)
    assert counter_energy(counter, H0, H1) == pytest.approx(2000.0)


def test_integrate_rate_trapezoid_and_gaps():
    # 800 W/m2 for a whole hour sampled each minute = 800 Wh/m2
    idx = pd.date_range(H0, H1, freq="1min")
    assert integrate_rate(pd.Series(800.0, index=idx), H0, H1) == pytest.approx(800.0)
    # a ramp 0 -> 600 over the hour: mean 300 -> 300 Wh/m2
    ramp = pd.Series(np.linspace(0, 600, len(idx)), index=idx)
    assert integrate_rate(ramp, H0, H1) == pytest.approx(300.0)
    # samples 11:00..11:14 and 11:46..12:00: the 32-minute hole (> max_gap_s) counts as nothing,
    # not as interpolated sun: 800 W/m2 x (14 + 14) min / 60 = 373.33 Wh/m2
    holey = pd.Series(
        800.0, index=idx[(idx < H0 + timedelta(minutes=15)) | (idx > H0 + timedelta(minutes=45))]
    )
    assert integrate_rate(holey, H0, H1, max_gap_s=900) == pytest.approx(800.0 * 28 / 60)


def _plant():
    return parse_plant(
        {
            "sites": [
                {
                    "id": "s1", "name": "S1", "latitude": 47, "longitude": 8,
                    "devices": [
                        {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 90},
                        {"id": "inv2", "kind": "inverter", "integration": "simulator", "p_dc_kw": 50, "p_ac_kw": 45},
                        {"id": "wx", "kind": "weather_station", "integration": "simulator"},
                    ],
                }
            ]
        }
    )  # fmt: skip


def test_hourly_kpis_of_a_hand_worked_hour():
    idx = pd.date_range(H0 - timedelta(minutes=5), H1 + timedelta(minutes=5), freq="1min")
    minutes = (idx - H0).total_seconds() / 60.0
    rows = []
    # inv1: counter rises 68 kWh/h (68000/60 Wh a minute); inv2: 34 kWh/h; POA a flat 800 W/m2
    for t, m in zip(idx, minutes, strict=True):
        rows += [
            ("s1", "inv1", "ac_energy", t, 5e6 + m * 68000 / 60),
            ("s1", "inv2", "ac_energy", t, 2e6 + m * 34000 / 60),
            ("s1", "wx", "poa_irradiance", t, 800.0),
        ]
    samples = pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])
    kpis = hourly_kpis(samples, _plant(), H0, H1).set_index("device_id")
    # inv1: 68 kWh / 100 kWp = 0.68 h; H = 0.8 kWh/m2 -> PR 0.85
    assert kpis.loc["inv1", "energy_ac_kwh"] == pytest.approx(68.0)
    assert kpis.loc["inv1", "insolation_poa_kwh_m2"] == pytest.approx(0.8)
    assert kpis.loc["inv1", "pr"] == pytest.approx(0.85)
    # inv2: 34 / 50 = 0.68 h -> PR 0.85; site: (68 + 34) / (100 + 50) = 0.68 h -> PR 0.85
    assert kpis.loc["inv2", "pr"] == pytest.approx(0.85)
    assert kpis.loc["*", "energy_ac_kwh"] == pytest.approx(102.0)
    assert kpis.loc["*", "p_dc_kw"] == pytest.approx(150.0)
    assert kpis.loc["*", "pr"] == pytest.approx(0.85)


def test_hourly_energy_falls_back_to_power_without_a_counter():
    idx = pd.date_range(H0, H1, freq="1min")
    samples = pd.DataFrame(
        [("s1", "inv1", "ac_power", t, 45000.0) for t in idx]
        + [("s1", "wx", "poa_irradiance", t, 500.0) for t in idx],
        columns=["site_id", "device_id", "metric", "ts", "value"],
    )
    kpis = hourly_kpis(samples, _plant(), H0, H1).set_index("device_id")
    # 45 kW for 1 h = 45 kWh; 45 / 100 = 0.45 h over 0.5 h -> PR 0.9; inv2 sent nothing -> NaN, not 0
    assert kpis.loc["inv1", "pr"] == pytest.approx(0.9)
    assert np.isnan(kpis.loc["inv2", "energy_ac_kwh"])
    assert kpis.loc["*", "pr"] == pytest.approx(0.9)  # the site counts only inverters that reported
