"""Telemetry: landing segments in (exactly once, with the hours they touched), samples and hourly
rollups out."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from pv_platform.kpi.samples import SampleSet
from pv_platform.landing import Segment
from pv_platform.storage.codecs import pg_text

if TYPE_CHECKING:
    from pv_platform.storage.database import Database


@dataclass(frozen=True)
class IngestResult:
    segment_id: str
    rows: int
    inserted: int
    quarantined: int
    hours: tuple[datetime, ...]
    already_loaded: bool = False


class TelemetryStore:
    """`entities`, `samples`, `samples_hourly`, `ingest_ledger`, `quarantine` and `telemetry_changes`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- ingest -----------------------------------------------------------------------------------
    def ingest_segment(self, segment: Segment, neighbour_s: float = 900.0) -> IngestResult:
        """Load one landing segment exactly once: COPY to staging, insert new samples, record the ledger.

        A segment already in `ingest_ledger` is skipped; a sample already in `samples` is not inserted
        again (re-delivery is harmless). The hours it touched are recorded in `telemetry_changes`; a sample
        within `neighbour_s` of an hour edge touches the hour across the edge too (the KPIs interpolate
        across it, so that hour's values change as well).
        """
        with self.db.engine.begin() as conn:
            if conn.exec_driver_sql(
                "SELECT 1 FROM ingest_ledger WHERE segment_id = %s", (segment.segment_id,)
            ).first():
                return IngestResult(segment.segment_id, segment.rows, 0, 0, (), already_loaded=True)
            conn.exec_driver_sql(
                "CREATE TEMP TABLE staging (entity text, ts timestamptz, value double precision) ON COMMIT DROP"
            )
            self.db.transfer.load_staging(conn, segment.csv_body)
            self._register_entities(conn, segment.meta.get("entities", {}))
            first, last = conn.exec_driver_sql("SELECT min(ts), max(ts) FROM staging").one()
            inserted = 0
            hours: tuple[datetime, ...] = ()
            if first is not None:
                self.db.dialect.ensure_partitions(conn, first, last)
                inserted = conn.exec_driver_sql(
                    "INSERT INTO samples (entity_id, ts, value)"
                    " SELECT DISTINCT ON (e.id, s.ts) e.id, s.ts, s.value FROM staging s JOIN entities e ON e.key = s.entity"
                    " ORDER BY e.id, s.ts ON CONFLICT (entity_id, ts) DO NOTHING"
                ).rowcount
                hours = self._record_changes(conn, neighbour_s)
            quarantined = self._quarantine(conn, segment)
            conn.exec_driver_sql(
                "INSERT INTO ingest_ledger (segment_id, rows, inserted, quarantined) VALUES (%s, %s, %s, %s)",
                (segment.segment_id, segment.rows, inserted, quarantined),
            )
        return IngestResult(segment.segment_id, segment.rows, inserted, quarantined, hours)

    @staticmethod
    def _record_changes(conn: sa.Connection, neighbour_s: float) -> tuple[datetime, ...]:
        """Record the UTC hours of the staged samples in `telemetry_changes` (and the neighbouring hours
        within `neighbour_s` of an edge that have telemetry of their own); returns the staged hours."""
        hours = tuple(
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT DISTINCT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS h"
                " FROM staging ORDER BY h"
            )
        )
        edges = {
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT DISTINCT date_trunc('hour', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                " FROM staging, unnest(ARRAY[ts - %s * INTERVAL '1 second',"
                " ts + %s * INTERVAL '1 second']) AS t",
                (neighbour_s, neighbour_s),
            )
        }
        neighbours = sorted(edges - set(hours))
        if hours:  # reported to Dagster by the next ingest run whatever happens to this one
            conn.exec_driver_sql(
                "INSERT INTO telemetry_changes (hour, changed_at) SELECT h, clock_timestamp()"
                " FROM unnest(%s::timestamptz[]) AS h ON CONFLICT (hour) DO UPDATE"
                " SET changed_at = EXCLUDED.changed_at, reported_at = NULL",
                (list(hours),),
            )
            # a neighbouring hour that has telemetry of its own is computed again too; one without
            # (before the history starts, or the hour still to come) is no hour to compute
            conn.exec_driver_sql(
                "UPDATE telemetry_changes SET changed_at = clock_timestamp(), reported_at = NULL"
                " WHERE hour = ANY(%s::timestamptz[])",
                (neighbours,),
            )
        return hours

    def _register_entities(self, conn: sa.Connection, meta: dict[str, dict]) -> None:
        conn.exec_driver_sql(
            "INSERT INTO entities (key, site_id, device_id, metric)"
            " SELECT DISTINCT entity, split_part(entity, '.', 1), split_part(entity, '.', 2), split_part(entity, '.', 3)"
            " FROM staging ON CONFLICT (key) DO NOTHING"
        )
        for key, info in meta.items():
            conn.exec_driver_sql(
                "UPDATE entities SET unit = %s, device_class = %s WHERE key = %s"
                " AND (unit IS DISTINCT FROM %s OR device_class IS DISTINCT FROM %s)",
                (
                    info.get("unit"),
                    info.get("device_class"),
                    key,
                    info.get("unit"),
                    info.get("device_class"),
                ),
            )

    def _quarantine(self, conn: sa.Connection, segment: Segment) -> int:
        records = segment.meta.get("quarantine", [])
        for q in records:
            conn.exec_driver_sql(
                "INSERT INTO quarantine (received_at, source, payload, reason, segment_id) VALUES (%s, %s, %s, %s, %s)",
                (
                    q["received_at"],
                    pg_text(q["source"]),
                    base64.b64decode(q["payload_b64"]),  # bytea: any bytes, verbatim
                    pg_text(q["reason"]),
                    segment.segment_id,
                ),
            )
        return len(records)

    def reject_segment(self, segment_id: str, reason: str, head: bytes) -> None:
        """Record a landing segment that cannot be loaded: one `quarantine` row (its first 64 KiB and
        the reason; once per segment, so a retried run adds none) and the open `landing_rejected`
        alert, whose count grows with each rejected segment."""
        now = datetime.now(UTC)
        with self.db.engine.begin() as conn:
            added = conn.exec_driver_sql(
                "INSERT INTO quarantine (received_at, source, payload, reason, segment_id)"
                " SELECT %s, 'landing', %s, %s, %s WHERE NOT EXISTS"
                " (SELECT 1 FROM quarantine WHERE source = 'landing' AND segment_id = %s)",
                (now, head[:65536], pg_text(f"segment rejected: {reason}"), segment_id, segment_id),
            ).rowcount
            if not added:
                return
            conn.exec_driver_sql(
                "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
                " last_seen_at, message, context) VALUES ('landing_rejected:*:landing', 'landing_rejected',"
                " 'HIGH', '*', 'landing', 'open', %s, %s, %s, '{}')"
                " ON CONFLICT (fingerprint) WHERE state <> 'resolved' DO UPDATE SET"
                " count = alerts.count + 1, last_seen_at = EXCLUDED.last_seen_at, message = EXCLUDED.message",
                (now, now, pg_text(f"landing segment {segment_id} rejected: {reason}"[:2000])),
            )

    def refresh_rollup(self, start: datetime, end: datetime) -> None:
        """Materialize the hourly rollup for [start, end) now (TimescaleDB; a view needs nothing).

        The ingest job calls it for the hours it touched, so late and back-filled data reach the
        continuous aggregate whatever the refresh policy's window.
        """
        self.db.dialect.refresh_rollup(self.db.engine, start, end)

    # -- reads ------------------------------------------------------------------------------------
    def _entities(self, metrics: list[str], site_id: str | None) -> pd.DataFrame:
        return self.db.query_df(
            "SELECT id, site_id, device_id, metric FROM entities WHERE metric = ANY(:metrics)"
            + (" AND site_id = :site_id" if site_id else ""),
            {"metrics": metrics, "site_id": site_id},
        )

    def sample_set(
        self, start: datetime, end: datetime, metrics: list[str], site_id: str | None = None
    ) -> SampleSet:
        """Samples of the given metrics in [start, end) as a SampleSet: per entity two numpy arrays (with
        the default `Binary` transfer read without a Python object per sample: what the KPI assets use
        for a week of a fleet). `.to_frame()` gives the long format (site_id, device_id, metric, ts,
        value)."""
        entities = self._entities(metrics, site_id)
        if entities.empty:
            return SampleSet({})
        names = {
            int(r.id): (r.site_id, r.device_id, r.metric) for r in entities.itertuples(index=False)
        }
        return self.db.transfer.read_samples(self.db, names, start, end)

    def hourly_rollup_query(
        self,
        start: datetime,
        end: datetime,
        metrics: list[str] | None = None,
        site_id: str | None = None,
        metric_like: str | None = None,
    ) -> tuple[str, dict]:
        """The SQL (and parameters) of `hourly_rollup`; on plain PostgreSQL it filters `ts` itself, so
        only the partitions of [start, end) are read."""
        rollup = self.db.dialect.rollup_source()
        sql = (
            "SELECT e.site_id, e.device_id, e.metric, r.bucket, r.n, r.avg_value, r.min_value, r.max_value,"
            f" r.first_value, r.last_value FROM {rollup} r JOIN entities e ON e.id = r.entity_id"
            " WHERE r.bucket >= :start AND r.bucket < :end"
            + (" AND e.metric = ANY(:metrics)" if metrics else "")
            + (" AND e.site_id = :site_id" if site_id else "")
            + (" AND e.metric LIKE :like" if metric_like else "")
            + " ORDER BY e.site_id, e.device_id, e.metric, r.bucket"
        )
        params = {
            "start": start,
            "end": end,
            "metrics": metrics,
            "site_id": site_id,
            "like": metric_like,
        }
        return sql, params

    def hourly_rollup(
        self,
        start: datetime,
        end: datetime,
        metrics: list[str] | None = None,
        site_id: str | None = None,
        metric_like: str | None = None,
    ) -> pd.DataFrame:
        """Per entity and UTC hour in [start, end): n, avg/min/max and first/last value (from `samples_hourly`).
        metric_like: a SQL LIKE pattern on the metric name (e.g. 'mppt%_dc_current')."""
        df = self.db.query_df(*self.hourly_rollup_query(start, end, metrics, site_id, metric_like))
        if not df.empty:
            df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
            for col in ("avg_value", "min_value", "max_value", "first_value", "last_value"):
                df[col] = df[col].astype(float)
            df["n"] = df["n"].astype(int)
        return df

    def unreported_hours(self) -> list[tuple[datetime, datetime]]:
        """Telemetry hours loaded but not yet reported to Dagster: (hour, changed_at), oldest first."""
        with self.db.engine.connect() as conn:
            return [
                (row[0], row[1])
                for row in conn.exec_driver_sql(
                    "SELECT hour, changed_at FROM telemetry_changes WHERE reported_at IS NULL ORDER BY hour"
                )
            ]

    def mark_reported(self, changes: list[tuple[datetime, datetime]]) -> None:
        """Mark hours reported, unless loaded again since they were read (then they are reported next)."""
        if not changes:
            return
        with self.db.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE telemetry_changes t SET reported_at = now()"
                " FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS c(hour, changed_at)"
                " WHERE t.hour = c.hour AND t.changed_at = c.changed_at",
                ([h for h, _ in changes], [c for _, c in changes]),
            )

    def quarantine_counts(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rejected inputs received in [start, end) per source: source, rejected, first_reason."""
        return self.db.query_df(
            "SELECT source, count(*) AS rejected, min(reason) AS first_reason FROM quarantine"
            " WHERE received_at >= :s AND received_at < :e GROUP BY source ORDER BY source",
            {"s": start, "e": end},
        )

    def last_reading_per_device(self) -> dict[tuple[str, str], datetime]:
        """Newest sample time of each (site, device), from the last day of samples (index scans)."""
        df = self.db.query_df(
            "SELECT e.site_id, e.device_id, max(s.ts) AS ts FROM samples s"
            " JOIN entities e ON e.id = s.entity_id WHERE s.ts > now() - interval '1 day'"
            " GROUP BY e.site_id, e.device_id"
        )
        return {
            (r.site_id, r.device_id): pd.Timestamp(r.ts).to_pydatetime() for r in df.itertuples()
        }
