"""The `loss_analytics` asset: one partition per site, recomputed over the site's whole daily history."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from pv_platform import clock
from pv_platform.alerts.limits import fleet_from_settings, loss_thresholds
from pv_platform.alerts.loss_rules import LOSS_RULES, loss_candidates
from pv_platform.analytics.losses import analyse_site
from pv_platform.analytics.site_checks import site_findings
from pv_platform.defs.kpis.assets import KPI_RETRY, daily_kpis
from pv_platform.defs.partitions import sites
from pv_platform.defs.resources import (
    AlertResource,
    KpiResource,
    LossResource,
    PlantResource,
    TelemetryResource,
)
from pv_platform.settings import get_settings
from pv_platform.vocabulary import Metric

CHECKS = ("irradiance_clearsky", "clock_shift")
DETECTOR_DAYS = 14  # the site-level detectors judge the last two weeks of minute data
HISTORY_START = datetime(2000, 1, 1, tzinfo=UTC)


def _check_results(findings) -> list[dg.AssetCheckResult]:
    results = []
    for name in CHECKS:
        mine = [f for f in findings if f.check == name]
        failed = [f for f in mine if not f.passed]
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.WARN,
                description="; ".join(f.detail for f in (failed or mine)) or "no data to judge",
                metadata={"devices_judged": len(mine), "devices_failed": len(failed)},
            )
        )
    return results


@dg.asset(
    partitions_def=sites,
    deps=[
        # every site's analysis reads its whole daily history (day partitions hold every site)
        dg.AssetDep(daily_kpis, partition_mapping=dg.AllPartitionMapping())
    ],
    group_name="losses",
    kinds={"postgres", "pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            "irradiance_clearsky",
            asset="loss_analytics",
            description="each POA sensor within 5 % of the clear-sky POA on clear days (WARN)",
        ),
        dg.AssetCheckSpec(
            "clock_shift",
            asset="loss_analytics",
            description="the site's noon within 20 min of the solar noon (WARN)",
        ),
    ],  # fmt: skip
    retry_policy=KPI_RETRY,
)
def loss_analytics(
    context: dg.AssetExecutionContext,
    kpi_store: KpiResource,
    loss_store: LossResource,
    telemetry_store: TelemetryResource,
    plant: PlantResource,
    alert_service: AlertResource,
) -> dg.MaterializeResult:
    """Soiling ratio and cleanings (SRR), year-on-year degradation and the daily loss waterfall per
    inverter and site from the site's `kpi_daily` rows → `loss_daily`, `degradation`; the POA and clock
    detectors over the last DETECTOR_DAYS days of telemetry as asset checks; the loss alert rules (soiling
    worth a cleaning, degradation step, sensor drift, clock shift) through the alert engine."""
    site_id = context.partition_key
    try:
        site = plant.load().site(site_id)
    except StopIteration:
        raise dg.Failure(f"site {site_id!r} is not in the plant file {plant.plant_file}") from None
    now = clock.now()
    daily = kpi_store.store().read("kpi_daily", HISTORY_START, now + timedelta(days=1), site_id)
    since = (
        pd.Timestamp(site.commissioning_date, tz=site.timezone).tz_convert("UTC")
        if site.commissioning_date
        else None
    )
    losses, degradation = analyse_site(daily, site_id, since)
    store = loss_store.store()
    store.replace_daily(site_id, losses)
    store.replace_degradation(site_id, degradation)
    end = pd.Timestamp(now).floor("D").to_pydatetime()
    start = end - timedelta(days=DETECTOR_DAYS)
    samples = telemetry_store.store().sample_set(
        start, end, [Metric.POA_IRRADIANCE, Metric.AC_POWER], site_id
    )
    findings = site_findings(samples, site, start, end)
    store.replace_findings(site_id, findings, start, end)
    thresholds = loss_thresholds(site, fleet_from_settings(get_settings()))
    engine = alert_service.engine()
    alerts = engine.process(
        loss_candidates(site, losses, findings, thresholds, now), now, LOSS_RULES, site_id=site_id
    )
    if not engine.flush(timeout_s=30.0):
        context.log.warning("some alert notifications were still under way after 30 s")
    metadata: dict = {
        "alerts_opened": len(alerts.opened),
        "days": int(daily["period_start"].nunique()) if not daily.empty else 0,
        "rows": len(losses),
    }
    site_row = (
        degradation[degradation["device_id"] == "*"] if not degradation.empty else degradation
    )
    if not site_row.empty:
        for column in ("rate_pct_per_year", "soiling_loss_fraction"):
            value = float(site_row[column].iloc[0])
            if pd.notna(value):
                metadata[column] = round(value, 4)
    return dg.MaterializeResult(metadata=metadata, check_results=_check_results(findings))
