"""The detectors as per-site, per-hour data-quality outcomes (the same `CheckOutcome` as
`kpi.quality.run_checks`, stored in `kpi_quality` and reported as asset checks of `hourly_kpis`):
stale values day and night for every numeric signal, interpolated stretches, clipping."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.analytics import masks
from pv_platform.analytics.sun import solar_elevation_deg
from pv_platform.kpi.expected import clipping_loss_w, expected_ac_power_w
from pv_platform.kpi.quality import NOT_FROZEN, WARN, CheckOutcome
from pv_platform.kpi.samples import SampleSet, as_sample_set
from pv_platform.kpi.temperature import cell_temperature_c
from pv_platform.plant import Plant, Site
from pv_platform.vocabulary import Metric

MASK_CHECK_NAMES = ("stale_values", "interpolated_values", "clipping")
STALE_MINUTES = 10.0
SLOW_SIGNALS = {
    Metric.MODULE_TEMPERATURE: 30.0,
    Metric.AMBIENT_TEMPERATURE: 30.0,
    Metric.CABINET_TEMPERATURE: 30.0,
}
INTERPOLATION_MINUTES = 10.0
CLIPPED_MINUTES_WARN = 30  # an inverter clipped this long in an hour is reported (WARN)


def _window(ts_us: np.ndarray, minutes: float, at_least: int) -> int:
    """Samples in `minutes` at the signal's median spacing (at least `at_least`)."""
    step_s = float(np.median(np.diff(ts_us))) / 1e6 if len(ts_us) > 1 else 60.0
    return max(at_least, int(np.ceil(minutes * 60.0 / max(step_s, 1e-3))))


