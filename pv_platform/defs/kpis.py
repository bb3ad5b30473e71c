"""KPI assets: Dagster only wires; the maths is in pv_platform.kpi, the SQL in pv_platform.storage."""

from datetime import timedelta

import dagster as dg
import numpy as np

from pv_platform.defs.ingest import telemetry
from pv_platform.defs.partitions import hourly
from pv_platform.defs.resources import PlatformResource
from pv_platform.kpi.hourly import HOURLY_METRICS, SITE_DEVICE, hourly_kpis_range

EDGE_MARGIN = timedelta(minutes=15)  # samples either side of the hour, to interpolate at its edges

# Recompute an hour whenever its telemetry changes: new hours and late data alike. `eager()` would
# only look at the newest hour, which misses late data (see DESIGN.md).
RECOMPUTE_ON_NEW_DATA = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("telemetry of this hour changed")


@dg.asset(
    partitions_def=hourly,
    deps=[telemetry],
    group_name="kpis",
    automation_condition=RECOMPUTE_ON_NEW_DATA,
    backfill_policy=dg.BackfillPolicy.multi_run(
        max_partitions_per_run=48
    ),  # one run for many hours
    kinds={"postgres", "pandas"},
)
def hourly_kpis(
    context: dg.AssetExecutionContext, platform: PlatformResource
) -> dg.MaterializeResult:
    """AC energy [kWh], POA insolation [kWh/m²] and PR per inverter and per site for each UTC hour of the
    partition range → `kpi_hourly`."""
    window = context.partition_time_window
    db, plant = platform.db(), platform.plant()
    db.sync_plant(plant)
    samples = db.samples(window.start - EDGE_MARGIN, window.end + EDGE_MARGIN, HOURLY_METRICS)
    rows = hourly_kpis_range(samples, plant, window.start, window.end)
    written = db.replace_kpi_hourly(window.start, window.end, rows)
    sites = (
        rows[rows["device_id"] == SITE_DEVICE]
        .sort_values("period_start")
        .groupby("site_id")
        .tail(1)
    )
    metadata: dict = {
        "rows": written,
        "samples": len(samples),
        "hours": len(context.partition_keys),
    }
    for _, site in sites.iterrows():
        for column in ("energy_ac_kwh", "insolation_poa_kwh_m2", "pr"):
            value = float(site[column])
            if np.isfinite(value):
                metadata[f"{site['site_id']}/{column}"] = round(value, 4)
    return dg.MaterializeResult(metadata=metadata)


kpi_automation = dg.AutomationConditionSensorDefinition(
    "kpi_automation",
    target=dg.AssetSelection.assets(hourly_kpis),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
