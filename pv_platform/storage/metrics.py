"""SQL of the ingest/KPI side's operational metrics (`pvp metrics`): a few small aggregate queries in
one read-only transaction."""

from __future__ import annotations

import math
from datetime import datetime

import sqlalchemy as sa

# An hour waits for KPIs while no hourly KPI row of it was computed after its telemetry last changed.
HOURS_WAITING = """
SELECT count(*), min(t.hour) FROM telemetry_changes t
LEFT JOIN (SELECT period_start, max(computed_at) AS computed_at FROM kpi_hourly GROUP BY period_start) k
  ON k.period_start = t.hour
WHERE k.computed_at IS NULL OR k.computed_at < t.changed_at
"""


def ingest_snapshot(engine: sa.Engine, now: datetime) -> dict:
    """Counts and ages for the ingest/KPI metrics at `now`.

    Returns
    -------
    dict
        segments, rows_inserted (all time), rows_5min, last_load_age_s (NaN: never), newest_sample
        (datetime or None, last day only: an index scan per partition), hours_unreported, hours_waiting,
        oldest_waiting_age_s (from the end of the hour, 0 when none), failed_checks {(check, severity): n}
        of the last 24 h, alerts_active {severity: n}, quarantine_rows.
    """
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        q = lambda sql, **p: conn.execute(sa.text(sql), p)  # noqa: E731
        segments, rows, last_load = q(
            "SELECT count(*), COALESCE(sum(inserted), 0), max(loaded_at) FROM ingest_ledger"
        ).one()
        rows_5min = q(
            "SELECT COALESCE(sum(inserted), 0) FROM ingest_ledger"
            " WHERE loaded_at > CAST(:now AS timestamptz) - interval '5 minutes'",
            now=now,
        ).scalar()
        newest = q(
            "SELECT max(ts) FROM samples WHERE ts > CAST(:now AS timestamptz) - interval '1 day'",
            now=now,
        ).scalar()
        unreported = q("SELECT count(*) FROM telemetry_changes WHERE reported_at IS NULL").scalar()
        waiting, oldest_hour = q(HOURS_WAITING).one()
        failed = q(
            "SELECT check_name, severity, count(*) FROM kpi_quality WHERE NOT passed"
            " AND period_start > CAST(:now AS timestamptz) - interval '24 hours'"
            " GROUP BY check_name, severity",
            now=now,
        ).all()
        alerts = q(
            "SELECT severity, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY severity"
        ).all()
        quarantine = q("SELECT count(*) FROM quarantine").scalar()
        conn.rollback()
    oldest_age_s = 0.0
    if oldest_hour is not None:
        oldest_age_s = max(0.0, (now - oldest_hour).total_seconds() - 3600.0)
    return {
        "segments": int(segments),
        "rows_inserted": int(rows),
        "rows_5min": int(rows_5min),
        "last_load_age_s": (now - last_load).total_seconds() if last_load else math.nan,
        "newest_sample": newest,
        "hours_unreported": int(unreported),
        "hours_waiting": int(waiting),
        "oldest_waiting_age_s": oldest_age_s,
        "failed_checks": {(c, s): int(n) for c, s, n in failed},
        "alerts_active": {s: int(n) for s, n in alerts},
        "quarantine_rows": int(quarantine),
    }
