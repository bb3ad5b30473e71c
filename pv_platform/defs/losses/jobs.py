"""The loss analytics job (in-process: a run's multiprocess start costs ~3 s of a 2-core machine)."""

import dagster as dg

from pv_platform.defs.losses.assets import loss_analytics

loss_job = dg.define_asset_job(
    "loss_analytics_job", selection=[loss_analytics], executor_def=dg.in_process_executor
)
