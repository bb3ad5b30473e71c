"""Hourly KPI rows per inverter and per site from long-format samples. No Dagster, no database.

Everything is computed on a one-minute grid of time-weighted means (`interval_means`), whose integrals
add up exactly to the trapezoid rule over the raw samples.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.kpi.availability import category_seconds, classify_intervals
from pv_platform.kpi.energy import counter_energy, integrate_rate, interval_means
from pv_platform.kpi.expected import expected_ac_power_w
from pv_platform.kpi.grid import seconds_outside_band
from pv_platform.kpi.periods import SITE_DEVICE, derive_ratios, site_rows
from pv_platform.kpi.temperature import (
    T_REF_IEC_C,
    cell_temperature_c,
    temperature_corrected_reference_energy_kwh,
)
from pv_platform.plant import Device, Plant, Site

__all__ = ["HOURLY_METRICS", "SITE_DEVICE", "hourly_kpis", "hourly_kpis_range"]
STEP_S = 60.0
HOURLY_METRICS = [
    "ac_energy", "ac_power", "poa_irradiance", "module_temperature", "ambient_temperature", "wind_speed",
    "export_energy", "import_energy", "grid_frequency", "grid_voltage", "power_factor",
]  # fmt: skip


class _Samples:
    """Samples of one window grouped by (site, device, metric), each a UTC-indexed Series."""

    def __init__(self, samples: pd.DataFrame) -> None:
        self.groups: dict[tuple[str, str, str], pd.Series] = {}
        if samples.empty:
            return
        for key, part in samples.groupby(["site_id", "device_id", "metric"], sort=False):
            self.groups[key] = pd.Series(
                part["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(part["ts"])
            )

    def get(self, site_id: str, device_id: str, metric: str) -> pd.Series | None:
        return self.groups.get((site_id, device_id, metric))

    def devices_with(self, site_id: str, metric: str) -> list[str]:
        return [d for (s, d, m) in self.groups if s == site_id and m == metric]

    def count(self, site_id: str, device_id: str, start: datetime, end: datetime) -> int:
        total = 0
        for (s, d, _), series in self.groups.items():
            if s == site_id and d == device_id:
                total += int(((series.index >= start) & (series.index < end)).sum())
        return total


def _mean_over_devices(
    data: _Samples, site_id: str, metric: str, start: datetime, end: datetime
) -> np.ndarray:
    """Per-minute mean of a metric over every device of the site that reports it (NaN: none did)."""
    columns = [
        interval_means(data.get(site_id, d, metric), start, end, STEP_S)["mean"].to_numpy()
        for d in data.devices_with(site_id, metric)
    ]
    n = int(round((pd.Timestamp(end) - pd.Timestamp(start)).total_seconds() / STEP_S))
    if not columns:
        return np.full(n, np.nan)
    stacked = np.vstack(columns)
    counts = np.sum(~np.isnan(stacked), axis=0)
    return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)


def site_insolation_kwh_m2(data: _Samples, site_id: str, start: datetime, end: datetime) -> float:
    """POA insolation of a site in [start, end) [kWh/m^2]: the mean over its POA sensors (trapezoid rule)."""
    values = [
        integrate_rate(data.get(site_id, d, "poa_irradiance"), start, end) / 1000.0
        for d in data.devices_with(site_id, "poa_irradiance")
    ]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _maintenance_mask(site: Site, device_id: str, minutes: pd.DatetimeIndex) -> np.ndarray:
    mask = np.zeros(len(minutes), bool)
    for window in site.maintenance:
        if window.covers(device_id):
            mask |= (minutes >= pd.Timestamp(window.start)) & (minutes < pd.Timestamp(window.end))
    return mask


def _site_weather(data: _Samples, site: Site, start: datetime, end: datetime) -> pd.DataFrame:
    poa = _mean_over_devices(data, site.id, "poa_irradiance", start, end)
    t_mod = _mean_over_devices(data, site.id, "module_temperature", start, end)
    t_amb = _mean_over_devices(data, site.id, "ambient_temperature", start, end)
    wind = _mean_over_devices(data, site.id, "wind_speed", start, end)
    from_module = np.asarray(
        cell_temperature_c(np.nan_to_num(poa), module_temperature_c=t_mod), dtype=float
    )
    from_ambient = np.asarray(
        cell_temperature_c(
            np.nan_to_num(poa),
            ambient_temperature_c=t_amb,
            wind_speed_ms=np.where(np.isnan(wind), 1.0, wind),
        ),
        dtype=float,
    )
    t_cell = np.where(np.isnan(t_mod), from_ambient, from_module)
    return pd.DataFrame({"poa": poa, "t_cell": t_cell})


def _site_grid(
    data: _Samples, site: Site, start: datetime, end: datetime
) -> tuple[dict, np.ndarray]:
    """Grid-meter parts of a site row, and the per-minute grid-outage flags (all False without a meter)."""
    n = int(round((pd.Timestamp(end) - pd.Timestamp(start)).total_seconds() / STEP_S))
    meters = [d.id for d in site.devices if d.kind == "meter"]
    parts = dict.fromkeys(
        ("export_kwh", "import_kwh", "reactive_kvarh", "time_freq_out_s", "time_volt_out_s"),
        float("nan"),
    )
    outage = np.zeros(n, bool)
    if not meters:
        return parts, outage
    exported = [
        counter_energy(s, start, end)
        for m in meters
        if (s := data.get(site.id, m, "export_energy")) is not None
    ]
    imported = [
        counter_energy(s, start, end)
        for m in meters
        if (s := data.get(site.id, m, "import_energy")) is not None
    ]
    parts["export_kwh"] = float(np.nansum(exported)) / 1000.0 if exported else float("nan")
    parts["import_kwh"] = float(np.nansum(imported)) / 1000.0 if imported else float("nan")
    freq = _mean_over_devices(data, site.id, "grid_frequency", start, end)
    volt = _mean_over_devices(data, site.id, "grid_voltage", start, end)
    f_lo, f_hi = site.grid.frequency_hz
    v_lo, v_hi = site.grid.voltage_v
    parts["time_freq_out_s"] = seconds_outside_band(freq[~np.isnan(freq)], f_lo, f_hi, STEP_S)
    parts["time_volt_out_s"] = seconds_outside_band(volt[~np.isnan(volt)], v_lo, v_hi, STEP_S)
    outage = ((freq < f_lo) | (freq > f_hi)) | ((volt < v_lo) | (volt > v_hi))
    pf = _mean_over_devices(data, site.id, "power_factor", start, end)
    meter_power = [
        interval_means(s, start, end, STEP_S)["mean"].to_numpy()
        for m in meters
        if (s := data.get(site.id, m, "ac_power")) is not None
    ]
    if meter_power:
        p_w = np.abs(np.nanmean(np.vstack(meter_power), axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            q_w = p_w * np.sqrt(np.clip(1.0 / np.square(pf) - 1.0, 0.0, None))
        parts["reactive_kvarh"] = (
            float(np.nansum(q_w)) * STEP_S / 3.6e6 if np.isfinite(q_w).any() else float("nan")
        )
    return parts, outage


def _inverter_row(
    data: _Samples, site: Site, inv: Device, wx: pd.DataFrame, grid_outage: np.ndarray,
    insolation: float, t_ref_nrel_c: float, start: datetime, end: datetime,
) -> dict:  # fmt: skip
    minutes = pd.date_range(pd.Timestamp(start), periods=len(wx), freq=f"{int(STEP_S)}s")
    counter = data.get(site.id, inv.id, "ac_energy")
    power = data.get(site.id, inv.id, "ac_power")
    energy_wh = counter_energy(counter, start, end) if counter is not None else float("nan")
    if not np.isfinite(energy_wh) and power is not None:
        energy_wh = integrate_rate(power, start, end)
    ac_w = (
        interval_means(power, start, end, STEP_S)["mean"].to_numpy()
        if power is not None
        else np.full(len(wx), np.nan)
    )
    poa, t_cell = wx["poa"].to_numpy(), wx["t_cell"].to_numpy()
    expected_w = expected_ac_power_w(
        np.nan_to_num(poa),
        np.where(np.isnan(t_cell), 25.0, t_cell),
        inv.p_dc_kw,
        inv.p_ac_kw,
        inv.gamma_pdc_per_c,
    )
    expected_w = np.where(np.isnan(poa), np.nan, expected_w)
    cats = classify_intervals(
        poa, ac_w, _maintenance_mask(site, inv.id, minutes), grid_outage, site.daylight_poa_wm2
    )
    seconds = category_seconds(cats, STEP_S)
    valid = ~np.isnan(poa) & ~np.isnan(t_cell)

    def ref_energy(t_ref: float) -> float:
        if not valid.any():
            return float("nan")
        return temperature_corrected_reference_energy_kwh(
            poa[valid], t_cell[valid], inv.p_dc_kw, inv.gamma_pdc_per_c, t_ref, STEP_S / 3600.0
        )

    energy_kwh = energy_wh / 1000.0
    row = {
        "site_id": site.id, "device_id": inv.id, "period_start": pd.Timestamp(start), "period_h": 1.0,
        "p_dc_kw": inv.p_dc_kw, "p_ac_kw": inv.p_ac_kw,
        "energy_ac_kwh": energy_kwh,
        "insolation_poa_kwh_m2": insolation,
        "ref_energy_stc_kwh": inv.p_dc_kw * insolation if np.isfinite(energy_kwh) else float("nan"),
        "ref_energy_iec_kwh": ref_energy(T_REF_IEC_C),
        "ref_energy_nrel_kwh": ref_energy(t_ref_nrel_c) if np.isfinite(t_ref_nrel_c) else float("nan"),
        "t_cell_x_insolation": float(np.nansum(np.where(valid, poa * t_cell, 0.0)) * STEP_S / 3.6e6),
        "energy_expected_kwh": float(np.nansum(expected_w)) * STEP_S / 3.6e6 if (~np.isnan(expected_w)).any() else float("nan"),
        "energy_lost_kwh": float(np.nansum(np.where(cats == "forced_outage", expected_w, 0.0))) * STEP_S / 3.6e6,
        "samples": data.count(site.id, inv.id, start, end),
    }  # fmt: skip
    row.update({f"time_{k}_s": v for k, v in seconds.items()})
    return row


def hourly_kpis(
    samples: pd.DataFrame,
    plant: Plant,
    start: datetime,
    end: datetime,
    t_ref_nrel_c: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per inverter and one per site (`device_id == '*'`) for the window [start, end).

    samples : long format (site_id, device_id, metric, ts, value), covering the window and some margin
    t_ref_nrel_c : per site, the typical-year irradiance-weighted cell temperature [°C] for NREL's PR'
    """
    return _hourly(_Samples(samples), plant, start, end, t_ref_nrel_c or {})


