"""The loss analytics of one site from its daily KPI rows: performance index, soiling (SRR), year-on-year
degradation and the daily loss waterfall, per inverter and for the site ('*'). Pure; the Dagster asset
reads the rows, calls `analyse_site` and writes what it returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pv_platform.analytics.degradation import degradation_year_on_year, performance_index
from pv_platform.analytics.soiling import soiling_srr
from pv_platform.analytics.waterfall import degradation_factor, loss_waterfall

MIN_SOILING_DAYS = 14  # valid days of performance index before soiling is fitted


def _soiling(pi: pd.Series, insolation: pd.Series, days: pd.DatetimeIndex):
    """Per day of `days`: soiling ratio, its band, cleaning (0/1); the loss fraction and median rate."""
    frame = pd.DataFrame(
        {
            "soiling_ratio": 1.0,
            "soiling_ratio_low": 1.0,
            "soiling_ratio_high": 1.0,
            "cleaning": 0.0,
        },
        index=days,
    )
    if len(pi) < MIN_SOILING_DAYS:
        return frame, np.nan, np.nan
    result = soiling_srr(pi, insolation, days=days)
    fitted = result.ratio.rename(
        columns={"ratio_low": "soiling_ratio_low", "ratio_high": "soiling_ratio_high"}
    )
    frame.update(fitted)
    frame.loc[frame.index.isin(result.cleanings), "cleaning"] = 1.0
    rates = result.intervals.loc[result.intervals["points"] >= 10, "rate_per_day"]
    return frame, result.soiling_loss_fraction, float(rates.median()) if len(rates) else np.nan


def _degradation(pi: pd.Series) -> dict:
    try:
        r = degradation_year_on_year(pi)
    except ValueError:  # under two years of index: no rate yet
        return dict.fromkeys(
            ("rate_pct_per_year", "ci_low_pct_per_year", "ci_high_pct_per_year", "n_slopes"), np.nan
        )
    return {"rate_pct_per_year": r.rate_pct_per_year, "ci_low_pct_per_year": r.ci_low_pct_per_year,
            "ci_high_pct_per_year": r.ci_high_pct_per_year, "n_slopes": float(r.n_slopes)}  # fmt: skip


def analyse_device(
    rows: pd.DataFrame, since: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, dict]:
    """One device's (or site's) daily rows -> (loss_daily rows, its degradation record).

    rows : `kpi_daily` rows of one (site, device), any order
    since : commissioning day (the degradation factor's origin); the first row's day when None
    """
    rows = rows.sort_values("period_start").reset_index(drop=True)
    days = pd.DatetimeIndex(rows["period_start"])
    pi = performance_index(rows)
    insolation = pd.Series(rows["insolation_poa_kwh_m2"].astype(float).to_numpy(), index=days)
    soiling, loss_fraction, soiling_rate = _soiling(pi, insolation, days)
    # soiling divided out first: it biases the year-on-year slopes (cleanings differ year to year)
    corrected = pi / soiling["soiling_ratio"].reindex(pi.index)
    record = _degradation(corrected)
    rate = record["rate_pct_per_year"]
    origin = since if since is not None else (days[0] if len(days) else None)
    factor = degradation_factor(days, rate, origin) if np.isfinite(rate) else np.ones(len(days))
    waterfall = loss_waterfall(rows, soiling["soiling_ratio"].to_numpy(), factor)
    waterfall["performance_index"] = pi.reindex(days).to_numpy()
    waterfall["degradation_factor"] = factor
    for column in soiling.columns:
        waterfall[column] = soiling[column].to_numpy()
    record |= {"first_day": pi.index.min() if len(pi) else pd.NaT, "last_day": pi.index.max() if len(pi) else pd.NaT,
               "soiling_loss_fraction": loss_fraction, "soiling_rate_per_day": soiling_rate}  # fmt: skip
    return waterfall, record


def analyse_site(
    daily: pd.DataFrame, site_id: str, commissioning: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every device of a site (its inverters and the site row '*'): (loss_daily rows, degradation rows)."""
    parts, records = [], []
    mine = daily[daily["site_id"] == site_id]
    for device_id, rows in mine.groupby("device_id", sort=True):
        waterfall, record = analyse_device(rows, commissioning)
        parts.append(waterfall)
        records.append({"site_id": site_id, "device_id": device_id, **record})
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(parts, ignore_index=True), pd.DataFrame(records)
