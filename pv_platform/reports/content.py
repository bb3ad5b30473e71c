"""What a site's monthly or yearly report says: figures read from the KPI tables, the target, the
alerts of the period with their duration and lost energy, the data coverage and (when loss analytics
provide it) the loss waterfall. No SQL here (storage reads), no drawing (`render`, `charts`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.kpi.periods import SITE_DEVICE
from pv_platform.kpi.target import (
    achieved_fraction,
    target_energy_kwh,
    typical_year_monthly_energy_kwh,
)
from pv_platform.plant import Site
from pv_platform.reports.waterfall import waterfall_steps

GRAINS = {"monthly": ("kpi_monthly", "kpi_daily"), "yearly": ("kpi_yearly", "kpi_monthly")}
HOUR = timedelta(hours=1)


@dataclass
class ReportData:
    """Everything one report shows; `figures` are the site row of the period's KPI table."""

    site_id: str
    site_name: str
    timezone: str
    grain: str  # monthly or yearly
    period: str  # 2026-11 or 2026 (site-local)
    start: datetime  # UTC bounds of the site-local period
    end: datetime
    figures: dict[str, float]
    target_kwh: float
    target_source: str  # "budget (plant file)" or "modelled typical year"
    series: pd.DataFrame  # one site row per day (monthly) or month (yearly), local `label`
    inverters: pd.DataFrame  # one row per inverter of the period table
    alerts: pd.DataFrame  # the period's alerts with duration_h and lost_kwh
    hours_expected: int
    hours_present: int
    missing_hours: list[str] = field(default_factory=list)
    waterfall: list[tuple[str, float]] | None = None

    @property
    def achieved(self) -> float:
        """Energy over target [-]."""
        return achieved_fraction(self.figures.get("energy_ac_kwh", math.nan), self.target_kwh)

    @property
    def title(self) -> str:
        return f"{self.site_name}: {'monthly' if self.grain == 'monthly' else 'annual'} report {self.period}"


def period_label(grain: str, partition_key: str) -> str:
    """The period as people write it: 2026-11 for the monthly partition 2026-11-01, 2026 for a year."""
    return partition_key[:7] if grain == "monthly" else partition_key[:4]


def alert_losses(
    alerts: pd.DataFrame, hourly: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Each alert's duration inside [start, end) [h] and its lost energy [kWh]: expected − actual energy
    of its device's hourly KPIs (the site's, for an alert on a device without KPIs such as a meter),
    each hour weighted by the fraction of it the alert was active. An alert still open counts to `end`.

    alerts : id, device_id, opened_at, resolved_at (NaT: open); hourly : kpi_hourly rows of the site
    """
    out = alerts.copy()
    durations, losses = [], []
    with_kpis = set(hourly["device_id"]) if not hourly.empty else set()
    for alert in alerts.itertuples():
        a = max(alert.opened_at, pd.Timestamp(start))
        b = (
            pd.Timestamp(end)
            if pd.isna(alert.resolved_at)
            else min(alert.resolved_at, pd.Timestamp(end))
        )
        durations.append(max(0.0, (b - a) / HOUR))
        device = alert.device_id if alert.device_id in with_kpis else SITE_DEVICE
        rows = hourly[hourly["device_id"] == device] if with_kpis else hourly
        hour_start = pd.to_datetime(rows["period_start"], utc=True)
        overlap_h = (
            np.minimum(hour_start + HOUR, b) - np.maximum(hour_start, a)
        ).dt.total_seconds().clip(lower=0) / 3600.0
        gap = (rows["energy_expected_kwh"] - rows["energy_ac_kwh"]).to_numpy(dtype=float)
        weight = overlap_h.to_numpy(dtype=float)
        losses.append(float(np.nansum(weight * gap)) if len(rows) else math.nan)
    out["duration_h"] = durations
    out["lost_kwh"] = losses
    return out


def site_target(site: Site) -> tuple[list[float], str]:
    """The site's twelve monthly targets [kWh] and where they come from."""
    if site.report.monthly_target_kwh is not None:
        return list(site.report.monthly_target_kwh), "budget (plant file)"
    inverters = [(d.p_dc_kw, d.p_ac_kw, d.gamma_pdc_per_c) for d in site.inverters]
    modelled = typical_year_monthly_energy_kwh(
        site.latitude, site.longitude, site.altitude_m, site.tilt_deg, site.azimuth_deg,
        site.timezone, inverters, site.report.clearness_factor,
    )  # fmt: skip
    return [float(v) for v in modelled], "modelled typical year"