class _SunUp:
    """Whether the sun is up at the site, on a one-minute grid computed once for all its signals."""

    def __init__(self, site: Site, first_us: int, last_us: int) -> None:
        self.first_us = first_us - first_us % 60_000_000
        n = int((last_us - self.first_us) // 60_000_000) + 2
        grid = pd.date_range(pd.Timestamp(self.first_us * 1000, tz="UTC"), periods=n, freq="1min")
        self.up = solar_elevation_deg(grid, site.latitude, site.longitude) > 0

    def at(self, ts_us: np.ndarray) -> np.ndarray:
        i = np.clip((ts_us - self.first_us) // 60_000_000, 0, len(self.up) - 1)
        return self.up[i]


def _signal_flags(
    key, ts_us: np.ndarray, v: np.ndarray, limits: dict, meters: set, sun: _SunUp
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stale, interpolated, sun up) masks of one signal's raw samples."""
    index = pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC")
    x = pd.Series(v, index=index)
    sun_up = sun.at(ts_us)
    allowed = masks.constant_by_nature(key[2], x, sun_up, limits.get(key[1]))
    if key[1] in meters:  # a meter's night import (auxiliaries) is constant at its resolution
        allowed |= ~sun_up
    window = _window(ts_us, SLOW_SIGNALS.get(key[2], STALE_MINUTES), 3)
    stale = masks.stale(x, window=window, allowed=allowed).to_numpy()
    flat_dark = allowed | (~sun_up & (np.abs(v) <= masks.DARK_WM2))
    line = masks.interpolated(x, window=_window(ts_us, INTERPOLATION_MINUTES, 6), allowed=flat_dark)
    return stale, line.to_numpy(), sun_up


def _site_problems(
    series: SampleSet, site: Site, start: pd.Timestamp, n: int
) -> dict[str, list[dict]]:
    """Per check, per hour: {entity: flagged samples (or clipped minutes)}."""
    limits = {d.id: d.p_ac_kw * 1000.0 for d in site.inverters}
    meters = {d.id for d in site.devices if d.kind == "meter"}
    found = {name: [{} for _ in range(n)] for name in MASK_CHECK_NAMES}
    keys = [k for k in series if k[0] == site.id and k[2] not in NOT_FROZEN]
    stamps = [series.arrays(k)[0] for k in keys if len(series.arrays(k)[0])]
    if not stamps:
        return found
    sun = _SunUp(site, min(int(t[0]) for t in stamps), max(int(t[-1]) for t in stamps))
    for key in keys:
        ts_us, v = series.arrays(key)
        if len(v) < 3:
            continue
        stale, line, sun_up = _signal_flags(key, ts_us, v, limits, meters, sun)
        entity = f"{key[1]}.{key[2]}"
        for name, mask in (("stale_values", stale), ("interpolated_values", line)):
            hour = (ts_us[mask] - start.value // 1000) // 3_600_000_000
            daylight = sun_up[mask]
            for h in np.unique(hour[(hour >= 0) & (hour < n)]):
                night = "" if daylight[hour == h].any() else " (night)"
                found[name][h][entity + night] = int((hour == h).sum())
        if key[2] == Metric.AC_POWER and key[1] in limits:
            for h, text in _clipped_hours(series, site, key, start, n).items():
                found["clipping"][h][entity] = text
    return found


def _site_minutes(series: SampleSet, site: Site, metric: str, start: pd.Timestamp, n: int):
    """Per-minute mean of a metric over the site's devices that report it (None: none does)."""
    end = start + pd.Timedelta(hours=n)
    found = [
        series.step_means((site.id, d.id, metric), start, end, 60.0, 900.0) for d in site.devices
    ]
    columns = [f[0] for f in found if f is not None]
    if not columns:
        return None
    stacked = np.vstack(columns)
    counts = (~np.isnan(stacked)).sum(axis=0)
    return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)


def _clipped_hours(
    series: SampleSet, site: Site, key, start: pd.Timestamp, n: int
) -> dict[int, str]:
    """Hours an inverter spent CLIPPED_MINUTES_WARN or more clipped: 'minutes, energy' where the energy is
    the expected-power model's unclipped power less the actual one over the clipped minutes [kWh] (the
    model needs the site's POA; without it, minutes only)."""
    inv = site.device(key[1])
    power = series.step_means(key, start, start + pd.Timedelta(hours=n), 60.0, 900.0)[0]
    clipped = masks.clipping(pd.Series(power), inv.p_ac_kw * 1000.0).to_numpy()
    minutes = clipped.reshape(n, 60).sum(axis=1)
    if not (minutes >= CLIPPED_MINUTES_WARN).any():
        return {}
    poa = _site_minutes(series, site, Metric.POA_IRRADIANCE, start, n)
    lost_kwh = np.full(n, np.nan)
    if poa is not None:
        g = np.nan_to_num(poa[clipped])  # the model on the clipped minutes only
        t_mod = _site_minutes(series, site, Metric.MODULE_TEMPERATURE, start, n)
        t_cell = np.full(len(g), 25.0)
        if t_mod is not None:
            t_cell = np.asarray(cell_temperature_c(g, module_temperature_c=t_mod[clipped]), float)
            t_cell = np.where(np.isnan(t_cell), 25.0, t_cell)
        args = (g, t_cell, inv.p_dc_kw, inv.p_ac_kw, inv.gamma_pdc_per_c)
        unclipped = expected_ac_power_w(*args) + clipping_loss_w(*args)
        lost_w = np.zeros(len(clipped))
        lost_w[clipped] = np.clip(unclipped - np.nan_to_num(power[clipped]), 0.0, None)
        lost_kwh = lost_w.reshape(n, 60).sum(axis=1) / 60.0 / 1000.0
    return {
        int(h): f"{int(minutes[h])} min"
        + (f", {lost_kwh[h]:.2f} kWh" if np.isfinite(lost_kwh[h]) else "")
        for h in np.flatnonzero(minutes >= CLIPPED_MINUTES_WARN)
    }


def mask_checks(
    samples: pd.DataFrame | SampleSet, plant: Plant, start: datetime, end: datetime
) -> list[CheckOutcome]:
    """len(MASK_CHECK_NAMES) outcomes per site and hour of [start, end). WARN only: a stale or
    interpolated signal is suspect data, clipping is the plant's design (reported, with its minutes)."""
    series = as_sample_set(samples)
    first = pd.Timestamp(start)
    n = int(round((pd.Timestamp(end) - first).total_seconds() / 3600.0))
    hours = first + pd.to_timedelta(np.arange(n), unit="h")
    text = {"stale_values": "stuck at one value", "interpolated_values": "on a straight line (filled gap)",
            "clipping": "clipped at the AC rating (minutes, energy lost)"}  # fmt: skip
    out = []
    for site in plant.sites:
        found = _site_problems(series, site, first, n)
        for name in MASK_CHECK_NAMES:
            for hour, problems in zip(hours, found[name], strict=True):
                detail = f"{text[name]}: {problems}" if problems else f"no {name.replace('_', ' ')}"
                keys = sorted({f"{site.id}.{e.removesuffix(' (night)')}" for e in problems})
                out.append(CheckOutcome(hour, name, not problems, WARN, detail,
                                        {"entities": len(problems), "entity_keys": keys}, site.id))  # fmt: skip
    return out
