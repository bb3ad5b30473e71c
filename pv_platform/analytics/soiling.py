"""Soiling: cleaning events, soiling rate per interval and the daily soiling ratio, by a simplified
stochastic rate and recovery (SRR) method.

Following Deceglie, Micheli, Muller (2018), 'Quantifying soiling loss directly from PV yield', IEEE
Journal of Photovoltaics 8(2), 547-551 (RdTools `soiling.soiling_srr`), simplified and deterministic:
cleanings are the positive steps of a 3-day rolling median of the performance index larger than
CLEAN_SIGMAS robust standard deviations of its day-to-day steps (or given dates); each interval between
cleanings gets a Theil-Sen line (a positive slope counts as no soiling); a cleaning restores the
interval's own clean level (SRR's 'perfect cleaning' assumption), so the soiling ratio of a day is the
line over its intercept. SRR's Monte Carlo over cleaning assumptions is replaced by the Theil-Sen
slope interval, which gives the band of the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CLEAN_SIGMAS = 5.0
MIN_CLEAN_STEP = 0.005  # a rise of the index below 0.5 % is never a cleaning
MIN_INTERVAL_POINTS = 5  # valid days an interval needs for its own slope


@dataclass(frozen=True)
class SoilingResult:
    """Daily soiling ratio with its band, the cleanings found and the fit of each interval."""

    ratio: pd.DataFrame  # per calendar day: soiling_ratio, ratio_low, ratio_high [-]
    cleanings: pd.DatetimeIndex
    intervals: (
        pd.DataFrame
    )  # start, end, points, rate_per_day, rate_low, rate_high [1/day], clean_level
    soiling_loss_fraction: float  # 1 − insolation-weighted mean soiling ratio [-]


def detect_cleanings(pi: pd.Series, sigmas: float = CLEAN_SIGMAS) -> pd.DatetimeIndex:
    """Days the performance index jumps up and stays up (a cleaning): steps of its 3-point rolling median
    above `sigmas` robust standard deviations (1.4826 · MAD) of those steps, at least MIN_CLEAN_STEP,
    confirmed by the median of the next 5 values exceeding that of the previous 5 by as much (a single
    noisy day is no cleaning). Of neighbouring detections (within 3 days) the largest step is kept.

    pi : daily performance index [-], DatetimeIndex, NaN-free
    """
    step = pi.rolling(3, center=True, min_periods=1).median().diff()
    mad = float(np.nanmedian(np.abs(step - np.nanmedian(step))))
    threshold = max(sigmas * 1.4826 * mad, MIN_CLEAN_STEP)
    v = pi.to_numpy()
    before = pd.Series(v).rolling(5, min_periods=3).median().shift(1).to_numpy()
    after = pd.Series(v[::-1]).rolling(5, min_periods=3).median().to_numpy()[::-1]
    level_jump = pd.Series(after - before, index=pi.index)
    kept: list[pd.Timestamp] = []
    for day, size in step[step > threshold].items():
        if kept and day - kept[-1] <= pd.Timedelta(days=3):
            if size > step[kept[-1]]:
                kept[-1] = day
            continue
        kept.append(day)
    positions = pi.index.get_indexer(kept)
    return pd.DatetimeIndex(
        [d for d, p in zip(kept, positions, strict=True)
         if np.nanmax(level_jump.iloc[max(p - 1, 0) : p + 2].to_numpy(), initial=-1.0) > threshold]
    )  # fmt: skip


def _fit(days: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float]:
    """Theil-Sen slope, its 95 % interval and the intercept at day 0; slopes above 0 are no soiling."""
    if len(values) < MIN_INTERVAL_POINTS:
        return 0.0, 0.0, 0.0, float(np.median(values)) if len(values) else float("nan")
    slope, intercept, low, high = stats.theilslopes(values, days)
    if slope > 0:  # cleaner by itself: noise or rain, not soiling
        return 0.0, min(low, 0.0), 0.0, float(np.median(values))
    return float(slope), float(low), float(min(high, 0.0)), float(intercept)


def soiling_srr(
    pi: pd.Series,
    insolation_kwh_m2: pd.Series | None = None,
    cleanings: pd.DatetimeIndex | None = None,
    days: pd.DatetimeIndex | None = None,
) -> SoilingResult:
    """Soiling ratio per calendar day, soiling loss and cleaning events of one inverter or site.

    Parameters
    ----------
    pi : Series
        Daily performance index [-], DatetimeIndex (days missing where filtered out).
    insolation_kwh_m2 : Series, optional
        Daily POA insolation [kWh/m^2], to weight the loss (unweighted without).
    cleanings : DatetimeIndex, optional
        Known cleaning days (e.g. from the maintenance log); detected from the index when not given.
    days : DatetimeIndex, optional
        The days to report the ratio for (site-local day starts, which move against UTC with daylight
        saving time); every 24 h from the first index day to the last when not given.

    Returns
    -------
    SoilingResult
    """
    pi = pi.dropna().sort_index()
    if pi.empty:
        raise ValueError("soiling needs a performance index; none of the days passed the filters")
    found = detect_cleanings(pi) if cleanings is None else pd.DatetimeIndex(cleanings)
    if days is None:
        days = pd.date_range(pi.index[0], pi.index[-1], freq="D")
    bounds = [
        days[0],
        *[c for c in found if days[0] < c <= days[-1]],
        days[-1] + pd.Timedelta(days=1),
    ]
    ratio = np.ones(len(days))
    low, high = np.ones(len(days)), np.ones(len(days))
    rows = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        part = pi[(pi.index >= start) & (pi.index < end)]
        x = ((part.index - start) / pd.Timedelta(days=1)).to_numpy()
        slope, s_low, s_high, clean = _fit(x, part.to_numpy())
        inside = (days >= start) & (days < end)
        t = ((days[inside] - start) / pd.Timedelta(days=1)).to_numpy()
        if np.isfinite(clean) and clean > 0:
            ratio[inside] = np.clip(1.0 + slope / clean * t, 0.0, 1.0)
            low[inside] = np.clip(1.0 + s_low / clean * t, 0.0, 1.0)
            high[inside] = np.clip(1.0 + s_high / clean * t, 0.0, 1.0)
        rows.append({"start": start, "end": end, "points": len(part), "rate_per_day": slope / clean if clean else 0.0,
                     "rate_low": s_low / clean if clean else 0.0, "rate_high": s_high / clean if clean else 0.0,
                     "clean_level": clean})  # fmt: skip
    frame = pd.DataFrame({"soiling_ratio": ratio, "ratio_low": low, "ratio_high": high}, index=days)
    return SoilingResult(
        frame, found, pd.DataFrame(rows), 1.0 - _mean_ratio(ratio, days, insolation_kwh_m2)
    )


def _mean_ratio(
    ratio: np.ndarray, days: pd.DatetimeIndex, insolation_kwh_m2: pd.Series | None
) -> float:
    """The soiling ratio's mean over the days, weighted by insolation when given [-]."""
    weights = (
        np.ones(len(days))
        if insolation_kwh_m2 is None
        else insolation_kwh_m2.reindex(days).fillna(0.0).to_numpy()
    )
    return float(np.average(ratio, weights=weights)) if weights.sum() > 0 else float(ratio.mean())
