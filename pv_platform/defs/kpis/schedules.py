"""The calendar schedules: close each site-local day and month shortly after it ends in the site's own
time zone (sites span zones, so the crons run hourly and pick the sites whose period just ended: one run
per period for all of them)."""

from datetime import datetime

import dagster as dg

from pv_platform.defs.kpis.assets import daily_kpis, monthly_kpis
from pv_platform.defs.kpis.jobs import daily_job, monthly_job
from pv_platform.defs.kpis.rollup import sites_by_zone
from pv_platform.defs.kpis.sensors import rollup_request
from pv_platform.defs.resources import PlantResource
from pv_platform.kpi.calendar import closed_period


def closing_requests(plant, now: datetime, dim: str) -> list[dg.RunRequest]:
    """One run request per period ("date" or "month") that ended in the past hour in some site's own
    time (`kpi.calendar.closed_period`: DST changes that skip local midnight included), for the sites
    whose period it was."""
    asset = {"date": daily_kpis, "month": monthly_kpis}[dim]
    closed: dict[str, list[str]] = {}
    for tz, site_ids in sites_by_zone({s.id: s.timezone for s in plant.sites}).items():
        period = closed_period(now, tz, dim)
        if period:
            closed.setdefault(period, []).extend(site_ids)
    everyone = {s.id for s in plant.sites}
    return [
        rollup_request(asset, [period], sorted(site_ids), f"close:{now:%Y-%m-%dT%H}", everyone)
        for period, site_ids in sorted(closed.items())
    ]


@dg.schedule(
    cron_schedule="20 * * * *", job=daily_job, default_status=dg.DefaultScheduleStatus.RUNNING
)
def kpi_calendar_schedule(context: dg.ScheduleEvaluationContext, plant: PlantResource):
    """Every hour at :20, close the day that just ended in each site's own time (after local midnight)."""
    requests = closing_requests(plant.load(), context.scheduled_execution_time, "date")
    return requests or dg.SkipReason("no site just passed local midnight")


@dg.schedule(
    cron_schedule="40 * * * *", job=monthly_job, default_status=dg.DefaultScheduleStatus.RUNNING
)
def kpi_monthly_schedule(context: dg.ScheduleEvaluationContext, plant: PlantResource):
    """Every hour at :40, close the month that just ended for each site whose local clock reads the 1st,
    00:40. (Months also recompute through `kpi_rollup_sensor` whenever any of their hours change.)"""
    requests = closing_requests(plant.load(), context.scheduled_execution_time, "month")
    return requests or dg.SkipReason("no site just entered a new month")
