"""Hourly KPI rows per inverter and per site from long-format samples. No Dagster, no database."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.kpi.energy import counter_energy, integrate_rate
from pv_platform.kpi.yields import final_yield_h, performance_ratio, reference_yield_h
from pv_platform.plant import Plant

SITE_DEVICE = "*"
HOURLY_METRICS = ["ac_energy", "ac_power", "poa_irradiance"]


def _series(samples: pd.DataFrame, site_id: str, device_id: str | None, metric: str) -> pd.Series:
    mask = (samples["site_id"] == site_id) & (samples["metric"] == metric)
    if device_id is not None:
        mask &= samples["device_id"] == device_id
    part = samples.loc[mask]
    return pd.Series(part["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(part["ts"]))


def site_insolation_kwh_m2(
    samples: pd.DataFrame, site_id: str, start: datetime, end: datetime
) -> float:
    """POA insolation of a site in [start, end) [kWh/m^2]: the mean over its POA sensors."""
    rows = samples[(samples["site_id"] == site_id) & (samples["metric"] == "poa_irradiance")]
    values = [
        integrate_rate(_series(samples, site_id, dev, "poa_irradiance"), start, end) / 1000.0
        for dev in rows["device_id"].unique()
    ]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def inverter_energy_kwh(
    samples: pd.DataFrame, site_id: str, device_id: str, start: datetime, end: datetime
) -> float:
    """AC energy of one inverter in [start, end) [kWh]: counter differences, else integrated power."""
    counter = _series(samples, site_id, device_id, "ac_energy")
    energy_wh = counter_energy(counter, start, end) if len(counter) else float("nan")
    if not np.isfinite(energy_wh):
        energy_wh = integrate_rate(_series(samples, site_id, device_id, "ac_power"), start, end)
    return energy_wh / 1000.0


def hourly_kpis(
    samples: pd.DataFrame, plant: Plant, start: datetime, end: datetime
) -> pd.DataFrame:
    """One row per inverter and one per site (`device_id == '*'`) for the window [start, end)."""
    rows = []
    for site in plant.sites:
        insolation = site_insolation_kwh_m2(samples, site.id, start, end)
        site_energy, site_p_dc, counted = 0.0, 0.0, 0
        for inv in site.inverters:
            n = int(((samples["site_id"] == site.id) & (samples["device_id"] == inv.id)).sum())
            energy = (
                inverter_energy_kwh(samples, site.id, inv.id, start, end) if n else float("nan")
            )
            if np.isfinite(energy):
                site_energy, site_p_dc, counted = (
                    site_energy + energy,
                    site_p_dc + inv.p_dc_kw,
                    counted + 1,
                )
            rows.append((site.id, inv.id, energy, inv.p_dc_kw, n, insolation))
        site_row_energy = site_energy if counted else float("nan")
        rows.append(
            (site.id, SITE_DEVICE, site_row_energy, site_p_dc or float("nan"), counted, insolation)
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "site_id",
            "device_id",
            "energy_ac_kwh",
            "p_dc_kw",
            "samples",
            "insolation_poa_kwh_m2",
        ],
    )
    df["period_start"] = pd.Timestamp(start)
    df["reference_yield_h"] = reference_yield_h(df["insolation_poa_kwh_m2"])
    df["final_yield_h"] = final_yield_h(df["energy_ac_kwh"], df["p_dc_kw"].astype(float))
    df["pr"] = performance_ratio(
        df["energy_ac_kwh"], df["insolation_poa_kwh_m2"], df["p_dc_kw"].astype(float)
    )
    return df


def hourly_kpis_range(
    samples: pd.DataFrame, plant: Plant, start: datetime, end: datetime
) -> pd.DataFrame:
    """`hourly_kpis` for every whole hour in [start, end)."""
    hours = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="h", inclusive="left")
    frames = [
        hourly_kpis(samples, plant, h.to_pydatetime(), (h + pd.Timedelta(hours=1)).to_pydatetime())
        for h in hours
    ]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else hourly_kpis(samples, plant, start, start)
    )
