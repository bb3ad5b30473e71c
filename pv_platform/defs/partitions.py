"""Time partitions shared by the telemetry and KPI assets (UTC hours)."""

import dagster as dg

from pv_platform.settings import get_settings

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
hourly = dg.HourlyPartitionsDefinition(
    start_date=get_settings().kpi_start, timezone="UTC", end_offset=1
)