def _hourly(
    data: _Samples, plant: Plant, start: datetime, end: datetime, t_ref: dict[str, float]
) -> pd.DataFrame:
    inverter_rows, extras = [], []
    for site in plant.sites:
        insolation = site_insolation_kwh_m2(data, site.id, start, end)
        wx = _site_weather(data, site, start, end)
        grid_parts, outage = _site_grid(data, site, start, end)
        for inv in site.inverters:
            inverter_rows.append(
                _inverter_row(
                    data,
                    site,
                    inv,
                    wx,
                    outage,
                    insolation,
                    t_ref.get(site.id, float("nan")),
                    start,
                    end,
                )
            )
        extras.append({"site_id": site.id, "period_start": pd.Timestamp(start), **grid_parts})
    grid_columns = (
        "export_kwh",
        "import_kwh",
        "reactive_kvarh",
        "time_freq_out_s",
        "time_volt_out_s",
    )
    inverters = derive_ratios(
        pd.DataFrame(inverter_rows).assign(**dict.fromkeys(grid_columns, np.nan))
    )
    sites = site_rows(inverters, pd.DataFrame(extras))
    return pd.concat([inverters, sites], ignore_index=True)


def hourly_kpis_range(
    samples: pd.DataFrame,
    plant: Plant,
    start: datetime,
    end: datetime,
    t_ref_nrel_c: dict[str, float] | None = None,
) -> pd.DataFrame:
    """`hourly_kpis` for every whole hour in [start, end)."""
    data = _Samples(samples)
    hours = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="h", inclusive="left")
    frames = [
        _hourly(
            data,
            plant,
            h.to_pydatetime(),
            (h + pd.Timedelta(hours=1)).to_pydatetime(),
            t_ref_nrel_c or {},
        )
        for h in hours
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
