"""Asset checks of the KPI assets: the data-quality checks of each hour (computed in
`pv_platform.kpi.quality`, reported here) and the coverage check of each day, month and year."""

import dagster as dg

from pv_platform.analytics.hour_checks import MASK_CHECK_NAMES
from pv_platform.kpi.quality import CHECK_NAMES, ERROR

# Checks whose failure (ERROR) keeps that site's hours out of its daily, monthly and yearly KPIs. The
# rollup assets enforce it per site (storage `blocking_failures`); the Dagster checks themselves do not
# block, so a bad hour never fails the run that computed the hour's KPIs and alerts.
BLOCKING = {"physical_ranges", "future_timestamps", "pr_plausible", "completeness"}
# the per-hour checks: kpi.quality's and the detectors' (pv_platform.analytics.hour_checks, WARN only)
HOUR_CHECKS = CHECK_NAMES + MASK_CHECK_NAMES


def hour_check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    """One check per data-quality check, judged per site and hour."""
    return [
        dg.AssetCheckSpec(
            name,
            asset=asset_name,
            description="per site and hour; "
            + ("ERROR blocks the site's rollups" if name in BLOCKING else "WARN only"),
        )
        for name in HOUR_CHECKS
    ]


def hour_check_results(outcomes: list[dict]) -> list[dg.AssetCheckResult]:
    """One asset check result per data-quality check from its outcomes over the site-hours: failed
    when any site-hour failed, as severe as the worst failure."""
    results = []
    for name in HOUR_CHECKS:
        failed = [o for o in outcomes if o["check_name"] == name and not o["passed"]]
        worst = ERROR if any(o["severity"] == ERROR for o in failed) else "WARN"
        results.append(
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
    return results


def coverage_check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "all_hours_present",
            asset=asset_name,
            description="every hour of the period so far has hourly KPIs (a missing hour: WARN,"
            " the period is shown as incomplete and recomputed when the hour lands)",
        ),
        dg.AssetCheckSpec(
            "hours_not_blocked",
            asset=asset_name,
            description="no site's hours failed an ERROR check (such a site is left out of the"
            " period, named here)",
        ),
    ]


def coverage_check_result(missing: int, expected: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="all_hours_present",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{missing} of {expected} hours have no hourly KPIs yet"
            if missing
            else f"all {expected} hours so far"
        ),
        metadata={"hours_missing": missing, "hours_expected": expected},
    )


def blocking_check_result(blocked: list[str]) -> dg.AssetCheckResult:
    """ERROR when failed ERROR checks of some site's hours kept it out of the period (its rows are
    left as they were; the other sites are computed): fix the data or re-run those hours first."""
    return dg.AssetCheckResult(
        check_name="hours_not_blocked",
        passed=not blocked,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(blocked)} hour check(s) failed with ERROR; fix the data or re-run those hours"
            f" first: {'; '.join(blocked[:5])}"
            if blocked
            else "no ERROR check failed in the period's hours"
        ),
        metadata={
            "blocking_checks": dg.MetadataValue.md("\n".join(f"- {line}" for line in blocked[:50]))
        },
    )
