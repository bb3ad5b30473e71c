"""KPI alert rules: underperformance and availability drops from hourly KPI rows, and data-quality alerts
from failed ERROR checks. Pure functions; the Dagster `alerts` asset feeds them to the engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from pv_platform.alerts.model import AlertCandidate, Severity

KPI_RULES = {"underperformance", "availability_drop", "data_quality"}


@dataclass(frozen=True)
class KpiThresholds:
    pr_min: float = 0.80  # PR below this ...
    expected_margin: float = 0.15  # ... and actual energy this far below expected: underperformance
    availability_min: float = 0.90  # time-based availability of an hour
    min_insolation_kwh_m2: float = 0.2  # hours with less sun are not judged


def kpi_candidates(
    hour_rows: pd.DataFrame,
    failed_checks: pd.DataFrame,
    now: datetime,
    thresholds: KpiThresholds | None = None,
) -> list[AlertCandidate]:
    """Candidates from one or more hours of `kpi_hourly` rows (inverters only) and failed ERROR checks."""
    t = thresholds or KpiThresholds()
    out: list[AlertCandidate] = []
    inverters = hour_rows[hour_rows["device_id"] != "*"] if not hour_rows.empty else hour_rows
    for row in inverters.itertuples():
        # underperformance is judged only on hours the inverter ran throughout: downtime is availability's
        downtime_s = (
            row.time_forced_outage_s
            + row.time_no_data_s
            + row.time_grid_outage_s
            + row.time_planned_s
        )
        judged = (
            downtime_s == 0
            and row.insolation_poa_kwh_m2 == row.insolation_poa_kwh_m2
            and row.insolation_poa_kwh_m2 >= t.min_insolation_kwh_m2
        )
        if (
            judged
            and row.pr == row.pr
            and row.pr < t.pr_min
            and row.expected_deviation == row.expected_deviation
            and row.expected_deviation < -t.expected_margin
        ):
            out.append(
                AlertCandidate(
                    "underperformance", Severity.HIGH, row.site_id, row.device_id,
                    f"{row.device_id}: PR {row.pr:.2f} < {t.pr_min:.2f} and {abs(row.expected_deviation):.0%} below expected"
                    f" in the hour from {pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC",
                    now, context={"pr": float(row.pr), "expected_deviation": float(row.expected_deviation), "hour": str(row.period_start)},
                )
            )  # fmt: skip
        availability = row.availability_time
        if availability == availability and availability < t.availability_min:
            out.append(
                AlertCandidate(
                    "availability_drop", Severity.MEDIUM, row.site_id, row.device_id,
                    f"{row.device_id}: availability {availability:.0%} in the hour from {pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC"
                    f" ({row.time_forced_outage_s / 60:.0f} min forced outage)",
                    now, context={"availability": float(availability), "hour": str(row.period_start)},
                )
            )  # fmt: skip
    for check in failed_checks.itertuples() if not failed_checks.empty else ():
        out.append(
            AlertCandidate(
                "data_quality", Severity.MEDIUM, "*", "*",
                f"{check.check_name} failed for {pd.Timestamp(check.period_start):%Y-%m-%d %H:%M} UTC: {check.detail}",
                now, key=check.check_name, context={"hour": str(check.period_start)},
            )
        )  # fmt: skip
    return out
