"""The `alerts` asset: the KPI alert rules judged on every hour whose KPIs were computed."""

from datetime import timedelta

import dagster as dg

from pv_platform import clock
from pv_platform.alerts.kpi_rules import (
    KPI_RULES,
    STRING_CURRENT_LIKE,
    hour_candidates,
    kpi_cleared,
    quarantine_rate_candidates,
)
from pv_platform.alerts.limits import fleet_from_settings, kpi_thresholds
from pv_platform.defs.kpis.assets import HOURS_PER_RUN, KPI_RETRY, hourly_kpis
from pv_platform.defs.partitions import hourly
from pv_platform.defs.resources import (
    AlertResource,
    KpiResource,
    PlantResource,
    TelemetryResource,
)
from pv_platform.settings import get_settings


@dg.asset(
    partitions_def=hourly,
    deps=[hourly_kpis],
    group_name="alerts",
    kinds={"postgres"},
    backfill_policy=HOURS_PER_RUN,
    retry_policy=KPI_RETRY,
)
def alerts(
    context: dg.AssetExecutionContext,
    kpi_store: KpiResource,
    telemetry_store: TelemetryResource,
    plant: PlantResource,
    alert_service: AlertResource,
) -> dg.MaterializeResult:
    """KPI alerts of each hour: underperformance, availability drops, failed ERROR data-quality checks →
    the same engine and `alerts` table as the real-time rules."""
    window = context.partition_time_window
    fleet = fleet_from_settings(get_settings())
    limits = {site.id: kpi_thresholds(site, fleet) for site in plant.load().sites}
    back = timedelta(
        hours=max((max(t.string_outlier_hours, t.held_hours) for t in limits.values()), default=1)
    )
    # every hour of the window is judged (a run over 48 back-filled hours judges 48), and the string
    # rule looks back `back` hours before its start
    kpis = kpi_store.store()
    recent = kpis.read("kpi_hourly", window.start - back, window.end)
    failed = kpis.alerting_failures(window.start, window.end)
    telemetry = telemetry_store.store()
    strings = telemetry.hourly_rollup(
        window.start - back, window.end, metric_like=STRING_CURRENT_LIKE
    )
    candidates = hour_candidates(recent, strings, failed, window.start, window.end, limits)
    hours = (window.end - window.start).total_seconds() / 3600.0
    rejected = telemetry.quarantine_counts(window.start, window.end)
    candidates += quarantine_rate_candidates(rejected, plant.load(), hours, window.end, limits)
    engine = alert_service.engine()  # with the notifiers: MQTT and webhook
    cleared = kpi_cleared(recent, limits, window.start)  # what a total-loss alert needs to resolve
    result = engine.process(candidates, min(window.end, clock.now()), KPI_RULES, cleared)
    if not engine.flush(timeout_s=30.0):  # the run process exits next: deliver first
        context.log.warning("some alert notifications were still under way after 30 s")
    return dg.MaterializeResult(
        metadata={
            "opened": len(result.opened),
            "still_active": result.updated,
            "resolved": len(result.resolved),
            "suppressed": len(result.suppressed),
            "opened_alerts": dg.MetadataValue.md(
                "\n".join(f"- {a['severity']} {a['message']}" for a in result.opened) or "none"
            ),
        }
    )
