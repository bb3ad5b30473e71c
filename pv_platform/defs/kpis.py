"""KPI assets: Dagster only wires; the maths is in pv_platform.kpi, the SQL in pv_platform.storage.

Hourly KPIs cover every site in one UTC-hour partition. Days, months and years are site-local, so those
assets are partitioned by (period × site); `kpi_rollup_sensor` maps each recomputed hour to the local
day, month and year of every site (a partition mapping cannot: it knows one time zone) and
`kpi_calendar_schedule` closes each period after local midnight.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd

from pv_platform import clock
from pv_platform.alerts.kpi_rules import (
    KPI_RULES,
    STRING_CURRENT_LIKE,
    hour_candidates,
    kpi_cleared,
)
from pv_platform.alerts.limits import fleet_from_settings, kpi_thresholds
from pv_platform.alerts.service import alert_engine
from pv_platform.defs.ingest import telemetry
from pv_platform.defs.partitions import hourly
from pv_platform.defs.resources import PlatformResource
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import SITE_DEVICE, finish_periods
from pv_platform.kpi.quality import CHECK_NAMES, ERROR, run_checks
from pv_platform.kpi.temperature import typical_year_cell_temperature_c
from pv_platform.settings import get_settings
from pv_platform.storage import Database

# Checks whose failure (ERROR) keeps that site's hours out of its daily, monthly and yearly KPIs. The
# rollup assets enforce it per site (storage `blocking_failures`); the Dagster checks themselves do not
# block, so a bad hour never fails the run that computed the hour's KPIs and alerts.
BLOCKING = {"physical_ranges", "future_timestamps", "pr_plausible", "completeness"}
# a database outage fails the op; it is retried in the same run, and `hourly_kpis_sensor` requests the
# hours again (later, with backoff) if the run fails anyway
KPI_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL)
HOURS_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=48)

# end_offset=1: the running day, month and year are partitions too (live KPIs), not only closed ones
sites = dg.DynamicPartitionsDefinition(name="sites")
_start = get_settings().kpi_start[:10]
daily_by_site = dg.MultiPartitionsDefinition(
    {"date": dg.DailyPartitionsDefinition(start_date=_start, end_offset=1), "site": sites}
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


def _t_ref_by_site(platform: PlatformResource, plant) -> dict[str, float]:
    """NREL T_ref per site: computed once from a modelled year, then read from the sites table."""
    db = platform.db()
    stored = db.plant.site_t_ref_nrel()
    for site in plant.sites:
        if site.id not in stored:
            stored[site.id] = typical_year_cell_temperature_c(
                site.latitude, site.longitude, site.altitude_m, site.tilt_deg, site.azimuth_deg
            )
            db.plant.set_site_t_ref_nrel(site.id, stored[site.id])
    return stored


def _check_results(outcomes: list[dict]) -> list[dg.AssetCheckResult]:
    """One asset check result per data-quality check from its outcomes over the site-hours: failed
    when any site-hour failed, as severe as the worst failure."""
    check_results = []
    for name in CHECK_NAMES:
        failed = [o for o in outcomes if o["check_name"] == name and not o["passed"]]
        worst = ERROR if any(o["severity"] == ERROR for o in failed) else "WARN"
        check_results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR
                if worst == ERROR
                else dg.AssetCheckSeverity.WARN,
                description=(
                    "; ".join(
                        f"{o['period_start']:%Y-%m-%d %H:%M} {o['site_id']}: {o['detail']}"
                        for o in failed[:5]
                    )
                    if failed
                    else "passed"
                ),
                metadata={
                    "failed_site_hours": len(failed),
                    "sites": ", ".join(sorted({o["site_id"] for o in failed})) or "none",
                },
            )
        )
    return check_results


@dg.asset(
    partitions_def=hourly,
    deps=[telemetry],
    group_name="kpis",
    backfill_policy=HOURS_PER_RUN,  # one run for many hours
    retry_policy=KPI_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            name,
            asset="hourly_kpis",
            description=f"per site and hour; {'ERROR blocks the site' + chr(39) + 's rollups' if name in BLOCKING else 'WARN only'}",
        )
        for name in CHECK_NAMES
    ],
    kinds={"postgres", "pandas"},
)
def hourly_kpis(
    context: dg.AssetExecutionContext, platform: PlatformResource
) -> dg.MaterializeResult:
    """Energy, insolation, PR and temperature-corrected PR, expected energy, availability and grid export per
    inverter and per site for each UTC hour of the partition range → `kpi_hourly`; data-quality checks on
    the same hours → `kpi_quality` and the asset checks."""
    window = context.partition_time_window
    db, plant = platform.db(), platform.plant()
    db.plant.sync(plant)
    samples = db.telemetry.sample_set(
        window.start - EDGE_MARGIN,
        window.end + EDGE_MARGIN,
        HOURLY_METRICS + ["cabinet_temperature"],
    )
    rows = hourly_kpis_range(
        samples, plant, window.start, window.end, _t_ref_by_site(platform, plant)
    )
    outcomes = [
        {
            "period_start": o.hour.to_pydatetime(),
            "site_id": o.site_id,
            "check_name": o.name,
            "passed": o.passed,
            "severity": o.severity,
            "detail": o.detail,
            "metadata": o.metadata,
        }
        for o in run_checks(samples, rows, plant, window.start, window.end, clock.now())
    ]
    # KPI rows and their check outcomes in one transaction: never one without the other
    written = db.kpis.replace("kpi_hourly", window.start, window.end, rows, quality=outcomes)

    check_results = _check_results(outcomes)
    metadata: dict = {
        "rows": written,
        "samples": len(samples),
        "hours": len(context.partition_keys),
    }
    latest = (
        rows[rows["device_id"] == SITE_DEVICE]
        .sort_values("period_start")
        .groupby("site_id")
        .tail(1)
        if not rows.empty
        else rows
    )
    for site in latest.itertuples():
        for column in (
            "energy_ac_kwh",
            "insolation_poa_kwh_m2",
            "pr",
            "pr_temp_iec",
            "availability_time",
        ):
            value = float(getattr(site, column))
            if np.isfinite(value):
                metadata[f"{site.site_id}/{column}"] = round(value, 4)
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


def local_window(period_key: str, grain: str, tz: str) -> tuple[datetime, datetime]:
    """The site-local [start, end) of a daily/monthly/yearly partition key, as UTC instants."""
    zone = ZoneInfo(tz)
    first = datetime.strptime(period_key, "%Y" if grain == "yearly" else "%Y-%m-%d")
    if grain == "daily":
        nxt = first + timedelta(days=1)
    elif grain == "monthly":
        nxt = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    else:
        nxt = first.replace(year=first.year + 1)
    return first.replace(tzinfo=zone).astimezone(UTC), nxt.replace(tzinfo=zone).astimezone(UTC)


def _fail_if_blocked(db: Database, start: datetime, end: datetime, site_id: str) -> None:
    """A Failure (not retried: the data decides) when ERROR checks of the hours block the rollup."""
    blocked = db.kpis.blocking_failures(start, end, site_id)
    if not blocked.empty:
        lines = [
            f"{r.period_start:%Y-%m-%d %H:%M} UTC {r.check_name}: {r.detail}"
            for r in blocked.itertuples()
        ]
        raise dg.Failure(
            allow_retries=False,  # the data decides, not a passing fault
            description=f"{len(blocked)} hour check(s) failed with ERROR; fix the data or re-run those hours first",
            metadata={
                "blocking_checks": dg.MetadataValue.md(
                    "\n".join(f"- {line}" for line in lines[:50])
                )
            },
        )


def _site_figures(rows: pd.DataFrame) -> dict[str, float]:
    """The site row's headline KPIs (the finite ones, rounded) for the materialization's metadata."""
    site_row = rows[rows["device_id"] == SITE_DEVICE] if not rows.empty else rows
    figures = {}
    for column in (
        "energy_ac_kwh",
        "pr",
        "pr_temp_iec",
        "pr_temp_nrel",
        "availability_time",
        "availability_energy",
        "capacity_factor_ac",
    ):
        if not site_row.empty and np.isfinite(float(site_row[column].iloc[0])):
            figures[column] = round(float(site_row[column].iloc[0]), 4)
    return figures


def _rollup(
    context: dg.AssetExecutionContext, platform: PlatformResource, grain: str, table: str, dim: str
) -> dg.MaterializeResult:
    key = context.partition_key.keys_by_dimension
    site_id, period_key = key["site"], key[dim]
    plant = platform.plant()
    try:
        site = plant.site(site_id)
    except StopIteration:
        raise dg.Failure(
            f"site {site_id!r} is not in the plant file {platform.plant_file}"
        ) from None
    start, end = local_window(period_key, grain, site.timezone)
    db = platform.db()
    _fail_if_blocked(db, start, end, site_id)
    zones = {site_id: site.timezone}
    rows = finish_periods(db.kpis.period_sums(start, end, zones, grain, site_id), zones, grain)
    written = db.kpis.replace(table, start, end, rows, [site_id])
    expected = expected_hours(start, end, clock.now())
    present = set(db.kpis.hours(site_id, start, end))
    missing = [h for h in expected if h not in present]
    db.kpis.replace_coverage(
        grain, site_id, start, len(expected), len(expected) - len(missing), missing
    )
    metadata: dict = {
        "rows": written,
        "hours": len(present),
        "hours_expected": len(expected),
        "complete": not missing and end <= clock.now(),
    }
    if missing:
        context.log.warning(
            f"{site_id} {period_key}: computed from {len(expected) - len(missing)} of"
            f" {len(expected)} hours; missing {[f'{h:%Y-%m-%d %H:%M}' for h in missing[:10]]}"
            " (they are re-run by hourly_kpis_sensor; this period is recomputed when they land)"
        )
        metadata["missing_hours"] = dg.MetadataValue.md(
            "\n".join(f"- {h:%Y-%m-%d %H:%M} UTC" for h in missing[:50])
        )
    metadata.update(_site_figures(rows))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="all_hours_present",
                passed=not missing,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{len(missing)} of {len(expected)} hours have no hourly KPIs yet"
                    if missing
                    else f"all {len(expected)} hours so far"
                ),
                metadata={"hours_missing": len(missing), "hours_expected": len(expected)},
            )
        ],
    )


def expected_hours(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """The UTC hours starting in [start, end) that have begun by `now` (a running period: the hours so
    far). Hour partitions are whole UTC hours: in a zone at a half-hour offset (Asia/Kolkata) a local day
    holds the 24 UTC hours that start in it."""
    hours = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    hour += timedelta(hours=1) if hour < start else timedelta(0)
    while hour < end and hour <= now:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _coverage_check(asset_name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "all_hours_present",
            asset=asset_name,
            description="every hour of the period so far has hourly KPIs (a missing hour: WARN,"
            " the period is shown as incomplete and recomputed when the hour lands)",
        )
    ]


_rollup_deps = [dg.AssetDep(hourly_kpis, partition_mapping=dg.AllPartitionMapping())]


@dg.asset(
    partitions_def=daily_by_site,
    deps=_rollup_deps,
    group_name="kpis",
    kinds={"postgres", "pandas"},
    check_specs=_coverage_check("daily_kpis"),
    retry_policy=KPI_RETRY,
)
def daily_kpis(
    context: dg.AssetExecutionContext, platform: PlatformResource
) -> dg.MaterializeResult:
    """Site-local daily KPIs per inverter and site from the hourly parts → `kpi_daily`. Blocked by failed ERROR
    checks on any of its hours."""
    return _rollup(context, platform, "daily", "kpi_daily", "date")


@dg.asset(
    partitions_def=monthly_by_site,
    deps=_rollup_deps,
    group_name="kpis",
    kinds={"postgres", "pandas"},
    check_specs=_coverage_check("monthly_kpis"),
    retry_policy=KPI_RETRY,
)
def monthly_kpis(
    context: dg.AssetExecutionContext, platform: PlatformResource
) -> dg.MaterializeResult:
    """Site-local monthly KPIs from the hourly parts → `kpi_monthly`."""
    return _rollup(context, platform, "monthly", "kpi_monthly", "month")


@dg.asset(
    partitions_def=yearly_by_site,
    deps=_rollup_deps,
    group_name="kpis",
    kinds={"postgres", "pandas"},
    check_specs=_coverage_check("yearly_kpis"),
    retry_policy=KPI_RETRY,
)
def yearly_kpis(
    context: dg.AssetExecutionContext, platform: PlatformResource
) -> dg.MaterializeResult:
    """Site-local yearly KPIs from the hourly parts → `kpi_yearly`."""
    return _rollup(context, platform, "yearly", "kpi_yearly", "year")


@dg.asset(
    partitions_def=hourly,
    deps=[hourly_kpis],
    group_name="alerts",
    kinds={"postgres"},
    backfill_policy=HOURS_PER_RUN,
    retry_policy=KPI_RETRY,
)
def alerts(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
    """KPI alerts of each hour: underperformance, availability drops, failed ERROR data-quality checks →
    the same engine and `alerts` table as the real-time rules."""
    window = context.partition_time_window
    db = platform.db()
    plant, fleet = platform.plant(), fleet_from_settings(get_settings())
    limits = {site.id: kpi_thresholds(site, fleet) for site in plant.sites}
    back = timedelta(hours=max((t.string_outlier_hours for t in limits.values()), default=1))
    # every hour of the window is judged (a run over 48 back-filled hours judges 48), and the string
    # rule looks back `back` hours before its start
    recent = db.kpis.read("kpi_hourly", window.start - back, window.end)
    failed = db.kpis.blocking_failures(window.start, window.end)
    strings = db.telemetry.hourly_rollup(
        window.start - back, window.end, metric_like=STRING_CURRENT_LIKE
    )
    candidates = hour_candidates(recent, strings, failed, window.start, window.end, limits)
    engine = alert_engine(db.engine, get_settings())  # with the notifiers: MQTT and webhook
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
