"""The KPI jobs. One job per partitions definition: a job (and a schedule or sensor target) needs assets
with one partitions definition. Every job runs in-process: a run's multiprocess start costs ~3 s of a
2-core machine."""

import dagster as dg

from pv_platform.defs.alerts.assets import alerts
from pv_platform.defs.kpis.assets import (
    daily_kpis,
    hourly_kpis,
    monthly_kpis,
    site_reference_temperatures,
    yearly_kpis,
)

hourly_kpis_job = dg.define_asset_job(
    "hourly_kpis_job",
    selection=[hourly_kpis, alerts],
    executor_def=dg.in_process_executor,
    # after ingest (10), before the day/month/year rollups (0) that need these hours
    tags={"pvp/kind": "kpi", "dagster/priority": "5"},
)
daily_job = dg.define_asset_job(
    "daily_kpis_job", selection=[daily_kpis], executor_def=dg.in_process_executor
)
monthly_job = dg.define_asset_job(
    "monthly_kpis_job", selection=[monthly_kpis], executor_def=dg.in_process_executor
)
yearly_job = dg.define_asset_job(
    "yearly_kpis_job", selection=[yearly_kpis], executor_def=dg.in_process_executor
)
site_reference_job = dg.define_asset_job(
    "site_reference_job",
    selection=[site_reference_temperatures],
    executor_def=dg.in_process_executor,
    tags={"dagster/priority": "6"},
)

# the rollup assets: (asset, partition dimension of the site-local period, its job)
ROLLUPS = (
    (daily_kpis, "date", daily_job),
    (monthly_kpis, "month", monthly_job),
    (yearly_kpis, "year", yearly_job),
)
