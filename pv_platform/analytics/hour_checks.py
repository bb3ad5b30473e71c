"""The detectors as per-site, per-hour data-quality outcomes (the same `CheckOutcome` as
`kpi.quality.run_checks`, stored in `kpi_quality` and reported as asset checks of `hourly_kpis`):
stale values day and night for every numeric signal, interpolated stretches, clipping."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.analytics import masks
from pv_platform.analytics.sun import solar_elevation_deg
from pv_platform.kpi.quality import NOT_FROZEN, WARN, CheckOutcome
from pv_platform.kpi.samples import SampleSet, as_sample_set
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


def _signal_flags(
    site: Site, key, ts_us: np.ndarray, v: np.ndarray, limits: dict, meters: set
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stale, interpolated, sun up) masks of one signal's raw samples."""
    index = pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC")
    x = pd.Series(v, index=index)
    sun_up = solar_elevation_deg(index, site.latitude, site.longitude) > 0
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
    for key in (k for k in series if k[0] == site.id and k[2] not in NOT_FROZEN):
        ts_us, v = series.arrays(key)
        if len(v) < 3:
            continue
        stale, line, sun_up = _signal_flags(site, key, ts_us, v, limits, meters)
        entity = f"{key[1]}.{key[2]}"
        for name, mask in (("stale_values", stale), ("interpolated_values", line)):
            hour = (ts_us[mask] - start.value // 1000) // 3_600_000_000
            daylight = sun_up[mask]
            for h in np.unique(hour[(hour >= 0) & (hour < n)]):
                night = "" if daylight[hour == h].any() else " (night)"
                found[name][h][entity + night] = int((hour == h).sum())
        if key[2] == Metric.AC_POWER and key[1] in limits:
            means = series.step_means(key, start, start + pd.Timedelta(hours=n), 60.0, 900.0)
            clipped = masks.clipping(pd.Series(means[0]), limits[key[1]]).to_numpy()
            per_hour = clipped.reshape(n, 60).sum(axis=1)
            for h in np.flatnonzero(per_hour >= CLIPPED_MINUTES_WARN):
                found["clipping"][h][entity] = int(per_hour[h])
    return found


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
            "clipping": "clipped at the AC rating [min]"}  # fmt: skip
    out = []
    for site in plant.sites:
        found = _site_problems(series, site, first, n)
        for name in MASK_CHECK_NAMES:
            for hour, problems in zip(hours, found[name], strict=True):
                detail = f"{text[name]}: {problems}" if problems else f"no {name.replace('_', ' ')}"
                out.append(CheckOutcome(hour, name, not problems, WARN, detail,
                                        {"entities": len(problems)}, site.id))  # fmt: skip
    return out
