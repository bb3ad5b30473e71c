"""Alert rules on the loss analytics of a site: soiling worth a cleaning (energy value of cleaning vs the
site's cleaning cost), a sudden degradation step, a drifting POA sensor, a shifted clock. Pure
functions; the Dagster `loss_analytics` asset feeds them to the engine for its site."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.plant import Site

LOSS_RULES = {"soiling", "degradation_step", "sensor_drift", "clock_shift"}
RECENT_DAYS, BEFORE_DAYS = 30, 90  # a step: the last 30 valid days against the 90 before them


@dataclass(frozen=True)
class LossThresholds:
    soiling_loss_max: float = 0.03  # the latest soiling ratio below 1 − this: soiling alert
    degradation_step_fraction: float = (
        0.03  # the corrected index 3 % below its level before: a step
    )
    cleaning_horizon_days: float = 30.0  # cleaning value counted over this many days


def cleaning_value(rows: pd.DataFrame, horizon_days: float, tariff_per_kwh: float | None) -> dict:
    """What a cleaning today would recover over `horizon_days`: the latest soiling ratio's share of the
    mean expected available energy of the last 14 days, held for the horizon (soiling only grows, so this
    is a floor) [kWh], and its value at the tariff [currency] (NaN without one).

    rows : `loss_daily` rows of one device, ordered by day
    """
    recent = rows.tail(14)
    ratio = float(rows["soiling_ratio"].iloc[-1])
    daily_kwh = (1.0 - ratio) * float(recent["expected_available_kwh"].clip(lower=0).mean())
    kwh = daily_kwh * horizon_days
    money = kwh * tariff_per_kwh if tariff_per_kwh is not None else float("nan")
    return {"soiling_ratio": ratio, "recovered_kwh": kwh, "recovered_value": money}


def _soiling(
    site: Site, rows: pd.DataFrame, t: LossThresholds, now: datetime
) -> list[AlertCandidate]:
    if rows.empty or not np.isfinite(rows["soiling_ratio"].iloc[-1]):
        return []
    value = cleaning_value(rows, t.cleaning_horizon_days, site.tariff_per_kwh)
    if value["soiling_ratio"] >= 1.0 - t.soiling_loss_max:
        return []
    text = f"soiling {1 - value['soiling_ratio']:.1%}: a cleaning recovers ~{value['recovered_kwh']:,.0f} kWh over {t.cleaning_horizon_days:.0f} days"
    worth = None
    if np.isfinite(value["recovered_value"]) and site.cleaning_cost is not None:
        worth = value["recovered_value"] >= site.cleaning_cost
        text += (f" = {value['recovered_value']:,.0f} {site.currency} vs a cleaning cost of {site.cleaning_cost:,.0f} {site.currency}: "
                 + ("clean now" if worth else "not worth a cleaning yet"))  # fmt: skip
    severity = Severity.MEDIUM if worth else Severity.LOW
    return [AlertCandidate("soiling", severity, site.id, str(rows["device_id"].iloc[-1]), text, now,
                           context={k: round(float(v), 4) for k, v in value.items() if np.isfinite(v)})]  # fmt: skip


def _step(site: Site, rows: pd.DataFrame, t: LossThresholds, now: datetime) -> list[AlertCandidate]:
    corrected = (rows["performance_index"] / rows["soiling_ratio"]).dropna()
    if len(corrected) < RECENT_DAYS + BEFORE_DAYS // 2:
        return []
    recent = float(corrected.tail(RECENT_DAYS).median())
    before = float(corrected.iloc[-(RECENT_DAYS + BEFORE_DAYS) : -RECENT_DAYS].median())
    drop = 1.0 - recent / before
    if drop < t.degradation_step_fraction:
        return []
    device = str(rows["device_id"].iloc[-1])
    return [AlertCandidate("degradation_step", Severity.HIGH, site.id, device,
                           f"{device}: performance index {drop:.1%} below its level of the previous {BEFORE_DAYS} days"
                           " (soiling removed): a sudden loss (strings, modules, bypass diodes)",
                           now, context={"drop": round(drop, 4), "recent": round(recent, 4), "before": round(before, 4)})]  # fmt: skip


def loss_candidates(
    site: Site, losses: pd.DataFrame, findings: Iterable, thresholds: LossThresholds, now: datetime
) -> list[AlertCandidate]:
    """Candidates of one site from its `loss_daily` rows (every device) and the site-level detector
    findings (`analytics.site_checks.Finding`)."""
    out: list[AlertCandidate] = []
    for _, rows in losses.sort_values("period_start").groupby("device_id", sort=True):
        out += _soiling(site, rows, thresholds, now) + _step(site, rows, thresholds, now)
    rule = {
        "irradiance_clearsky": ("sensor_drift", Severity.MEDIUM),
        "clock_shift": ("clock_shift", Severity.MEDIUM),
    }
    for f in findings:
        if not f.passed and f.check in rule:
            name, severity = rule[f.check]
            out.append(
                AlertCandidate(
                    name, severity, site.id, f.device_id, f.detail, now, context=dict(f.metadata)
                )
            )
    return out
