"""Energy and insolation over a window from sampled series. Pure functions on pandas Series, each a thin
wrapper over a numpy kernel on (seconds, values) arrays that the hourly KPIs call directly.

Counters: energy comes from lifetime-counter differences (SunSpec `WH`), with resets and backwards
steps treated as missing, never as negative energy. Rates (power, irradiance) are integrated with the
trapezoid rule after clipping the series to the window by linear interpolation at its edges.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.kpi.numeric import ratio

SECONDS_PER_HOUR = 3600.0


def seconds_since(index: pd.DatetimeIndex, origin: datetime) -> np.ndarray:
    """Seconds from `origin` to each timestamp [s] (float64: µs-exact over decades)."""
    return (index.as_unit("ns").asi8 - pd.Timestamp(origin).as_unit("ns").value) / 1e9


def _ordered(series: pd.Series) -> pd.Series:
    """In time order, one value per timestamp (the last one)."""
    if not series.index.is_monotonic_increasing:
        series = series.sort_index(kind="stable")
    if series.index.has_duplicates:
        series = series[~series.index.duplicated(keep="last")]
    return series


def _edge(t_s: np.ndarray, v: np.ndarray, at_s: float, max_gap_s: float) -> float | None:
    """Value at `at_s`: the sample there, else linear between its neighbours if they are within max_gap_s."""
    i = int(np.searchsorted(t_s, at_s))
    if i < len(t_s) and t_s[i] == at_s:
        return float(v[i])
    if i == 0 or i == len(t_s) or t_s[i] - t_s[i - 1] > max_gap_s:
        return None
    frac = (at_s - t_s[i - 1]) / (t_s[i] - t_s[i - 1])
    return float(v[i - 1] + frac * (v[i] - v[i - 1]))


def clip_arrays(
    t_s: np.ndarray, v: np.ndarray, start_s: float, end_s: float, max_gap_s: float = 900.0
) -> tuple[np.ndarray, np.ndarray]:
    """Samples strictly inside (start_s, end_s) plus the values at the two edges when bracketed.

    t_s : sample times [s], increasing and unique; v : values
    """
    lo, hi = np.searchsorted(t_s, start_s, "right"), np.searchsorted(t_s, end_s, "left")
    first, last = _edge(t_s, v, start_s, max_gap_s), _edge(t_s, v, end_s, max_gap_s)
    head_t, head_v = ([start_s], [first]) if first is not None else ([], [])
    tail_t, tail_v = ([end_s], [last]) if last is not None else ([], [])
    return (
        np.concatenate([head_t, t_s[lo:hi], tail_t]),
        np.concatenate([head_v, v[lo:hi], tail_v]),
    )


def _window(series: pd.Series, start: datetime, end: datetime, max_gap_s: float):
    """(seconds from start [s], values) of the series clipped to [start, end] (see `clip_arrays`)."""
    series = _ordered(series)
    t_s = seconds_since(series.index, start)
    span_s = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
    return clip_arrays(t_s, series.to_numpy(dtype=float), 0.0, span_s, max_gap_s)


def clip_to_window(
    series: pd.Series, start: datetime, end: datetime, max_gap_s: float = 900.0
) -> pd.Series:
    """The samples inside [start, end] plus values interpolated at the two edges (when bracketed)."""
    t_s, v = _window(series, start, end, max_gap_s)
    return pd.Series(v, index=pd.Timestamp(start) + pd.to_timedelta(np.round(t_s * 1e6), unit="us"))


def integrate_rate(
    series: pd.Series, start: datetime, end: datetime, max_gap_s: float = 900.0
) -> float:
    """∫ rate dt over [start, end] by the trapezoid rule [rate unit · h]; gaps > max_gap_s count as 0.

    series : a rate (W, W/m^2, ...) indexed by UTC timestamps
    returns : the integral in rate-unit hours (W·h, W·h/m^2, ...); NaN when no sample is in the window
    """
    t_s, v = _window(series, start, end, max_gap_s)
    if len(t_s) < 2:
        return float("nan")
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
    _, v = _window(series, start, end, max_gap_s)
    if len(v) < 2:
        return float("nan")
    diffs = np.diff(v)
    return float(diffs[diffs >= 0].sum())


def step_means(
    t_s: np.ndarray, v: np.ndarray, n_steps: int, step_s: float = 60.0, max_gap_s: float = 900.0
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel of `interval_means` on arrays: the window is [0, n_steps * step_s) seconds.

    Each stretch between two samples is integrated by the trapezoid rule, cut at the step boundaries
    it crosses (linear in between); a stretch longer than max_gap_s covers nothing.

    t_s : sample times [s] from the window start, increasing and unique (any outside are clipped)
    returns : (mean [value unit] per step, NaN where uncovered; covered seconds per step [s])
    """
    mean, covered = np.full(n_steps, np.nan), np.zeros(n_steps)
    t, v = clip_arrays(t_s, v, 0.0, n_steps * step_s, max_gap_s)
    if len(t) < 2 or n_steps == 0:
        return mean, covered
    dt = np.diff(t)
    ok = dt <= max_gap_s
    slope = np.diff(v) / dt
    first = np.floor(t[:-1] / step_s)  # the step a stretch starts in
    whole = (
        first == np.ceil(t[1:] / step_s) - 1
    )  # ...and ends in (an end on a boundary: the step before)
    bins, areas, spans = [first[whole]], [0.5 * (v[1:] + v[:-1]) * dt], [dt]
    areas[0], spans[0] = (x[whole] * ok[whole] for x in (areas[0], spans[0]))
    # stretches crossing boundaries: per boundary, the piece before it (from the stretch start or the
    # previous boundary), and after the last boundary of a stretch the piece up to its end
    b = np.arange(1, n_steps) * step_s
    b = b[(b > t[0]) & (b < t[-1])]
    s = np.searchsorted(t, b, "right") - 1  # t[s] <= b < t[s + 1]
    b, s = b[t[s] < b], s[t[s] < b]  # a boundary on a sample cuts nothing
    v_b = v[s] + slope[s] * (b - t[s])
    start = np.maximum(t[s], b - step_s)
    v_start = np.where(start == t[s], v[s], v[s] + slope[s] * (start - t[s]))
    bins.append(np.floor(b / step_s) - 1)
    areas.append(0.5 * (v_start + v_b) * (b - start) * ok[s])
    spans.append((b - start) * ok[s])
    tail = t[s + 1] <= b + step_s
    b, s, v_b = b[tail], s[tail], v_b[tail]
    bins.append(np.floor(b / step_s))
    areas.append(0.5 * (v_b + v[s + 1]) * (t[s + 1] - b) * ok[s])
    spans.append((t[s + 1] - b) * ok[s])
    bins = np.clip(np.concatenate(bins).astype(int), 0, n_steps - 1)
    integral = np.bincount(bins, weights=np.concatenate(areas), minlength=n_steps)
    covered = np.bincount(bins, weights=np.concatenate(spans), minlength=n_steps)
    mean = ratio(integral, covered)
    return mean, covered


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
    series = _ordered(series)
    mean, covered = step_means(
        seconds_since(series.index, start_ts),
        series.to_numpy(dtype=float),
        n_steps,
        step_s,
        max_gap_s,
    )
    return pd.DataFrame({"mean": mean, "covered_s": covered}, index=index)
