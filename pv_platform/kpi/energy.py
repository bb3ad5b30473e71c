"""Energy and insolation over a window from sampled series. Pure functions on pandas Series.

Counters: energy comes from lifetime-counter differences (SunSpec `WH`), with resets and backwards
steps treated as missing, never as negative energy. Rates (power, irradiance) are integrated with the
trapezoid rule after clipping the series to the window by linear interpolation at its edges.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

SECONDS_PER_HOUR = 3600.0


def _at(series: pd.Series, ts: pd.Timestamp, max_gap_s: float) -> float | None:
    """Linear interpolation of `series` at `ts` from its neighbours, if both lie within max_gap_s."""
    if ts in series.index:
        return float(series.loc[ts])
    before = series[series.index < ts]
    after = series[series.index > ts]
    if before.empty or after.empty:
        return None
    t0, v0 = before.index[-1], float(before.iloc[-1])
    t1, v1 = after.index[0], float(after.iloc[0])
    if (t1 - t0).total_seconds() > max_gap_s:
        return None
    frac = (ts - t0).total_seconds() / (t1 - t0).total_seconds()
    return v0 + frac * (v1 - v0)


def clip_to_window(
    series: pd.Series, start: datetime, end: datetime, max_gap_s: float = 900.0
) -> pd.Series:
    """The samples inside [start, end] plus values interpolated at the two edges (when bracketed)."""
    if not series.index.is_monotonic_increasing:
        series = series.sort_index()
    if series.index.has_duplicates:
        series = series[~series.index.duplicated(keep="last")]
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    inside = series[(series.index > start_ts) & (series.index < end_ts)]
    edges = {}
    for ts in (start_ts, end_ts):
        value = _at(series, ts, max_gap_s)
        if value is not None:
            edges[ts] = value
    return pd.concat([inside, pd.Series(edges, dtype=float)]).sort_index()


def integrate_rate(
    series: pd.Series, start: datetime, end: datetime, max_gap_s: float = 900.0
) -> float:
    """∫ rate dt over [start, end] by the trapezoid rule [rate unit · h]; gaps > max_gap_s count as 0.

    series : a rate (W, W/m^2, ...) indexed by UTC timestamps
    returns : the integral in rate-unit hours (W·h, W·h/m^2, ...); NaN when no sample is in the window
    """
    clipped = clip_to_window(series, start, end, max_gap_s)
    if len(clipped) < 2:
        return float("nan")
    t_s = (clipped.index - clipped.index[0]).total_seconds().to_numpy()
    v = clipped.to_numpy(dtype=float)
    dt = np.diff(t_s)
    area = 0.5 * (v[1:] + v[:-1]) * dt
    area[dt > max_gap_s] = 0.0
    return float(area.sum() / SECONDS_PER_HOUR)


def counter_energy(
    series: pd.Series, start: datetime, end: datetime, max_gap_s: float = 900.0
) -> float:
    """Energy from a lifetime counter over [start, end] [counter unit], resets and drops skipped.

    series : a TOTAL_INCREASING counter (e.g. Wh) indexed by UTC timestamps
    returns : the sum of non-negative differences inside the window; NaN when it cannot be bracketed
    """
    clipped = clip_to_window(series, start, end, max_gap_s)
    if len(clipped) < 2:
        return float("nan")
    diffs = np.diff(clipped.to_numpy(dtype=float))
    return float(diffs[diffs >= 0].sum())


def interval_means(
    series: pd.Series,
    start: datetime,
    end: datetime,
    step_s: float = 60.0,
    max_gap_s: float = 900.0,
) -> pd.DataFrame:
    """Time-weighted mean of a sampled rate over each step of [start, end), and the seconds covered.

    Linear between samples (the trapezoid rule), edges interpolated; a stretch between two samples
    more than max_gap_s apart is not covered (its mean is NaN where nothing else covers the step).
    The integrals add up exactly to `integrate_rate` over the window.

    returns : DataFrame indexed by step start with `mean` [rate unit] and `covered_s` [s]
    """
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    n_steps = int(round((end_ts - start_ts).total_seconds() / step_s))
    index = start_ts + pd.to_timedelta(np.arange(n_steps) * step_s, unit="s")
    out = pd.DataFrame({"mean": np.nan, "covered_s": 0.0}, index=index)
    clipped = clip_to_window(series, start, end, max_gap_s)
    if len(clipped) < 2 or n_steps == 0:
        return out
    t = (clipped.index - start_ts).total_seconds().to_numpy()
    v = clipped.to_numpy(dtype=float)
    grid = np.arange(n_steps + 1) * step_s
    knots = np.union1d(t, grid[(grid > t[0]) & (grid < t[-1])])
    values = np.interp(knots, t, v)
    dt = np.diff(knots)
    mid = knots[:-1] + dt / 2
    pos = np.clip(np.searchsorted(t, mid), 1, len(t) - 1)
    valid = (t[pos] - t[pos - 1]) <= max_gap_s
    area = 0.5 * (values[1:] + values[:-1]) * dt * valid
    bins = np.clip((mid // step_s).astype(int), 0, n_steps - 1)
    integral = np.bincount(bins, weights=area, minlength=n_steps)
    covered = np.bincount(bins, weights=dt * valid, minlength=n_steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean"] = np.where(covered > 0, integral / covered, np.nan)
    out["covered_s"] = covered
    return out


EntityKey = tuple[str, str, str]  # (site_id, device_id, metric)


def split_by_entity(samples: pd.DataFrame) -> dict[EntityKey, pd.Series]:
    """Long-format samples -> one time-indexed value series per (site, device, metric), in time order.

    Uses the integer `entity_id` column when the storage layer supplied one (a year of minute data
    splits in milliseconds); otherwise groups on the three name columns.
    """
    if samples.empty:
        return {}
    if "entity_id" in samples.columns:
        ids = samples["entity_id"].to_numpy()
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
        groups = np.split(order, cuts)
    else:
        groups = list(
            samples.groupby(["site_id", "device_id", "metric"], sort=False).indices.values()
        )
    ts, values = pd.DatetimeIndex(samples["ts"]), samples["value"].to_numpy(dtype=float)
    names = samples[["site_id", "device_id", "metric"]].to_numpy()
    out: dict[EntityKey, pd.Series] = {}
    for rows in groups:
        index = ts[rows]
        if not index.is_monotonic_increasing:
            sort = np.argsort(index.asi8, kind="stable")
            rows, index = rows[sort], index[sort]
        out[tuple(names[rows[0]])] = pd.Series(values[rows], index=index)
    return out
