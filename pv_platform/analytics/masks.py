"""Data-quality detectors on one signal: a series in, a boolean mask of the same index out.

The methods follow pvanalytics (`quality.gaps.stale_values_diff`, `quality.gaps.interpolation_diff`,
`features.clipping.levels`), vectorised: pvanalytics 0.2.2 works with our pandas 3, but evaluates a Python
function per rolling window (0.13 s per signal-week, about 150 s for a year of 20 inverters' minute data)
and brings statsmodels and scikit-image (~80 MB) for these few lines of arithmetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pv_platform.vocabulary import Metric

STALE_WINDOW = 6  # consecutive equal samples (pvanalytics' default)
INTERPOLATION_WINDOW = 6
CLIP_LIMIT_FRACTION = 0.98  # at or above this fraction of the AC rating a flat power is clipped
CLIP_FLAT_FRACTION = 0.005  # flat: the centred window varies by at most this fraction of the rating
CLIP_WINDOW = 5
CURTAIL_MARGIN = 0.05  # a lower plateau is curtailment when expected power is 5 % above it


def _runs_of(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position, the id of its run of consecutive True flags and that run's length (0 for False)."""
    flags = np.asarray(flags, bool)
    starts = flags & ~np.concatenate([[False], flags[:-1]])
    run_id = np.cumsum(starts)
    lengths = np.bincount(run_id, weights=flags, minlength=run_id.max(initial=0) + 1)
    return run_id, np.where(flags, lengths[run_id], 0)


def _as_mask(values: np.ndarray, like: pd.Series, name: str) -> pd.Series:
    return pd.Series(np.asarray(values, bool), index=like.index, name=name)


def stale(
    x: pd.Series,
    window: int = STALE_WINDOW,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    allowed: pd.Series | np.ndarray | None = None,
) -> pd.Series:
    """Frozen (stale) values: `window` or more consecutive samples equal to the one before, day or night.

    Each sample of such a run but its first (the last genuine reading, which the sensor then repeats) is
    flagged, as pvanalytics `stale_values_diff(mark='tail')` does. NaN and `allowed` samples (values that
    are constant by nature: zero power, a dark irradiance sensor at night, power held at the AC limit)
    break a run and are never flagged.

    Parameters
    ----------
    x : Series
        One signal, in time order [any unit].
    window : int
        Samples that, all equal, make a stale run (>= 2).
    rtol, atol : float
        Equality as in `numpy.isclose` [-, unit of x].
    allowed : bool array-like, optional
        Samples whose constancy is legitimate.

    Returns
    -------
    Series of bool, same index as `x`.

    References
    ----------
    pvanalytics `quality.gaps.stale_values_diff` (after Solar Forecast Arbiter).
    """
    if window < 2:
        raise ValueError(f"stale window is {window} samples; it must be at least 2")
    v = np.asarray(x, dtype=float)
    free = np.ones(len(v), bool) if allowed is None else ~np.asarray(allowed, bool)
    ok = ~np.isnan(v) & free
    same = np.zeros(len(v), bool)
    same[1:] = np.isclose(v[1:], v[:-1], rtol=rtol, atol=atol) & ok[1:] & ok[:-1]
    _, length = _runs_of(same)
    return _as_mask(length >= window - 1, x, "stale")


def interpolated(
    x: pd.Series,
    window: int = INTERPOLATION_WINDOW,
    rtol: float = 1e-8,
    atol: float = 1e-9,
    allowed: pd.Series | np.ndarray | None = None,
) -> pd.Series:
    """Stretches a logger filled with a straight line: a constant, non-zero first difference over `window`
    or more samples. The interior of the line is flagged, not its two ends (those are real readings).

    Parameters
    ----------
    x : Series
        One signal on a regular time grid, in time order [any unit].
    window : int
        Samples on one straight line that make an interpolated stretch (>= 3).
    rtol, atol : float
        Tolerance on the change of the first difference, relative to the signal's largest magnitude and
        absolute. Tight by default: a smooth, noise-free signal (a simulator's sine) bends by ~1e-5 of its
        range per minute, a logger's float interpolation by ~1e-15; a logger that rounds its filled values
        to the sensor's resolution needs an atol of that resolution.
    allowed : bool array-like, optional
        Samples never flagged (e.g. zero power at night, which is a constant, hence a straight line).

    Returns
    -------
    Series of bool, same index as `x`.

    References
    ----------
    pvanalytics `quality.gaps.interpolation_diff` (after Solar Forecast Arbiter).
    """
    if window < 3:
        raise ValueError(f"interpolation window is {window} samples; it must be at least 3")
    v = np.asarray(x, dtype=float)
    n = len(v)
    scale = np.nanmax(np.abs(v)) if n and np.isfinite(v).any() else 0.0
    d1 = np.diff(v)
    straight = np.zeros(n, bool)  # sample i lies on the line through i-1 and i+1
    if n >= 3:
        d2 = np.abs(np.diff(d1))
        moving = np.abs(d1[1:]) + np.abs(d1[:-1]) > 2 * (atol + rtol * scale)  # not a stale run
        straight[1:-1] = (d2 <= atol + rtol * scale) & moving
    if allowed is not None:
        straight &= ~np.asarray(allowed, bool)
    _, length = _runs_of(straight)
    return _as_mask(length >= window - 2, x, "interpolated")


