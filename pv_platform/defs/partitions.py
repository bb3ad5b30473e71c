"""Time partitions shared by the telemetry, KPI and alert assets.

Hours are UTC and hold every site; days, months and years are site-local, so those are (period × site)
partitions over the dynamic `sites` dimension. `end_offset=1`: the running hour, day, month and year are
partitions too (live KPIs), not only closed ones. The first partition is `PVP_KPI_START`, one of the few
settings that shape the definitions themselves and so are read when they load.
"""

import dagster as dg

from pv_platform.settings import get_settings

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
_start = get_settings().kpi_start

hourly = dg.HourlyPartitionsDefinition(start_date=_start, timezone="UTC", end_offset=1)
sites = dg.DynamicPartitionsDefinition(name="sites")
daily_by_site = dg.MultiPartitionsDefinition(
    {"date": dg.DailyPartitionsDefinition(start_date=_start[:10], end_offset=1), "site": sites}
)
monthly_by_site = dg.MultiPartitionsDefinition(
    {
        "month": dg.MonthlyPartitionsDefinition(start_date=_start[:8] + "01", end_offset=1),
        "site": sites,
    }
)
yearly_by_site = dg.MultiPartitionsDefinition(
    {
        "year": dg.TimeWindowPartitionsDefinition(
            cron_schedule="0 0 1 1 *", start=_start[:4], fmt="%Y", end_offset=1
        ),
        "site": sites,
    }
)
