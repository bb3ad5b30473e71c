"""The report assets: the monthly (yearly) reports of a month (year) partition, one per site the run
names (run config `sites`; none: every site), from the KPI tables once `report_sensor` sees that
site's period KPIs computed after it closed. The work is in
`pv_platform.reports`."""

import dagster as dg

from pv_platform import clock
from pv_platform.defs.kpis.assets import (
    KPI_RETRY,
    RollupConfig,
    monthly_kpis,
    selected_zones,
    yearly_kpis,
)
from pv_platform.defs.partitions import monthly, yearly
from pv_platform.defs.resources import PlantResource, ReportResource
from pv_platform.kpi.calendar import local_window
from pv_platform.reports.publish import publish_report
from pv_platform.settings import get_settings


def _report(
    context: dg.AssetExecutionContext,
    config: RollupConfig,
    reports: ReportResource,
    plant: PlantResource,
    grain: str,
) -> dg.MaterializeResult:
    """The period's report of each selected site (run config `sites`; none: every site)."""
    zones = selected_zones(config, plant)
    model, period_key = plant.load(), context.partition_key
    made: dict[str, dict] = {}
    for site_id, tz in sorted(zones.items()):
        bounds = local_window(period_key, grain, tz)
        done = publish_report(
            reports.database(), model.site(site_id), grain, period_key, bounds, get_settings(),
            clock.now(),
        )  # fmt: skip
        if done.emailed_to:
            context.log.info(
                f"{site_id} {period_key}: e-mailed to {len(done.emailed_to)} recipient(s)"
            )
        made[site_id] = {
            "pdf_bytes": done.pdf_bytes,
            "html_bytes": done.html_bytes,
            "emailed_to": ", ".join(done.emailed_to) or "nobody",
            "email_skipped": done.email_skipped or "no",
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in done.summary.items()},
        }
    metadata: dict = {"sites": dg.MetadataValue.json(sorted(made)), "reports": len(made)}
    if len(made) == 1:  # one site's run (the usual one): its figures as they were
        metadata.update(next(iter(made.values())))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=monthly,
    deps=[monthly_kpis],
    group_name="reports",
    kinds={"pdf", "html"},
    retry_policy=KPI_RETRY,  # a database or SMTP outage: tried again in the run
)
def monthly_report(
    context: dg.AssetExecutionContext,
    config: RollupConfig,
    report_store: ReportResource,
    plant: PlantResource,
) -> dg.MaterializeResult:
    """Each selected site's monthly owner report (PDF and HTML in the `reports` table), e-mailed once when SMTP
    and recipients are configured."""
    return _report(context, config, report_store, plant, "monthly")


@dg.asset(
    partitions_def=yearly,
    deps=[yearly_kpis],
    group_name="reports",
    kinds={"pdf", "html"},
    retry_policy=KPI_RETRY,
)
def yearly_report(
    context: dg.AssetExecutionContext,
    config: RollupConfig,
    report_store: ReportResource,
    plant: PlantResource,
) -> dg.MaterializeResult:
    """Each selected site's annual owner report, like the monthly one over the site-local calendar year."""
    return _report(context, config, report_store, plant, "yearly")