def _centred_range(v: np.ndarray, window: int) -> np.ndarray:
    """max − min of the centred window around each sample (NaN where the window is incomplete)."""
    s = pd.Series(v)
    roll = s.rolling(window, center=True, min_periods=window)
    return (roll.max() - roll.min()).to_numpy()


def clipping(
    ac_power_w: pd.Series,
    p_ac_limit_w: float,
    expected_w: pd.Series | np.ndarray | None = None,
    window: int = CLIP_WINDOW,
    limit_fraction: float = CLIP_LIMIT_FRACTION,
    flat_fraction: float = CLIP_FLAT_FRACTION,
) -> pd.Series:
    """Clipped samples: AC power flat at the inverter's limit, or flat on a lower plateau (curtailment)
    while the expected power is above it.

    A sample is flat when it and its neighbours within a window of `window` samples differ by at most
    `flat_fraction` of the AC rating. Flat and at or above `limit_fraction` of the rating: clipped at the
    rating. Flat above 5 % of the rating with `expected_w` more than CURTAIL_MARGIN above the sample: held
    on a plateau (a setpoint); without `expected_w` lower plateaus are not judged.

    Parameters
    ----------
    ac_power_w : Series
        AC power on a regular grid [W].
    p_ac_limit_w : float
        The inverter's AC rating [W].
    expected_w : array-like, optional
        Expected (unclipped) AC power on the same grid [W].

    Returns
    -------
    Series of bool, same index as `ac_power_w`.

    References
    ----------
    pvanalytics `features.clipping.levels` (plateaus of power) and `features.clipping.geometric`
    (Perry, Muller, Deceglie 2022: flat, high derivatives-free stretches near the daily maximum).
    """
    p = np.asarray(ac_power_w, dtype=float)
    spread = _centred_range(p, window)
    # a window at a plateau's edge straddles the ramp: flat if either half-window is flat
    half = max(window // 2 + 1, 2)
    back = pd.Series(p).rolling(half, min_periods=half)
    back_spread = (back.max() - back.min()).to_numpy()
    fwd_spread = np.roll(back_spread, -(half - 1))
    fwd_spread[len(p) - half + 1 :] = np.nan
    tol = flat_fraction * p_ac_limit_w
    flat = (spread <= tol) | (back_spread <= tol) | (fwd_spread <= tol)
    at_limit = flat & (p >= limit_fraction * p_ac_limit_w)
    if expected_w is None:
        return _as_mask(at_limit, ac_power_w, "clipping")
    exp = np.asarray(expected_w, dtype=float)
    plateau = flat & (p > 0.05 * p_ac_limit_w) & (exp > (1.0 + CURTAIL_MARGIN) * p)
    return _as_mask(at_limit | plateau, ac_power_w, "clipping")


def clipped_energy_kwh(
    ac_power_w: pd.Series, expected_w: pd.Series | np.ndarray, mask: pd.Series, freq: str = "1h"
) -> pd.Series:
    """Energy lost to clipping per period [kWh]: expected minus actual power over the clipped samples.

    ac_power_w : AC power on a regular grid [W]
    expected_w : expected unclipped AC power on the same grid [W]
    mask : clipped samples (`clipping`)
    freq : the period (pandas offset alias), an hour by default
    """
    step_h = _step_h(ac_power_w.index)
    lost_w = np.clip(np.asarray(expected_w, float) - np.asarray(ac_power_w, float), 0.0, None)
    lost_kwh = pd.Series(np.where(np.asarray(mask, bool), np.nan_to_num(lost_w), 0.0) * step_h / 1000.0,
                         index=ac_power_w.index)  # fmt: skip
    return lost_kwh.resample(freq).sum()


def _step_h(index: pd.DatetimeIndex) -> float:
    """The grid's step [h] (its median spacing)."""
    if len(index) < 2:
        return 0.0
    return float(np.median(np.diff(index.as_unit("ns").asi8))) / 3.6e12


CONSTANT_AT_NIGHT = (
    Metric.POA_IRRADIANCE,
    Metric.GHI_IRRADIANCE,
)  # a dark sensor reads a constant (often 0)
DARK_WM2 = 5.0


def constant_by_nature(
    metric: str, x: pd.Series, sun_up: np.ndarray, p_ac_limit_w: float | None = None
) -> np.ndarray:
    """Samples of a signal whose constancy is legitimate, for `stale(allowed=...)`: exactly zero (off,
    dark, an outage: states the availability categories judge, not a frozen sensor), power held at the AC
    limit (clipping), a dark irradiance sensor while the sun is down. `sun_up` comes from the solar
    position, so a site without an irradiance sensor is judged the same way, and a power stuck at a
    non-zero value at night is stale."""
    v = np.asarray(x, dtype=float)
    allowed = v == 0.0
    if metric.endswith("_power") and p_ac_limit_w is not None:
        allowed |= v >= CLIP_LIMIT_FRACTION * p_ac_limit_w
    if metric in CONSTANT_AT_NIGHT:
        allowed |= ~np.asarray(sun_up, bool) & (np.abs(v) <= DARK_WM2)
    return allowed
