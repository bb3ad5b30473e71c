"""Hourly KPI rows per inverter and per site from long-format samples. No Dagster, no database.

Everything is computed at once for a whole range of hours on a one-minute grid of time-weighted means
(`interval_means`, whose integrals add up exactly to the trapezoid rule over the raw samples), then
summed per hour: a year of minute data is one pass per series, not 8760 small ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.kpi.availability import CATEGORIES, category_codes
from pv_platform.kpi.energy import clip_arrays
from pv_platform.kpi.expected import clipping_loss_w, expected_ac_power_w
from pv_platform.kpi.periods import SITE_DEVICE, derive_ratios, site_rows
from pv_platform.kpi.samples import SampleSet, as_sample_set
from pv_platform.kpi.temperature import T_REF_IEC_C, cell_temperature_c
from pv_platform.plant import Device, Plant, Site
from pv_platform.vocabulary import Metric

__all__ = ["EDGE_MARGIN", "HOURLY_METRICS", "SITE_DEVICE", "hourly_kpis", "hourly_kpis_range"]
STEP_S = 60.0
PER_HOUR = 60  # minutes
MAX_GAP_S = 900.0
# read this much either side of a range: a sample within MAX_GAP_S of an edge interpolates the edge
EDGE_MARGIN = timedelta(seconds=MAX_GAP_S)
HOURLY_METRICS = [
    Metric.AC_ENERGY, Metric.AC_POWER, Metric.POA_IRRADIANCE, Metric.MODULE_TEMPERATURE, Metric.AMBIENT_TEMPERATURE, Metric.WIND_SPEED,
    Metric.EXPORT_ENERGY, Metric.IMPORT_ENERGY, Metric.GRID_FREQUENCY, Metric.GRID_VOLTAGE, Metric.POWER_FACTOR,
    Metric.ACTIVE_POWER_LIMIT_PCT,
]  # fmt: skip
FORCED = CATEGORIES.index("forced_outage")
GRID_OUTAGE, PLANNED = CATEGORIES.index("grid_outage"), CATEGORIES.index("planned")
GRID_COLUMNS = ("export_kwh", "import_kwh", "reactive_kvarh", "time_freq_out_s", "time_volt_out_s")


class _Range:
    """Samples of a range by (site, device, metric), and the minute/hour grid of [start, end)."""

    def __init__(self, samples: pd.DataFrame | SampleSet, start: datetime, end: datetime) -> None:
        self.start, self.end = pd.Timestamp(start), pd.Timestamp(end)
        self.n_hours = int(round((self.end - self.start).total_seconds() / 3600.0))
        self.n_min = self.n_hours * PER_HOUR
        self.minutes = self.start + pd.to_timedelta(np.arange(self.n_min) * STEP_S, unit="s")
        self.hours = self.start + pd.to_timedelta(np.arange(self.n_hours), unit="h")
        self.samples = as_sample_set(samples)

    def seconds(self, site_id: str, device_id: str, metric: str):
        """(seconds from the range start, values) of an entity, or None."""
        return self.samples.seconds((site_id, device_id, metric), self.start)

    def has(self, site_id: str, device_id: str, metric: str) -> bool:
        return (site_id, device_id, metric) in self.samples

    def devices_with(self, site_id: str, metric: str) -> list[str]:
        return [d for (s, d, m) in self.samples if s == site_id and m == metric]

    def means(
        self, site_id: str, device_id: str, metric: str
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-minute time-weighted means and covered seconds (computed once per entity)."""
        return self.samples.step_means(
            (site_id, device_id, metric), self.start, self.end, STEP_S, MAX_GAP_S
        )

    def per_hour(self, minute_values: np.ndarray) -> np.ndarray:
        """Sum of per-minute values in each hour (NaN minutes ignored)."""
        return np.nansum(minute_values.reshape(self.n_hours, PER_HOUR), axis=1)

    def any_per_hour(self, minute_mask: np.ndarray) -> np.ndarray:
        return minute_mask.reshape(self.n_hours, PER_HOUR).any(axis=1)

    def samples_per_hour(self, site_id: str, device_id: str) -> np.ndarray:
        counts = np.zeros(self.n_hours, int)
        start_us = self.start.value // 1000
        for s, d, m in self.samples:
            if s == site_id and d == device_id:
                hour = (self.samples.arrays((s, d, m))[0] - start_us) // 3_600_000_000
                counts += np.bincount(
                    hour[(hour >= 0) & (hour < self.n_hours)], minlength=self.n_hours
                )
        return counts

    def site_mean(self, site_id: str, metric: str) -> np.ndarray:
        """Per-minute mean of a metric over every device of the site that reports it (NaN: none did)."""
        columns = [self.means(site_id, d, metric)[0] for d in self.devices_with(site_id, metric)]
        if not columns:
            return np.full(self.n_min, np.nan)
        stacked = np.vstack(columns)
        counts = np.sum(~np.isnan(stacked), axis=0)
        return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)


