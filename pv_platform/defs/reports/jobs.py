"""One job per report grain (one partitions definition each), in-process like every job here."""

import dagster as dg

from pv_platform.defs.reports.assets import monthly_report, yearly_report

monthly_report_job = dg.define_asset_job(
    "monthly_report_job",
    selection=[monthly_report],
    executor_def=dg.in_process_executor,
    # the rollups' priority (0), first come first served with them: `report_sensor` asks only once the
    # period's KPIs are final; at -1 a live plant's rollups, queued one after another, kept it waiting
    tags={"dagster/priority": "0"},
)
yearly_report_job = dg.define_asset_job(
    "yearly_report_job",
    selection=[yearly_report],
    executor_def=dg.in_process_executor,
    tags={"dagster/priority": "0"},
)
# (report asset, the KPI asset it is made from, partition dimension, job)
REPORTS = (
    (monthly_report, "monthly_kpis", "month", monthly_report_job),
    (yearly_report, "yearly_kpis", "year", yearly_report_job),
)