def _series(rows: pd.DataFrame, grain: str, timezone: str) -> pd.DataFrame:
    """Site rows of the finer table, labelled in local time (day of month, or month)."""
    site_rows = rows[rows["device_id"] == SITE_DEVICE].sort_values("period_start").copy()
    local = pd.to_datetime(site_rows["period_start"], utc=True).dt.tz_convert(timezone)
    site_rows["label"] = local.dt.strftime("%d" if grain == "monthly" else "%b")
    return site_rows.reset_index(drop=True)


def _figures(rows: pd.DataFrame) -> dict[str, float]:
    site_row = rows[rows["device_id"] == SITE_DEVICE]
    if site_row.empty:
        return {}
    return {
        k: float(v) for k, v in site_row.iloc[0].items() if isinstance(v, int | float | np.number)
    }


def build_report_data(
    db, site: Site, grain: str, partition_key: str, start: datetime, end: datetime, alert_store
) -> ReportData:
    """Read what the report of one site and period shows (the period's KPIs must be computed).

    db : `storage.Database`; alert_store : `storage.alerts.AlertStore` of the same database
    """
    table, finer = GRAINS[grain]
    rows = db.kpis.read(table, start, end, site.id)
    hourly = db.kpis.read("kpi_hourly", start, end, site.id)
    coverage = db.kpis.coverage(grain, start, start + timedelta(seconds=1), site.id)
    monthly_targets, source = site_target(site)
    month = int(partition_key[5:7]) if grain == "monthly" else 1
    alerts = alert_losses(alert_store.overlapping(site.id, start, end), hourly, start, end)
    cov = coverage.iloc[0] if not coverage.empty else None
    return ReportData(
        site_id=site.id, site_name=site.name, timezone=site.timezone, grain=grain,
        period=period_label(grain, partition_key), start=start, end=end, figures=_figures(rows),
        target_kwh=target_energy_kwh(monthly_targets, grain, month), target_source=source,
        series=_series(db.kpis.read(finer, start, end, site.id), grain, site.timezone),
        inverters=rows[rows["device_id"] != SITE_DEVICE].sort_values("device_id").reset_index(drop=True),
        alerts=alerts,
        hours_expected=int(cov["hours_expected"]) if cov is not None else 0,
        hours_present=int(cov["hours_present"]) if cov is not None else 0,
        missing_hours=list(cov["missing"]) if cov is not None else [],
        waterfall=waterfall_steps(db, site.id, grain, start, end),
    )  # fmt: skip


def summary(data: ReportData) -> dict[str, float | str]:
    """The headline figures stored with the report (and listed by the HTTP API)."""
    keys = (
        "energy_ac_kwh", "final_yield_h", "pr", "pr_temp_iec", "pr_temp_nrel", "availability_time",
        "availability_energy", "energy_expected_kwh",
    )  # fmt: skip
    out: dict[str, float | str] = {
        k: data.figures[k] for k in keys if k in data.figures and math.isfinite(data.figures[k])
    }
    out.update(
        target_kwh=data.target_kwh, target_source=data.target_source, alerts=len(data.alerts)
    )
    if math.isfinite(data.achieved):
        out["achieved"] = data.achieved
    out.update(hours_expected=data.hours_expected, hours_present=data.hours_present)
    return out
