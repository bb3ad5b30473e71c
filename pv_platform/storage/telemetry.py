"""Telemetry: landing segments in (exactly once, with the hours they touched), samples and hourly
rollups out."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

from pv_platform.kpi.samples import SampleSet
from pv_platform.landing import Segment
from pv_platform.segment_rows import parse_columns
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


def _utc(micros) -> datetime:
    """µs since 1970 UTC as a datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))


class TelemetryStore:
    """`entities`, `samples`, `samples_hourly`, `ingest_ledger`, `quarantine` and `telemetry_changes`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- ingest -----------------------------------------------------------------------------------
    def ingest_segment(self, segment: Segment, neighbour_s: float = 900.0) -> IngestResult:
        """Load one landing segment exactly once: its rows, with entity ids resolved once per segment,
        into `samples` by binary COPY (see `_insert_new`), and the ledger, in one transaction.

        A segment already in `ingest_ledger` is skipped; a sample already in `samples` is not inserted
        again (re-delivery is harmless), and of two rows of the segment with the same entity and time
        one is inserted. The hours it touched are recorded in `telemetry_changes`; a sample within
        `neighbour_s` of an hour edge touches the hour across the edge too (the KPIs interpolate
        across it, so that hour's values change as well).
        """
        cols = segment.columns or parse_columns(segment.csv_body)
        if cols is None:
            raise ValueError(f"segment {segment.segment_id}: body not read by read_segment")
        with self.db.engine.begin() as conn:
            if conn.exec_driver_sql(
                "SELECT 1 FROM ingest_ledger WHERE segment_id = %s", (segment.segment_id,)
            ).first():
                return IngestResult(segment.segment_id, segment.rows, 0, 0, (), already_loaded=True)
            ids = self._entity_ids(conn, cols.keys, segment.meta.get("entities", {}))
            inserted = 0
            hours: tuple[datetime, ...] = ()
            if len(cols):
                entity_ids = ids[cols.codes]
                first, last = (_utc(cols.ts_us.min()), _utc(cols.ts_us.max()))
                self.db.dialect.ensure_partitions(conn, first, last)
                inserted = self._insert_new(conn, cols, entity_ids, first, last)
                hours = self._record_changes(conn, cols.ts_us, neighbour_s)
            quarantined = self._quarantine(conn, segment)
            conn.exec_driver_sql(
                "INSERT INTO ingest_ledger (segment_id, rows, inserted, quarantined) VALUES (%s, %s, %s, %s)",
                (segment.segment_id, segment.rows, inserted, quarantined),
            )
        return IngestResult(segment.segment_id, segment.rows, inserted, quarantined, hours)

    def _insert_new(self, conn: sa.Connection, cols, entity_ids, first, last) -> int:
        """Insert the rows not yet in `samples`; returns how many.

        New data (nothing stored for these entities in [first, last], no two rows of one entity and
        time) goes straight into `samples` with one binary COPY (where the server takes COPY), as fast
        as a plain COPY; should a concurrent load have stored one of them meanwhile, the primary key
        refuses it and the rows take the other way. Anything else (a redelivery, an overlap) goes
        through a staging table and `INSERT ... ON CONFLICT DO NOTHING`."""
        transfer = self.db.transfer
        if transfer.copies and not cols.has_duplicates():
            stored = conn.exec_driver_sql(
                "SELECT 1 FROM samples WHERE entity_id = ANY(%s::integer[]) AND ts >= %s"
                " AND ts <= %s LIMIT 1",
                (np.unique(entity_ids).tolist(), first, last),
            ).first()
            try:
                if stored is None:
                    with conn.begin_nested():
                        transfer.load_samples(conn, "samples", entity_ids, cols.ts_us, cols.values)
                    return len(cols)
            except (psycopg.errors.UniqueViolation, sa.exc.IntegrityError):
                pass  # stored by a concurrent load since the look: take the other way
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS staging_samples (entity_id integer,"
            " ts timestamptz, value double precision) ON COMMIT DELETE ROWS"
        )
        transfer.load_samples(conn, "staging_samples", entity_ids, cols.ts_us, cols.values)
        pick = (  # of two rows of one entity and time, one
            "DISTINCT ON (entity_id, ts) entity_id, ts, value FROM staging_samples"
            " ORDER BY entity_id, ts"
            if cols.has_duplicates()
            else "entity_id, ts, value FROM staging_samples"
        )
        return conn.exec_driver_sql(
            f"INSERT INTO samples (entity_id, ts, value) SELECT {pick}"
            " ON CONFLICT (entity_id, ts) DO NOTHING"
        ).rowcount

    @staticmethod
    def _record_changes(
        conn: sa.Connection, ts_us: np.ndarray, neighbour_s: float
    ) -> tuple[datetime, ...]:
        """Record the UTC hours of the samples in `telemetry_changes` (and the neighbouring hours
        within `neighbour_s` of an edge that have telemetry of their own); returns the samples' hours."""
        hour_us, margin_us = 3_600_000_000, int(neighbour_s * 1e6)
        own = np.unique(ts_us // hour_us)
        edges = np.union1d((ts_us - margin_us) // hour_us, (ts_us + margin_us) // hour_us)
        hours = tuple(_utc(h * hour_us) for h in own)
        neighbours = [_utc(h * hour_us) for h in np.setdiff1d(edges, own)]
        # reported to Dagster by the next ingest run whatever happens to this one
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

    @staticmethod
    def _entity_ids(conn: sa.Connection, keys: list[str], meta: dict[str, dict]) -> np.ndarray:
        """Entity id of each key (registering new keys), in the order of `keys`; unit and device class
        from the segment's metadata where they changed. One statement each, whatever the count."""
        if keys:
            conn.exec_driver_sql(
                "INSERT INTO entities (key, site_id, device_id, metric)"
                " SELECT k, split_part(k, '.', 1), split_part(k, '.', 2), split_part(k, '.', 3)"
                " FROM unnest(%s::text[]) AS k ON CONFLICT (key) DO NOTHING",
                (keys,),
            )
        if meta:
            names = list(meta)
            conn.exec_driver_sql(
                "UPDATE entities e SET unit = m.unit, device_class = m.device_class"
                " FROM unnest(%s::text[], %s::text[], %s::text[]) AS m(key, unit, device_class)"
                " WHERE e.key = m.key AND (e.unit IS DISTINCT FROM m.unit"
                " OR e.device_class IS DISTINCT FROM m.device_class)",
                (
                    names,
                    [meta[k].get("unit") for k in names],
                    [meta[k].get("device_class") for k in names],
                ),
            )
        if not keys:
            return np.zeros(0, np.int32)
        found = dict(
            conn.exec_driver_sql(
                "SELECT key, id FROM entities WHERE key = ANY(%s::text[])", (keys,)
            ).all()
        )
        return np.array([found[k] for k in keys], dtype=np.int32)

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

    def alert_unpartitioned_hours(self, message: str) -> None:
        """Open (or count again) the HIGH `hours_outside_partitions` alert: hours were stored that no KPI
        partition computes."""
        now = datetime.now(UTC)
        with self.db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
                " last_seen_at, message, context) VALUES ('hours_outside_partitions:*:ingest',"
                " 'hours_outside_partitions', 'HIGH', '*', 'ingest', 'open', %s, %s, %s, '{}')"
                " ON CONFLICT (fingerprint) WHERE state <> 'resolved' DO UPDATE SET"
                " count = alerts.count + 1, last_seen_at = EXCLUDED.last_seen_at, message = EXCLUDED.message",
                (now, now, pg_text(message[:2000])),
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
