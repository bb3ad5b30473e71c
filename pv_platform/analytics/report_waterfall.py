"""The loss waterfall of a report's period from the loss analytics (`loss_daily`): the site's daily
waterfall rows summed over the period, as the steps the report draws (`pv_platform.reports.waterfall`)."""

from __future__ import annotations

from datetime import datetime

from pv_platform.analytics.waterfall import CAUSES
from pv_platform.reports.waterfall import register_waterfall_source

LABELS = {
    "forced_outage": "forced outage",
    "grid_outage": "grid outage",
    "planned": "planned maintenance",
}


def period_waterfall(db, site_id: str, grain: str, start: datetime, end: datetime):
    """[(step, kWh)]: the reference energy, each cause as a negative kWh, the measured energy; None when
    the loss analytics have no day of the period for the site."""
    rows = db.losses.read_daily(start, end, site_id)
    if rows.empty:
        return None
    site_rows = rows[rows["device_id"] == "*"]
    if site_rows.empty:
        site_rows = rows
    steps = [("reference energy", float(site_rows["reference_kwh"].sum()))]
    steps += [(LABELS.get(c, c), -float(site_rows[f"{c}_kwh"].sum())) for c in CAUSES]
    steps.append(("measured energy", float(site_rows["measured_kwh"].sum())))
    return steps


register_waterfall_source(period_waterfall)
