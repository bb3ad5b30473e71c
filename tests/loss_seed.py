"""Synthetic daily KPI rows of a soiled, degrading site (for the loss analytics tests): known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pv_platform.kpi.periods import derive_ratios


def daily_kpis(
    site_id: str = "s1",
    inverters: tuple[tuple[str, float], ...] = (("inv1", 100.0), ("inv2", 50.0)),
    start: str = "2023-01-01",
    days: int = 3 * 365,
    rd_pct: float = -0.6,
    soiling_per_day: float = 0.0015,
    noise: float = 0.005,
    seed: int = 2,
    tz: str = "Europe/Zurich",
) -> tuple[pd.DataFrame, dict]:
    """`kpi_daily`-shaped rows per inverter (and the site '*', their sum), and the truth: degradation
    rate, per-day soiling ratio, cleaning days. Cleanings every 20-60 days; 5 % of days with a
    2-hour forced outage (energy_lost_kwh = that expected energy); cloudy days below 2 kWh/m²."""
    rng = np.random.default_rng(seed)
    local = pd.date_range(start, periods=days, freq="D", tz=tz)
    t_years = np.arange(days) / 365.0
    ratio, cleanings, since, nxt = np.ones(days), [], 0, int(rng.integers(20, 60))
    for i in range(days):
        if i == nxt:
            cleanings.append(local[i].tz_convert("UTC"))
            since, nxt = 0, i + int(rng.integers(20, 60))
        ratio[i], since = 1.0 - soiling_per_day * since, since + 1
    season = np.sin(2 * np.pi * (t_years - 0.22))
    insolation = np.clip(4.5 + 2.0 * season + rng.normal(0, 1.5, days), 0.3, 8.0)
    t_cell = 25.0 + 12.0 * season + rng.normal(0, 2, days)
    outage = rng.random(days) < 0.05
    rows = []
    for device_id, p_dc in inverters:
        ref_stc = p_dc * insolation
        ref_iec = ref_stc * (1.0 - 0.0037 * (t_cell - 25.0))
        expected = 0.93 * ref_iec
        lost = np.where(outage, 0.2 * expected, 0.0)
        health = (1.0 + rd_pct / 100.0 * t_years) * ratio * (1.0 + rng.normal(0, noise, days))
        rows.append(pd.DataFrame({
            "site_id": site_id, "device_id": device_id, "period_start": local.tz_convert("UTC"),
            "period_h": 24.0, "p_dc_kw": p_dc, "p_ac_kw": 0.9 * p_dc,
            "energy_ac_kwh": (expected - lost) * health, "insolation_poa_kwh_m2": insolation,
            "ref_energy_stc_kwh": ref_stc, "ref_energy_iec_kwh": ref_iec, "ref_energy_nrel_kwh": ref_iec,
            "t_cell_x_insolation": t_cell * insolation, "energy_expected_kwh": expected, "energy_lost_kwh": lost,
            "energy_lost_grid_kwh": 0.0, "energy_lost_planned_kwh": 0.0, "energy_clipped_kwh": 0.0,
            "time_night_s": 40000.0, "time_no_data_s": 0.0, "time_grid_outage_s": 0.0, "time_planned_s": 0.0,
            "time_operating_s": np.where(outage, 39200.0, 46400.0), "time_forced_outage_s": np.where(outage, 7200.0, 0.0),
            "export_kwh": np.nan, "import_kwh": np.nan, "reactive_kvarh": np.nan, "time_freq_out_s": 0.0,
            "time_volt_out_s": 0.0, "samples": 1440,
        }))  # fmt: skip
    inv = pd.concat(rows, ignore_index=True)
    site = inv.groupby("period_start", as_index=False).agg(
        {c: "sum" for c in inv.columns if c not in ("site_id", "device_id", "period_start")}
    )
    site[["period_h", "insolation_poa_kwh_m2", "time_night_s"]] = (
        inv.groupby("period_start")[["period_h", "insolation_poa_kwh_m2", "time_night_s"]]
        .first()
        .to_numpy()
    )
    site = site.assign(site_id=site_id, device_id="*")
    frame = derive_ratios(pd.concat([inv, site], ignore_index=True))
    truth = {"rd_pct": rd_pct, "soiling_ratio": pd.Series(ratio, index=local.tz_convert("UTC")),
             "cleanings": pd.DatetimeIndex(cleanings)}  # fmt: skip
    return frame, truth
