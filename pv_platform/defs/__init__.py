"""The Dagster code location: only assembles what the domain modules define."""

import dagster as dg

from pv_platform import clock
from pv_platform.defs.ingest import ingest_job, landing_sensor, telemetry
from pv_platform.defs.kpi_runs import hourly_kpis_job, hourly_kpis_sensor
from pv_platform.defs.kpis import alerts, daily_kpis, hourly_kpis, monthly_kpis, yearly_kpis
from pv_platform.defs.resources import PlatformResource
from pv_platform.defs.rollups import (
    daily_job,
    kpi_calendar_schedule,
    kpi_monthly_schedule,
    kpi_rollup_sensor,
    monthly_job,
    yearly_job,
)
from pv_platform.settings import get_settings


def build_definitions(platform: PlatformResource | None = None) -> dg.Definitions:
    """Definitions with the given resource, or one configured from PVP_* settings."""
    settings = get_settings()
    clock.use_settings(settings)  # accelerated time: the running hour is the simulated one
    platform = platform or PlatformResource(
        database_url=dg.EnvVar("PVP_DATABASE_URL"),
        landing_dir=str(settings.resolved_landing_dir.resolve()),
        plant_file=str(settings.resolved_plant_file.resolve()),
    )
    return dg.Definitions(
        assets=[telemetry, hourly_kpis, daily_kpis, monthly_kpis, yearly_kpis, alerts],
        jobs=[ingest_job, hourly_kpis_job, daily_job, monthly_job, yearly_job],
        sensors=[landing_sensor, hourly_kpis_sensor, kpi_rollup_sensor],
        schedules=[kpi_calendar_schedule, kpi_monthly_schedule],
        resources={"platform": platform},
        executor=dg.in_process_executor,  # a run's multiprocess start costs ~3 s of a 2-core machine
    )


defs = build_definitions()
