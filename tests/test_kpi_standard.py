"""Every KPI formula against a hand-worked example (arithmetic in the comments) or pvlib."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pv_platform.kpi.availability import (
    category_seconds,
    classify_intervals,
    energy_based_availability,
    time_based_availability,
)
from pv_platform.kpi.capacity import capacity_factor
from pv_platform.kpi.energy import integrate_rate, interval_means
from pv_platform.kpi.expected import deviation_fraction, expected_ac_power_w
from pv_platform.kpi.grid import power_factor, seconds_outside_band
from pv_platform.kpi.hourly import hourly_kpis
from pv_platform.kpi.periods import aggregate, local_period_start, period_hours
from pv_platform.kpi.temperature import (
    SAPM_DEFAULT,
    cell_temperature_c,
    temperature_corrected_pr,
    temperature_corrected_reference_energy_kwh,
    typical_year_cell_temperature_c,
)
from pv_platform.kpi.yields import performance_ratio
from pv_platform.plant import parse_plant

H0 = datetime(2026, 6, 21, 10, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)


def test_capacity_factor_hand_worked():
    # 100 kW AC inverter, 1800 kWh in a day: 1800 / (100 * 24) = 0.75; a year of 175,200 kWh: 0.2
    assert capacity_factor(1800.0, 100.0, 24.0) == pytest.approx(0.75)
    assert capacity_factor(175_200.0, 100.0, 8760.0) == pytest.approx(0.2)


def test_temperature_corrected_pr_iec_hand_worked():
    # P0 = 100 kW, gamma = -0.004/°C, two half-hours at 800 W/m2: T_cell 45 °C then 35 °C.
    # reference energy = 100 * 0.8 * (1 - 0.004 * 20) * 0.5 + 100 * 0.8 * (1 - 0.004 * 10) * 0.5
    #                  = 40 * 0.92 + 40 * 0.96 = 36.8 + 38.4 = 75.2 kWh
    ref = temperature_corrected_reference_energy_kwh([800, 800], [45, 35], 100.0, -0.004, 25.0, 0.5)
    assert ref == pytest.approx(75.2)
    # 68 kWh delivered: PR = 68 / 80 = 0.85, PR' = 68 / 75.2 = 0.904255...
    assert performance_ratio(68.0, 0.8, 100.0) == pytest.approx(0.85)
    assert temperature_corrected_pr(68.0, ref) == pytest.approx(68.0 / 75.2)
    # with T_ref = the NREL site value 40 °C: 40 * (1 - 0.004 * 5) + 40 * (1 + 0.004 * 5) = 39.2 + 40.8 = 80
    assert temperature_corrected_reference_energy_kwh(
        [800, 800], [45, 35], 100.0, -0.004, 40.0, 0.5
    ) == pytest.approx(80.0)


def test_nrel_pr_over_typical_conditions_is_plain_pr():
    # at the typical-year mean cell temperature the correction factor is 1: PR'_NREL == PR
    ref = temperature_corrected_reference_energy_kwh([600.0], [31.5], 50.0, -0.0037, 31.5, 1.0)
    assert ref == pytest.approx(50.0 * 0.6)


def test_cell_temperature_equals_pvlib():
    poa, t_mod, t_amb, wind = (
        np.array([200.0, 800.0]),
        np.array([30.0, 50.0]),
        np.array([20.0, 25.0]),
        np.array([1.0, 3.0]),
    )
    expected = pvlib.temperature.sapm_cell_from_module(t_mod, poa, SAPM_DEFAULT["deltaT"])
    np.testing.assert_allclose(cell_temperature_c(poa, module_temperature_c=t_mod), expected)
    expected = pvlib.temperature.sapm_cell(poa, t_amb, wind, **SAPM_DEFAULT)
    np.testing.assert_allclose(
        cell_temperature_c(poa, ambient_temperature_c=t_amb, wind_speed_ms=wind), expected
    )
    # hand check of the module model: T_cell = T_mod + G/1000 * deltaT = 50 + 0.8 * 3 = 52.4 (deltaT 3 °C)
    assert (
        pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
        == SAPM_DEFAULT
    )
    assert float(np.asarray(cell_temperature_c(800.0, module_temperature_c=50.0))) == pytest.approx(
        52.4
    )


def test_typical_year_reference_temperature_is_plausible_and_warmer_in_the_south():
    zurich = typical_year_cell_temperature_c(47.37, 8.54, 410, 30, 180)
    phoenix = typical_year_cell_temperature_c(33.45, -112.07, 331, 30, 180)
    assert 20.0 < zurich < 45.0 and 25.0 < phoenix < 55.0
    assert phoenix > zurich


def test_expected_power_equals_pvlib_pvwatts():
    poa, t_cell = np.array([0.0, 300.0, 800.0, 1100.0]), np.array([10.0, 30.0, 45.0, 60.0])
    pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, 110_000.0, -0.0037) * 0.97
    pac = pvlib.inverter.pvwatts(pdc, 100_000.0 / 0.96, 0.96)
    np.testing.assert_allclose(
        expected_ac_power_w(poa, t_cell, 110.0, 100.0, -0.0037), np.clip(pac, 0, None)
    )
    # clipping: at 1300 W/m2 and 40 °C: DC 110 * 1.3 * (1 - 0.0037 * 15) * 0.97 = 131.0 kW, above the
    # inverter's DC input limit 100 / 0.96 = 104.2 kW: AC is limited to the 100 kW rating
    assert expected_ac_power_w(np.array([1300.0]), np.array([40.0]), 110.0, 100.0, -0.0037)[
        0
    ] == pytest.approx(100_000.0)
    # deviation: 90 kWh actual against 100 expected = -10 %
    assert deviation_fraction(90.0, 100.0) == pytest.approx(-0.1)
    assert np.isnan(deviation_fraction(5.0, 0.0))


def test_availability_categories_and_both_availabilities():
    # six 10-minute intervals:       night, operating, no data, grid outage, planned, forced outage
    poa = np.array([10.0, 600.0, 600.0, 600.0, 600.0, 600.0])
    power = np.array([0.0, 50_000.0, np.nan, 0.0, 0.0, 0.0])
    planned = np.array([False, False, False, False, True, False])
    grid = np.array([False, False, False, True, False, False])
    cats = classify_intervals(poa, power, planned, grid, daylight_poa_wm2=50.0)
    assert list(cats) == [
        "night",
        "operating",
        "no_data",
        "grid_outage",
        "planned",
        "forced_outage",
    ]
    seconds = category_seconds(cats, 600.0)
    assert (
        seconds["operating"] == 600.0
        and seconds["forced_outage"] == 600.0
        and seconds["planned"] == 600.0
    )
    # time-based: operating / (operating + forced) = 600 / 1200 = 0.5 (night, no data, grid, planned excluded)
    assert time_based_availability(seconds["operating"], seconds["forced_outage"]) == pytest.approx(
        0.5
    )
    # energy-based: 8.3 kWh produced, 8.3 kWh expected in the forced outage: 1 - 8.3 / 16.6 = 0.5
    assert energy_based_availability(8.3, 8.3) == pytest.approx(0.5)
    assert energy_based_availability(100.0, 0.0) == pytest.approx(1.0)
    assert np.isnan(time_based_availability(0.0, 0.0))


def test_grid_export_parts():
    # frequency means per minute: two of five outside 49.5-50.5 -> 120 s
    assert seconds_outside_band([50.0, 49.4, 50.1, 50.6, 50.0], 49.5, 50.5, 60.0) == 120.0
    # 30 kWh active, 40 kvarh reactive: PF = 30 / 50 = 0.6
    assert power_factor(30.0, 40.0) == pytest.approx(0.6)


def _plant(extra_site: dict | None = None):
    site = {
        "id": "s1", "name": "S1", "latitude": 47.37, "longitude": 8.54, "timezone": "Europe/Zurich",
        "devices": [
            {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 90, "gamma_pdc_per_c": -0.004},
            {"id": "wx", "kind": "weather_station", "integration": "simulator"},
        ],
    }  # fmt: skip
    site.update(extra_site or {})
    return parse_plant({"sites": [site]})


def _hour(poa_wm2: float, power_w, t_mod_c: float | None = None, step_s: int = 60):
    idx = pd.date_range(H0 - timedelta(minutes=10), H1 + timedelta(minutes=10), freq=f"{step_s}s")
    power = (
        np.broadcast_to(np.asarray(power_w, dtype=float), (len(idx),))
        if np.ndim(power_w) == 0
        else np.asarray(power_w)
    )
    rows = [
        ("s1", "inv1", "ac_power", t, p) for t, p in zip(idx, power, strict=True) if np.isfinite(p)
    ]
    rows += [("s1", "wx", "poa_irradiance", t, poa_wm2) for t in idx]
    if t_mod_c is not None:
        rows += [("s1", "wx", "module_temperature", t, t_mod_c) for t in idx]
    return pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])


def test_hourly_row_hand_worked_with_temperature_and_availability():
    # 800 W/m2 all hour, module at 42 °C -> T_cell = 42 + 0.8 * 3 = 44.4 °C; 68 kW for 45 minutes, then 0
    # while the sun shines (a forced outage of 15 minutes).
    idx = pd.date_range(H0 - timedelta(minutes=10), H1 + timedelta(minutes=10), freq="60s")
    power = np.where(
        (idx >= H0 + timedelta(minutes=45)) & (idx < H1 + timedelta(minutes=10)), 0.0, 68_000.0
    )
    samples = _hour(800.0, power, t_mod_c=42.0)
    row = hourly_kpis(samples, _plant(), H0, H1, {"s1": 40.0}).set_index("device_id").loc["inv1"]
    # energy: 68 kW from 10:00 to the last 68 kW sample at 10:44 (44 min) + the ramp to 0 at 10:45
    # (trapezoid: 0.5 min at 68 kW) = 68 * 44.5 / 60 = 50.433 kWh
    assert row["energy_ac_kwh"] == pytest.approx(68.0 * 44.5 / 60.0)
    # PR = 50.433 / (100 * 0.8) = 0.6304
    assert row["pr"] == pytest.approx(68.0 * 44.5 / 60.0 / 80.0)
    # PR'_IEC: reference 100 * 0.8 * (1 - 0.004 * (44.4 - 25)) = 80 * 0.9224 = 73.792 kWh
    assert row["ref_energy_iec_kwh"] == pytest.approx(80.0 * (1 - 0.004 * 19.4))
    assert row["pr_temp_iec"] == pytest.approx(row["energy_ac_kwh"] / (80.0 * (1 - 0.004 * 19.4)))
    # PR'_NREL with T_ref 40 °C: 80 * (1 - 0.004 * 4.4) = 78.592 kWh
    assert row["ref_energy_nrel_kwh"] == pytest.approx(80.0 * (1 - 0.004 * 4.4))
    assert row["t_cell_mean_c"] == pytest.approx(44.4)
    # availability: minute means; the 10:44-10:45 minute averages 34 kW (operating), 15 minutes are down
    assert row["time_operating_s"] == 45 * 60 and row["time_forced_outage_s"] == 15 * 60
    assert row["availability_time"] == pytest.approx(0.75)
    # lost energy = expected power in the 15 down minutes; expected = pvlib at 800 W/m2 and 44.4 °C
    p_exp = expected_ac_power_w(np.array([800.0]), np.array([44.4]), 100.0, 90.0, -0.004)[0]
    assert row["energy_lost_kwh"] == pytest.approx(p_exp / 1000.0 * 0.25)
    assert row["energy_expected_kwh"] == pytest.approx(p_exp / 1000.0)
    assert row["availability_energy"] == pytest.approx(
        1 - 0.25 * p_exp / 1000 / (row["energy_ac_kwh"] + 0.25 * p_exp / 1000)
    )
    # capacity factor (AC): 50.433 kWh / (90 kW * 1 h) = 0.5604
    assert row["capacity_factor_ac"] == pytest.approx(68.0 * 44.5 / 60.0 / 90.0)


def test_planned_maintenance_is_not_downtime():
    window = {
        "maintenance": [
            {
                "start": "2026-06-21T12:45:00+02:00",
                "end": "2026-06-21T13:30:00+02:00",
                "devices": ["inv1"],
            }
        ]
    }
    idx = pd.date_range(H0 - timedelta(minutes=10), H1 + timedelta(minutes=10), freq="60s")
    power = np.where(idx >= H0 + timedelta(minutes=45), 0.0, 68_000.0)
    row = (
        hourly_kpis(_hour(800.0, power, t_mod_c=42.0), _plant(window), H0, H1)
        .set_index("device_id")
        .loc["inv1"]
    )
    # 10:45-11:00 UTC is 12:45-13:00 local, inside the window: planned, not forced
    assert row["time_planned_s"] == 15 * 60 and row["time_forced_outage_s"] == 0
    assert row["availability_time"] == pytest.approx(1.0)


def test_no_data_is_information_unavailable_not_downtime():
    idx = pd.date_range(H0 - timedelta(minutes=10), H1 + timedelta(minutes=10), freq="60s")
    power = np.where(
        (idx > H0 + timedelta(minutes=20)) & (idx < H0 + timedelta(minutes=50)), np.nan, 60_000.0
    )
    row = hourly_kpis(_hour(700.0, power), _plant(), H0, H1).set_index("device_id").loc["inv1"]
    # a 30-minute hole (> 15 min): 29 minutes without data; the rest operating; availability stays 1
    assert row["time_no_data_s"] >= 28 * 60 and row["time_forced_outage_s"] == 0
    assert row["availability_time"] == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    power_kw=st.floats(1.0, 90.0),
    poa_wm2=st.floats(100.0, 1100.0),
    step_s=st.sampled_from([1, 5, 10, 30, 60, 300, 600]),
)
def test_pr_is_invariant_to_the_sampling_interval(power_kw, poa_wm2, step_s):
    # the same constant power and irradiance sampled every step_s seconds gives the same energy,
    # insolation and PR: E = P * 1 h, H = G * 1 h, PR = P / (P0 * G / 1000)
    samples = _hour(poa_wm2, power_kw * 1000.0, step_s=step_s)
    row = hourly_kpis(samples, _plant(), H0, H1).set_index("device_id").loc["inv1"]
    assert row["energy_ac_kwh"] == pytest.approx(power_kw)
    assert row["insolation_poa_kwh_m2"] == pytest.approx(poa_wm2 / 1000.0)
    assert row["pr"] == pytest.approx(power_kw / (100.0 * poa_wm2 / 1000.0))


def test_interval_means_add_up_to_the_trapezoid_integral():
    rng = np.random.default_rng(5)
    idx = pd.date_range(H0 - timedelta(seconds=17), H1 + timedelta(seconds=30), freq="37s")
    series = pd.Series(rng.uniform(0, 900, len(idx)), index=idx)
    means = interval_means(series, H0, H1)
    assert (means["mean"] * means["covered_s"]).sum() / 3600 == pytest.approx(
        integrate_rate(series, H0, H1)
    )


def test_local_days_months_and_dst():
    # Zurich: the local day 2026-03-29 (DST starts) runs 2026-03-28 23:00 UTC to 2026-03-29 22:00 UTC: 23 hours
    start = local_period_start(
        pd.Series([pd.Timestamp("2026-03-29T12:00Z")]), "Europe/Zurich", "daily"
    ).iloc[0]
    assert start == pd.Timestamp("2026-03-28T23:00Z")
    assert period_hours(start, "Europe/Zurich", "daily") == 23.0
    month = local_period_start(
        pd.Series([pd.Timestamp("2026-03-31T22:30Z")]), "Europe/Zurich", "monthly"
    ).iloc[0]
    assert month == pd.Timestamp("2026-03-31T22:00Z")  # 00:30 local on 1 April belongs to April
    # an hour after the DST change still belongs to the month that began at local midnight on 1 March
    # (+01:00), not 28 February 23:00 (what subtracting 29 days of 24 h from 30 March would give)
    after = local_period_start(
        pd.Series([pd.Timestamp("2026-03-30T12:00Z")]), "Europe/Zurich", "monthly"
    )
    assert after.iloc[0] == pd.Timestamp("2026-02-28T23:00Z")
    year = local_period_start(
        pd.Series([pd.Timestamp("2026-07-01T12:00Z")]), "Europe/Zurich", "yearly"
    )
    assert year.iloc[0] == pd.Timestamp("2025-12-31T23:00Z")
    assert period_hours(pd.Timestamp("2026-10-24T22:00Z"), "Europe/Zurich", "daily") == 25.0


def test_daily_row_is_built_from_additive_parts_not_averaged_ratios():
    # two hours: 10 kWh at 0.2 kWh/m2 (PR 0.5) and 72 kWh at 0.8 kWh/m2 (PR 0.9), P0 = 100 kW, P_ac = 90 kW
    # daily PR = 82 / (100 * 1.0) = 0.82, not the mean 0.7; CF = 82 / (90 * 24) = 0.03796
    hours = pd.DataFrame(
        {
            "site_id": "s1", "device_id": "inv1", "p_dc_kw": 100.0, "p_ac_kw": 90.0, "period_h": 1.0,
            "period_start": [pd.Timestamp("2026-06-21T08:00Z"), pd.Timestamp("2026-06-21T09:00Z")],
            "energy_ac_kwh": [10.0, 72.0], "insolation_poa_kwh_m2": [0.2, 0.8], "ref_energy_stc_kwh": [20.0, 80.0],
            "ref_energy_iec_kwh": [19.0, 75.0], "ref_energy_nrel_kwh": [20.0, 80.0], "t_cell_x_insolation": [6.0, 36.0],
            "energy_expected_kwh": [18.0, 76.0], "energy_lost_kwh": [0.0, 4.0], "time_night_s": 0.0, "time_no_data_s": 0.0,
            "time_grid_outage_s": 0.0, "time_planned_s": 0.0, "time_operating_s": [3600.0, 3000.0],
            "time_forced_outage_s": [0.0, 600.0], "export_kwh": np.nan, "import_kwh": np.nan, "reactive_kvarh": np.nan,
            "time_freq_out_s": np.nan, "time_volt_out_s": np.nan, "samples": 60,
        }
    )  # fmt: skip
    day = aggregate(hours, {"s1": "Europe/Zurich"}, "daily").iloc[0]
    assert day["period_start"] == pd.Timestamp("2026-06-20T22:00Z")
    assert day["pr"] == pytest.approx(0.82)
    assert day["pr_temp_iec"] == pytest.approx(82.0 / 94.0)
    assert day["capacity_factor_ac"] == pytest.approx(82.0 / (90.0 * 24.0))
    assert day["availability_time"] == pytest.approx(6600.0 / 7200.0)
    assert day["availability_energy"] == pytest.approx(1 - 4.0 / 86.0)
    assert day["t_cell_mean_c"] == pytest.approx(
        42.0 / 1.0
    )  # insolation-weighted: (0.2*30 + 0.8*45) / 1.0
    assert day["expected_deviation"] == pytest.approx(82.0 / 94.0 - 1)


def test_a_range_in_one_pass_equals_hour_by_hour():
    # irregular samples with a 20-minute hole, a counter reset, and a missing POA stretch over five hours
    rng = np.random.default_rng(11)
    t0 = H0 - timedelta(minutes=15)
    times = t0 + pd.to_timedelta(np.cumsum(rng.uniform(20, 90, 1200)), unit="s")
    times = times[(times < H0 + timedelta(hours=5, minutes=15))]
    times = times[
        ~(
            (times > H0 + timedelta(hours=1, minutes=30))
            & (times < H0 + timedelta(hours=1, minutes=50))
        )
    ]
    power = rng.uniform(0, 85_000, len(times))
    counter = 1e6 + np.cumsum(power * 60 / 3600)
    counter[len(counter) // 2 :] -= counter[len(counter) // 2] - 10.0  # reset mid-range
    rows = [("s1", "inv1", "ac_power", t, p) for t, p in zip(times, power, strict=True)]
    rows += [("s1", "inv1", "ac_energy", t, c) for t, c in zip(times, counter, strict=True)]
    rows += [
        ("s1", "wx", "poa_irradiance", t, g)
        for t, g in zip(times, rng.uniform(0, 1000, len(times)), strict=True)
        if not (H0 + timedelta(hours=3) < t < H0 + timedelta(hours=3, minutes=40))
    ]
    rows += [("s1", "wx", "module_temperature", t, 40.0) for t in times]
    samples = pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])
    whole = hourly_kpis(samples, _plant(), H0, H0 + timedelta(hours=5))
    parts = pd.concat(
        [
            hourly_kpis(samples, _plant(), H0 + timedelta(hours=h), H0 + timedelta(hours=h + 1))
            for h in range(5)
        ],
        ignore_index=True,
    )
    columns = [
        "energy_ac_kwh",
        "insolation_poa_kwh_m2",
        "pr",
        "pr_temp_iec",
        "time_operating_s",
        "time_no_data_s",
        "energy_expected_kwh",
        "samples",
    ]
    pd.testing.assert_frame_equal(whole[columns], parts[columns], check_exact=False, rtol=1e-9)
    assert whole["energy_ac_kwh"].notna().all()
