"""The loss waterfall: a hand-worked day, then the KPI pipeline's own rows (hourly KPIs from minute
samples of a soiled, clipping plant with a forced outage and a maintenance window, summed to days):
the parts add up exactly to reference − measured, per day, month, year, inverter and site."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pv_platform.analytics import sun
from pv_platform.analytics.waterfall import (
    CAUSES,
    degradation_factor,
    loss_waterfall,
    roll_up,
    site_sum,
    with_money,
)
from pv_platform.kpi.expected import clipping_loss_w, expected_ac_power_w
from pv_platform.kpi.hourly import hourly_kpis_range
from pv_platform.kpi.periods import aggregate
from pv_platform.plant import PlantFileError, parse_plant


def _causes_sum(w: pd.DataFrame) -> np.ndarray:
    return w[[f"{c}_kwh" for c in CAUSES]].sum(axis=1).to_numpy()


def test_a_hand_worked_day():
    row = pd.DataFrame([{
        "site_id": "s1", "device_id": "inv1", "period_start": pd.Timestamp("2026-06-01", tz="UTC"),
        "ref_energy_stc_kwh": 100.0, "ref_energy_iec_kwh": 95.0, "energy_expected_kwh": 80.0,
        "energy_clipped_kwh": 3.0, "energy_lost_kwh": 5.0, "energy_lost_grid_kwh": 2.0,
        "energy_lost_planned_kwh": 1.0, "energy_ac_kwh": 60.0,
    }])  # fmt: skip
    w = loss_waterfall(row, soiling_ratio=0.98, degradation_factor=0.99).iloc[0]
    # temperature 100 − 95 = 5; irradiance 95 − (80 + 3) = 12; clipping 3; outages 5 + 2 + 1;
    # available 80 − 8 = 72; soiling 0.02 · 72 = 1.44; degradation 0.01 · (72 − 1.44) = 0.7056;
    # unexplained 40 − (5 + 12 + 3 + 8 + 1.44 + 0.7056) = 9.8544
    expected = {"temperature": 5.0, "irradiance": 12.0, "clipping": 3.0, "forced_outage": 5.0,
                "grid_outage": 2.0, "planned": 1.0, "curtailment": 0.0, "soiling": 1.44,
                "degradation": 0.7056, "unexplained": 9.8544}  # fmt: skip
    for cause, kwh in expected.items():
        assert w[f"{cause}_kwh"] == pytest.approx(kwh), cause
    money = with_money(loss_waterfall(row, 0.98, 0.99), {"s1": 0.12}).iloc[0]
    assert money["soiling_money"] == pytest.approx(1.44 * 0.12)
    assert np.isnan(with_money(loss_waterfall(row), {}).iloc[0]["soiling_money"])


def test_degradation_factor_is_linear_in_years_since_commissioning():
    days = pd.DatetimeIndex(["2024-01-01", "2026-01-01"], tz="UTC")
    f = degradation_factor(days, -0.5, pd.Timestamp("2024-01-01", tz="UTC"))
    assert f.tolist() == pytest.approx([1.0, 1.0 - 0.005 * 731 / 365])


PLANT = {
    "sites": [{
        "id": "s1", "name": "S1", "latitude": 47.4, "longitude": 8.5, "timezone": "Europe/Zurich",
        "tariff_per_kwh": 0.11, "currency": "CHF", "cleaning_cost": 400,
        "maintenance": [{"start": "2026-06-02T10:00:00+02:00", "end": "2026-06-02T11:00:00+02:00", "devices": ["inv2"]}],
        "devices": [
            {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 70},
            {"id": "inv2", "kind": "inverter", "integration": "simulator", "p_dc_kw": 50, "p_ac_kw": 45},
            {"id": "wx", "kind": "weather_station", "integration": "simulator"},
        ],
    }]
}  # fmt: skip


def _samples(plant) -> pd.DataFrame:
    """Two June days of minute samples: clear-sky POA, module at 45 °C, each inverter the expected-power
    model × 0.95 (5 % soiling) at its AC limit; inv1 tripped 09:00-10:00 UTC on day 1, inv2 off in its
    maintenance window on day 2."""
    idx = pd.date_range("2026-05-31 21:45", "2026-06-02 22:15", freq="1min", tz="UTC")
    poa = sun.clearsky_poa_wm2(idx, 47.4, 8.5, 30.0, 180.0).to_numpy()
    t_cell = np.full(len(idx), 45.0)
    parts = [pd.DataFrame({"site_id": "s1", "device_id": "wx", "metric": m, "ts": idx, "value": v})
             for m, v in (("poa_irradiance", poa), ("module_temperature", t_cell - 3.0 * poa / 1000))]  # fmt: skip
    for inv in plant.sites[0].inverters:
        args = (poa, t_cell, inv.p_dc_kw, inv.p_ac_kw, inv.gamma_pdc_per_c)
        unclipped = expected_ac_power_w(*args) + clipping_loss_w(*args)
        power = np.minimum(0.95 * unclipped, inv.p_ac_kw * 1000.0)
        off = (inv.id == "inv1") & (idx >= "2026-06-01 09:00") & (idx < "2026-06-01 10:00")
        off |= (inv.id == "inv2") & (idx >= "2026-06-02 08:00") & (idx < "2026-06-02 09:00")
        parts.append(pd.DataFrame({"site_id": "s1", "device_id": inv.id, "metric": "ac_power", "ts": idx,
                                   "value": np.where(off, 0.0, power)}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def test_the_parts_add_up_on_the_pipelines_own_kpi_rows():
    plant = parse_plant(PLANT)
    start, end = (
        pd.Timestamp("2026-05-31 22:00", tz="UTC"),
        pd.Timestamp("2026-06-02 22:00", tz="UTC"),
    )
    hourly = hourly_kpis_range(_samples(plant), plant, start, end)
    daily = aggregate(hourly, {"s1": "Europe/Zurich"}, "daily")
    inverters = daily[daily["device_id"] != "*"].reset_index(drop=True)
    w = loss_waterfall(inverters, soiling_ratio=0.95, degradation_factor=1.0)
    gap = (w["reference_kwh"] - w["measured_kwh"]).to_numpy()
    assert np.abs(_causes_sum(w) - gap).max() < 1e-9
    by = w.set_index(["device_id", w["period_start"].dt.tz_convert("Europe/Zurich").dt.day])
    assert (
        by.loc[("inv1", 1), "forced_outage_kwh"] > 40.0
    )  # a clear hour around 11:00 local of 100 kWp
    assert by.loc[("inv1", 2), "forced_outage_kwh"] == pytest.approx(0.0)
    assert by.loc[("inv2", 2), "planned_kwh"] > 20.0 and by.loc[("inv2", 1), "planned_kwh"] == 0.0
    assert by.loc[("inv1", 1), "clipping_kwh"] > 5.0 and by.loc[("inv2", 1), "clipping_kwh"] == 0.0
    # the plant is the model × 0.95: for inv2 (never clipped) soiling explains the whole 5 %; for inv1 part
    # of the soiling is hidden by clipping (0.95 × unclipped still above the limit), so soiling as 5 % of
    # the clipped expected energy over-counts and the remainder is negative (−2.0 % of the reference)
    ratio = w["unexplained_kwh"] / w["reference_kwh"]
    assert ratio[w["device_id"] == "inv2"].abs().max() < 0.002, ratio
    assert ratio[w["device_id"] == "inv1"].between(-0.025, 0.0).all(), ratio
    for grain in ("monthly", "yearly"):
        up = roll_up(w, {"s1": "Europe/Zurich"}, grain)
        up = pd.concat([up, site_sum(up)], ignore_index=True)
        assert len(up) == 3  # inv1, inv2 and the site
        assert np.abs(_causes_sum(up) - (up["reference_kwh"] - up["measured_kwh"])).max() < 1e-9
        site = up[up["device_id"] == "*"].iloc[0]
        assert site["soiling_kwh"] == pytest.approx(w["soiling_kwh"].sum())
    assert plant.sites[0].tariff_per_kwh == 0.11 and plant.sites[0].currency == "CHF"


def test_a_tariff_that_is_not_a_number_names_the_field():
    bad = {"sites": [{**PLANT["sites"][0], "tariff_per_kwh": "cheap"}]}
    with pytest.raises(PlantFileError, match=r"sites\[0\] \(s1\)\.tariff_per_kwh"):
        parse_plant(bad)


def test_a_hand_worked_day_with_curtailment():
    row = pd.DataFrame([{
        "site_id": "s1", "device_id": "inv1", "period_start": pd.Timestamp("2026-06-01", tz="UTC"),
        "ref_energy_stc_kwh": 100.0, "ref_energy_iec_kwh": 95.0, "energy_expected_kwh": 80.0,
        "energy_clipped_kwh": 3.0, "energy_lost_kwh": 5.0, "energy_lost_grid_kwh": 2.0,
        "energy_lost_planned_kwh": 1.0, "energy_curtailed_kwh": 4.0, "energy_ac_kwh": 60.0,
    }])  # fmt: skip
    w = loss_waterfall(row, soiling_ratio=0.98, degradation_factor=0.99).iloc[0]
    # as the day above, with 4 kWh held back by a limit: available 80 − 8 − 4 = 68; soiling 0.02 · 68
    # = 1.36; degradation 0.01 · (68 − 1.36) = 0.6664; unexplained 40 − (5 + 12 + 3 + 8 + 4 + 1.36
    # + 0.6664) = 5.9736
    expected = {"temperature": 5.0, "irradiance": 12.0, "clipping": 3.0, "forced_outage": 5.0,
                "grid_outage": 2.0, "planned": 1.0, "curtailment": 4.0, "soiling": 1.36,
                "degradation": 0.6664, "unexplained": 5.9736}  # fmt: skip
    for cause, kwh in expected.items():
        assert w[f"{cause}_kwh"] == pytest.approx(kwh), cause
    assert w["expected_available_kwh"] == pytest.approx(68.0)
    assert sum(w[f"{c}_kwh"] for c in CAUSES) == pytest.approx(100.0 - 60.0, abs=1e-12)


def test_curtailment_on_the_pipelines_own_rows_is_apart_from_clipping():
    """inv2 (45 kW) held at 50 % (22.5 kW) by a plant controller 10:00-12:00 UTC on day 2, reporting the
    limit (100 % otherwise): in each of those two hours the expected power is above the limit all along,
    so the curtailed energy is that hour's expected energy − 22.5 kWh (less one edge minute); clipping
    stays the model's (inv2 never clips), and the parts still add up."""
    plant = parse_plant(PLANT)
    samples = _samples(plant)
    limited = (
        (samples["device_id"] == "inv2") & (samples["ts"] >= "2026-06-02 10:00") & (samples["ts"] < "2026-06-02 12:00")
    )  # fmt: skip
    is_power = limited & (samples["metric"] == "ac_power")
    samples.loc[is_power, "value"] = np.minimum(samples.loc[is_power, "value"], 22_500.0)
    ts = samples.loc[(samples["device_id"] == "inv2") & (samples["metric"] == "ac_power"), "ts"]
    in_episode = ((ts >= "2026-06-02 10:00") & (ts < "2026-06-02 12:00")).to_numpy()
    limit = pd.DataFrame({"site_id": "s1", "device_id": "inv2", "metric": "active_power_limit_pct",
                          "ts": ts.to_numpy(), "value": np.where(in_episode, 50.0, 100.0)})  # fmt: skip
    start, end = (
        pd.Timestamp("2026-05-31 22:00", tz="UTC"),
        pd.Timestamp("2026-06-02 22:00", tz="UTC"),
    )
    hourly = hourly_kpis_range(pd.concat([samples, limit], ignore_index=True), plant, start, end)
    inv2 = hourly[hourly["device_id"] == "inv2"].set_index("period_start")
    # the minute grid takes time-weighted means of the samples (trapezoid): the episode's last minute,
    # 11:59-12:00, runs from a 50 % to a 100 % sample, so its limit is 75 % (33.75 kW) and that minute
    # holds back (33.75 − 22.5) kW · 1 min = 0.1875 kWh less than the step would
    for hour, edge_kwh in (("2026-06-02 10:00", 0.0), ("2026-06-02 11:00", (33.75 - 22.5) / 60)):
        row = inv2.loc[pd.Timestamp(hour, tz="UTC")]
        assert row["energy_expected_kwh"] > 30.0
        assert row["energy_curtailed_kwh"] == pytest.approx(
            row["energy_expected_kwh"] - 22.5 - edge_kwh, abs=1e-9
        )
    # so is the minute before the episode (100 % → 50 %: 33.75 kW, below the expected ~40 kW): a ramp of
    # at most (45 − 33.75) kW · 1 min; every other hour holds nothing back
    assert (
        0.0 < inv2.loc[pd.Timestamp("2026-06-02 09:00", tz="UTC"), "energy_curtailed_kwh"] < 0.1875
    )
    hours = pd.DatetimeIndex(["2026-06-02 09:00", "2026-06-02 10:00", "2026-06-02 11:00"], tz="UTC")
    assert inv2.drop(index=hours)["energy_curtailed_kwh"].abs().max() == 0.0
    assert hourly.loc[hourly["device_id"] == "inv1", "energy_curtailed_kwh"].abs().max() == 0.0
    site = hourly[hourly["device_id"] == "*"]["energy_curtailed_kwh"].sum()
    assert site == pytest.approx(inv2["energy_curtailed_kwh"].sum())
    daily = aggregate(hourly, {"s1": "Europe/Zurich"}, "daily")
    w = loss_waterfall(daily[daily["device_id"] != "*"].reset_index(drop=True), 0.95, 1.0)
    assert np.abs(_causes_sum(w) - (w["reference_kwh"] - w["measured_kwh"])).max() < 1e-9
    by = w.set_index(["device_id", w["period_start"].dt.tz_convert("Europe/Zurich").dt.day])
    curtailed = inv2["energy_curtailed_kwh"].sum()
    assert curtailed > 20.0 and by.loc[("inv2", 2), "curtailment_kwh"] == pytest.approx(curtailed)
    assert (
        by.loc[("inv2", 2), "clipping_kwh"] == 0.0 and by.loc[("inv2", 1), "curtailment_kwh"] == 0.0
    )
    # soiling is priced on what the limit left available (2 × 22.5 kWh held at the limit lost nothing
    # to the 5 % soiling): the remainder is −0.05 × 45 kWh = −2.25 kWh, within the 0.2 % model noise
    ref = by.loc[("inv2", 2), "reference_kwh"]
    assert by.loc[("inv2", 2), "unexplained_kwh"] == pytest.approx(-2.25, abs=0.002 * ref)