def counter_energy_per_hour(
    found: tuple[np.ndarray, np.ndarray] | None, grid: _Range
) -> np.ndarray:
    """Energy from a lifetime counter in each hour [counter unit]: non-negative steps between the samples
    and the values interpolated at hour boundaries (when bracketed within MAX_GAP_S); NaN for an hour with
    fewer than two such points. Same result as `counter_energy` hour by hour.

    found : (seconds from the range start, counter values), as `_Range.seconds` gives them
    """
    out = np.full(grid.n_hours, np.nan)
    if found is None:
        return out
    t_s, v = clip_arrays(found[0], found[1], 0.0, grid.n_hours * 3600.0, MAX_GAP_S)
    bounds = np.arange(1, grid.n_hours) * 3600.0
    inside = (bounds > t_s[0]) & (bounds < t_s[-1]) if len(t_s) else np.zeros(0, bool)
    bounds = bounds[inside]
    pos = np.searchsorted(t_s, bounds)
    bracketed = (
        t_s[np.clip(pos, 0, len(t_s) - 1)] - t_s[np.clip(pos - 1, 0, len(t_s) - 1)]
    ) <= MAX_GAP_S
    exact = t_s[np.clip(pos, 0, len(t_s) - 1)] == bounds
    add = bounds[bracketed & ~exact]
    points_t = np.concatenate([t_s, add])
    points_v = np.concatenate([v, np.interp(add, t_s, v)]) if len(t_s) else v
    order = np.argsort(points_t, kind="stable")
    points_t, points_v = points_t[order], points_v[order]
    if len(points_t) < 2:
        return out
    start_hour = np.floor(points_t[:-1] / 3600.0).astype(
        int
    )  # a point on a boundary starts that hour
    end_hour = np.ceil(points_t[1:] / 3600.0).astype(int) - 1  # ...and ends the previous one
    same = start_hour == end_hour
    diffs = np.diff(points_v)
    keep = same & (diffs >= 0) & (start_hour >= 0) & (start_hour < grid.n_hours)
    energy = np.bincount(start_hour[keep], weights=diffs[keep], minlength=grid.n_hours)[
        : grid.n_hours
    ]
    steps = np.bincount(
        start_hour[same & (start_hour >= 0) & (start_hour < grid.n_hours)], minlength=grid.n_hours
    )[: grid.n_hours]
    return np.where(steps > 0, energy, np.nan)


def _maintenance_mask(site: Site, device_id: str, minutes: pd.DatetimeIndex) -> np.ndarray:
    mask = np.zeros(len(minutes), bool)
    for window in site.maintenance:
        if window.covers(device_id):
            mask |= (minutes >= pd.Timestamp(window.start)) & (minutes < pd.Timestamp(window.end))
    return mask


