"""The report assets: one site's monthly (yearly) report per (month × site) partition, from the KPI
tables once `report_sensor` sees the period's KPIs computed after it closed. The work is in
`pv_platform.reports`."""

import dagster as dg

from pv_platform import clock
from pv_platform.defs.kpis.assets import KPI_RETRY, monthly_kpis, yearly_kpis
from pv_platform.defs.partitions import monthly_by_site, yearly_by_site
from pv_platform.defs.resources import PlantResource, ReportResource
from pv_platform.kpi.calendar import local_window
from pv_platform.reports.publish import publish_report
from pv_platform.settings import get_settings


def _report(
    context: dg.AssetExecutionContext, reports: ReportResource, plant: PlantResource, grain: str
) -> dg.MaterializeResult:
    key = context.partition_key.keys_by_dimension
    dim = "month" if grain == "monthly" else "year"
    site_id, period_key = key["site"], key[dim]
    try:
        site = plant.load().site(site_id)
    except StopIteration:
        raise dg.Failure(f"site {site_id!r} is not in the plant file {plant.plant_file}") from None
    bounds = local_window(period_key, grain, site.timezone)
    done = publish_report(
        reports.database(), site, grain, period_key, bounds, get_settings(), clock.now()
    )
    if done.emailed_to:
        context.log.info(f"{site_id} {period_key}: e-mailed to {len(done.emailed_to)} recipient(s)")
    return dg.MaterializeResult(
        metadata={
            "pdf_bytes": done.pdf_bytes,
            "html_bytes": done.html_bytes,
            "emailed_to": ", ".join(done.emailed_to) or "nobody",
            "email_skipped": done.email_skipped or "no",
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in done.summary.items()},
        }
    )


@dg.asset(
    partitions_def=monthly_by_site,
    deps=[monthly_kpis],
    group_name="reports",
    kinds={"pdf", "html"},
    retry_policy=KPI_RETRY,  # a database or SMTP outage: tried again in the run
)
def monthly_report(
    context: dg.AssetExecutionContext, report_store: ReportResource, plant: PlantResource
) -> dg.MaterializeResult:
    """A site's monthly owner report (PDF and HTML in the `reports` table), e-mailed once when SMTP
    and recipients are configured."""
    return _report(context, report_store, plant, "monthly")


@dg.asset(
    partitions_def=yearly_by_site,
    deps=[yearly_kpis],
    group_name="reports",
    kinds={"pdf", "html"},
    retry_policy=KPI_RETRY,
)
def yearly_report(
    context: dg.AssetExecutionContext, report_store: ReportResource, plant: PlantResource
) -> dg.MaterializeResult:
    """A site's annual owner report, like the monthly one over the site-local calendar year."""
    return _report(context, report_store, plant, "yearly")