def _weather(grid: _Range, site: Site) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-minute POA [W/m^2] and cell temperature [°C], and POA insolation per hour [kWh/m^2]."""
    poa = grid.site_mean(site.id, Metric.POA_IRRADIANCE)
    t_mod = grid.site_mean(site.id, Metric.MODULE_TEMPERATURE)
    t_amb = grid.site_mean(site.id, Metric.AMBIENT_TEMPERATURE)
    wind = grid.site_mean(site.id, Metric.WIND_SPEED)
    g = np.nan_to_num(poa)
    from_module = np.asarray(cell_temperature_c(g, module_temperature_c=t_mod), dtype=float)
    from_ambient = np.asarray(
        cell_temperature_c(
            g, ambient_temperature_c=t_amb, wind_speed_ms=np.where(np.isnan(wind), 1.0, wind)
        ),
        dtype=float,
    )
    t_cell = np.where(np.isnan(t_mod), from_ambient, from_module)
    # insolation: mean over the POA sensors of each sensor's own trapezoid integral
    per_sensor = []
    for device_id in grid.devices_with(site.id, Metric.POA_IRRADIANCE):
        mean, covered_s = grid.means(site.id, device_id, Metric.POA_IRRADIANCE)
        wh = grid.per_hour(np.nan_to_num(mean * covered_s)) / 3600.0
        covered = grid.per_hour(covered_s)
        per_sensor.append(np.where(covered > 0, wh / 1000.0, np.nan))
    insolation = (
        np.nanmean(np.vstack(per_sensor), axis=0) if per_sensor else np.full(grid.n_hours, np.nan)
    )
    return poa, t_cell, insolation


def _grid(grid: _Range, site: Site) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Grid-meter columns per hour and per-minute grid-outage flags (all False without a meter)."""
    nan = np.full(grid.n_hours, np.nan)
    parts = {c: nan.copy() for c in GRID_COLUMNS}
    meters = [d.id for d in site.devices if d.kind == "meter"]
    if not meters:
        return parts, np.zeros(grid.n_min, bool)
    for column, metric in (
        ("export_kwh", Metric.EXPORT_ENERGY),
        ("import_kwh", Metric.IMPORT_ENERGY),
    ):
        per_meter = [
            counter_energy_per_hour(grid.seconds(site.id, m, metric), grid) for m in meters
        ]
        parts[column] = np.nansum(np.vstack(per_meter), axis=0) / 1000.0 if per_meter else nan
    freq, volt = (
        grid.site_mean(site.id, Metric.GRID_FREQUENCY),
        grid.site_mean(site.id, Metric.GRID_VOLTAGE),
    )
    (f_lo, f_hi), (v_lo, v_hi) = site.grid.frequency_hz, site.grid.voltage_v
    f_out, v_out = (freq < f_lo) | (freq > f_hi), (volt < v_lo) | (volt > v_hi)
    parts["time_freq_out_s"] = grid.per_hour(f_out.astype(float)) * STEP_S
    parts["time_volt_out_s"] = grid.per_hour(v_out.astype(float)) * STEP_S
    pf = grid.site_mean(site.id, Metric.POWER_FACTOR)
    power = [
        grid.means(site.id, m, Metric.AC_POWER)[0]
        for m in meters
        if grid.has(site.id, m, Metric.AC_POWER)
    ]
    if power:
        stacked = np.vstack(power)
        p_w = np.abs(
            np.where(
                np.isnan(stacked).all(axis=0),
                np.nan,
                np.nansum(stacked, axis=0) / np.maximum((~np.isnan(stacked)).sum(axis=0), 1),
            )
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            q_w = p_w * np.sqrt(np.clip(1.0 / np.square(pf) - 1.0, 0.0, None))
        parts["reactive_kvarh"] = np.where(
            grid.any_per_hour(np.isfinite(q_w)), grid.per_hour(q_w) * STEP_S / 3.6e6, np.nan
        )
    return parts, f_out | v_out


def _inverter(
    grid: _Range, site: Site, inv: Device, poa, t_cell, insolation, outage, t_ref_nrel_c: float
) -> dict[str, object]:
    """The hourly columns of one inverter (arrays of n_hours, or one value for every hour)."""
    minute_h = STEP_S / 3600.0
    energy_wh = counter_energy_per_hour(grid.seconds(site.id, inv.id, Metric.AC_ENERGY), grid)
    power = grid.means(site.id, inv.id, Metric.AC_POWER)
    ac_w = power[0] if power is not None else np.full(grid.n_min, np.nan)
    if power is not None:  # no counter (or no counter step in an hour): integrate power
        power_wh = grid.per_hour(np.nan_to_num(power[0] * power[1])) / 3600.0
        has_power = grid.per_hour(power[1]) > 0
        energy_wh = np.where(np.isnan(energy_wh) & has_power, power_wh, energy_wh)
    t_cell_model = np.where(np.isnan(t_cell), 25.0, t_cell)
    expected_w = expected_ac_power_w(
        np.nan_to_num(poa), t_cell_model, inv.p_dc_kw, inv.p_ac_kw, inv.gamma_pdc_per_c
    )
    expected_w = np.where(np.isnan(poa), np.nan, expected_w)
    cats = category_codes(
        poa, ac_w, _maintenance_mask(site, inv.id, grid.minutes), outage, site.daylight_poa_wm2
    )
    valid = ~np.isnan(poa) & ~np.isnan(t_cell)
    g_kw_m2 = np.where(valid, poa, 0.0) / 1000.0
    any_valid = grid.any_per_hour(valid)

    def ref_energy(t_ref: float) -> np.ndarray:
        contribution = (
            inv.p_dc_kw
            * g_kw_m2
            * (1.0 + inv.gamma_pdc_per_c * (np.where(valid, t_cell, t_ref) - t_ref))
            * minute_h
        )
        return np.where(any_valid, grid.per_hour(contribution), np.nan)

    energy_kwh = energy_wh / 1000.0
    columns = {
            "site_id": site.id, "device_id": inv.id, "period_h": 1.0,
            "p_dc_kw": inv.p_dc_kw, "p_ac_kw": inv.p_ac_kw,
            "energy_ac_kwh": energy_kwh,
            "insolation_poa_kwh_m2": insolation,
            "ref_energy_stc_kwh": np.where(np.isnan(energy_kwh), np.nan, inv.p_dc_kw * insolation),
            "ref_energy_iec_kwh": ref_energy(T_REF_IEC_C),
            "ref_energy_nrel_kwh": ref_energy(t_ref_nrel_c) if np.isfinite(t_ref_nrel_c) else np.nan,
            "t_cell_x_insolation": grid.per_hour(np.where(valid, poa * t_cell, 0.0)) * STEP_S / 3.6e6,
            "energy_expected_kwh": np.where(grid.any_per_hour(~np.isnan(expected_w)), grid.per_hour(expected_w) * minute_h / 1000.0, np.nan),
            "energy_lost_kwh": grid.per_hour(np.where(cats == FORCED, np.nan_to_num(expected_w), 0.0)) * minute_h / 1000.0,
            "samples": grid.samples_per_hour(site.id, inv.id),
    }  # fmt: skip
    columns.update(_loss_columns(grid, inv, poa, t_cell_model, expected_w, cats))
    limit = grid.means(site.id, inv.id, Metric.ACTIVE_POWER_LIMIT_PCT)
    columns["energy_curtailed_kwh"] = grid.per_hour(
        curtailed_w(expected_w, ac_w, limit[0] if limit else None, inv.p_ac_kw, cats)
    ) * (minute_h / 1000.0)
    per_hour = np.bincount(
        np.repeat(np.arange(grid.n_hours), PER_HOUR) * len(CATEGORIES) + cats,
        minlength=grid.n_hours * len(CATEGORIES),
    ).reshape(grid.n_hours, len(CATEGORIES))
    for i, category in enumerate(CATEGORIES):
        columns[f"time_{category}_s"] = per_hour[:, i] * STEP_S
    return columns


def _loss_columns(grid: _Range, inv: Device, poa, t_cell_model, expected_w, cats) -> dict:
    """Per hour [kWh]: the expected energy of grid-outage and of planned minutes (as `energy_lost_kwh` is
    that of forced-outage minutes), and the energy the model's inverter clips (the loss waterfall's parts)."""
    to_kwh = STEP_S / 3600.0 / 1000.0
    exp_w = np.nan_to_num(expected_w)
    clip_w = clipping_loss_w(
        np.nan_to_num(poa), t_cell_model, inv.p_dc_kw, inv.p_ac_kw, inv.gamma_pdc_per_c
    )
    return {
        "energy_lost_grid_kwh": grid.per_hour(np.where(cats == GRID_OUTAGE, exp_w, 0.0)) * to_kwh,
        "energy_lost_planned_kwh": grid.per_hour(np.where(cats == PLANNED, exp_w, 0.0)) * to_kwh,
        "energy_clipped_kwh": grid.per_hour(np.where(np.isnan(poa), 0.0, clip_w)) * to_kwh,
    }


def curtailed_w(
    expected_w: np.ndarray,
    ac_w: np.ndarray,
    limit_pct: np.ndarray | None,
    p_ac_kw: float,
    cats: np.ndarray | None = None,
) -> np.ndarray:
    """Power held back by an active-power limit [W] per minute: expected (unconstrained, already at most
    the AC rating) minus actual power while the limit is below the expected power, never more than
    expected − limit (what an inverter below its limit lost was not the setpoint's doing) nor below 0;
    0 with no limit known, and in outage minutes (the outage categories own those).

    Parameters
    ----------
    expected_w : expected AC power [W] (NaN: unknown, counts 0)
    ac_w : actual AC power [W] (NaN: taken as the limit)
    limit_pct : active-power limit [% of the AC rating], or None when the inverter reports none
    p_ac_kw : AC rating [kW]
    cats : availability category code per minute (`category_codes`), optional

    >>> curtailed_w(np.array([800.0, 800.0, 500.0]), np.array([600.0, 550.0, 500.0]),
    ...             np.array([60.0, 60.0, 60.0]), 1.0).tolist()
    [200.0, 200.0, 0.0]
    """
    exp = np.nan_to_num(np.asarray(expected_w, float))
    if limit_pct is None:
        return np.zeros(len(exp))
    limit_w = np.asarray(limit_pct, float) / 100.0 * p_ac_kw * 1000.0
    held = np.where(np.isnan(ac_w), limit_w, np.maximum(limit_w, np.nan_to_num(ac_w)))
    out = np.where(np.isfinite(limit_w) & (limit_w < exp), np.clip(exp - held, 0.0, None), 0.0)
    if cats is not None:
        out = np.where(np.isin(cats, (FORCED, GRID_OUTAGE, PLANNED)), 0.0, out)
    return out


def _stack(parts: list[dict[str, object]], hours: pd.DatetimeIndex) -> pd.DataFrame:
    """One frame from per-device column dicts (each column an array per hour or one value), built in
    one go rather than by concatenating a small frame per device."""
    n = len(hours)
    columns = {
        name: np.concatenate([np.broadcast_to(np.asarray(part[name]), n) for part in parts])
        for name in parts[0]
    }
    keys = {k: columns.pop(k) for k in ("site_id", "device_id")}
    return pd.DataFrame({**keys, "period_start": np.tile(hours, len(parts)), **columns})


def hourly_kpis_range(
    samples: pd.DataFrame | SampleSet,
    plant: Plant,
    start: datetime,
    end: datetime,
    t_ref_nrel_c: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per inverter and one per site (`device_id == '*'`) for every whole UTC hour in [start, end).

    samples : a SampleSet, or long format (site_id, device_id, metric, ts, value), covering the range
        plus EDGE_MARGIN either side
    t_ref_nrel_c : per site, the typical-year irradiance-weighted cell temperature [°C] for NREL's PR'
    """
    grid = _Range(samples, start, end)
    if grid.n_hours <= 0:
        return pd.DataFrame()
    t_ref = t_ref_nrel_c or {}
    inverters, extras = [], []
    for site in plant.sites:
        poa, t_cell, insolation = _weather(grid, site)
        parts, outage = _grid(grid, site)
        for inv in site.inverters:
            inverters.append(
                _inverter(
                    grid,
                    site,
                    inv,
                    poa,
                    t_cell,
                    insolation,
                    outage,
                    t_ref.get(site.id, float("nan")),
                )
            )
        extras.append(pd.DataFrame({"site_id": site.id, "period_start": grid.hours, **parts}))
    inverter_rows = derive_ratios(
        _stack(inverters, grid.hours).assign(**dict.fromkeys(GRID_COLUMNS, np.nan))
    )
    sites = site_rows(inverter_rows, pd.concat(extras, ignore_index=True))
    return pd.concat([inverter_rows, sites], ignore_index=True).sort_values(
        ["period_start", "site_id", "device_id"], ignore_index=True
    )


def hourly_kpis(
    samples: pd.DataFrame | SampleSet,
    plant: Plant,
    start: datetime,
    end: datetime,
    t_ref_nrel_c: dict[str, float] | None = None,
) -> pd.DataFrame:
    """`hourly_kpis_range` for one hour [start, end)."""
    return hourly_kpis_range(samples, plant, start, end, t_ref_nrel_c)
