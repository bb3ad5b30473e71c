"""The only module that speaks SQL: migrations, ingest of landing segments, KPI reads and writes."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import Format
from sqlalchemy.engine import make_url

from pv_platform.kpi.periods import ADDITIVE, finish_periods
from pv_platform.kpi.samples import SampleSet
from pv_platform.landing import Segment
from pv_platform.plant import Plant
from pv_platform.storage.schema import (
    ENSURE_PARTITIONS_FUNCTION,
    KPI_TABLES,
    KPI_VALUE_COLUMNS,
    MIGRATIONS,
    ROLLUP_PLAIN,
    ROLLUP_PLAIN_SELECT,
    ROLLUP_TIMESCALE,
    SAMPLES_PLAIN,
    SAMPLES_TIMESCALE,
    SECURE_SCHEMA,
    SIGN_ALERT_FUNCTION,
)

log = logging.getLogger(__name__)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's zero time, in µs since 1970-01-01
SAMPLE_RECORD = np.dtype([("ts", ">i8"), ("value", ">f8")])  # timestamptz_send || float8send
Dialect = Literal["timescale", "postgres"]
UNNEST_CHUNK_ROWS = (
    500  # rows per statement without COPY: the WASM server crashes on a ~140 kB message
)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def sqlalchemy_url(url: str, driver: str = "psycopg") -> str:
    """`postgresql://...` with the given driver (psycopg 3 for us, psycopg2 for Dagster's storage)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"database URL must be postgresql://..., got {parsed.drivername}://")
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL without its password, for log lines."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class IngestResult:
    segment_id: str
    rows: int
    inserted: int
    quarantined: int
    hours: tuple[datetime, ...]
    already_loaded: bool = False


class _BinaryArrayLoader(Loader):
    """A one-dimensional array of a fixed-size type without NULLs, in PostgreSQL's binary format,
    straight into numpy: 20 header bytes, then per element a 4-byte length and the big-endian value."""

    format = Format.BINARY
    element = np.dtype(">f8")

    def load(self, data: Any) -> np.ndarray:
        ndim, has_nulls = np.frombuffer(data, ">i4", 2)
        if ndim == 0:
            return np.zeros(0, self.element.newbyteorder("="))
        if ndim != 1 or has_nulls:
            raise ValueError("expected a one-dimensional array without NULLs")
        n = int(np.frombuffer(data, ">i4", 1, 12)[0])
        items = np.frombuffer(data, [("length", ">i4"), ("value", self.element)], n, 20)
        return items["value"].astype(self.element.newbyteorder("="))


class Float8ArrayLoader(_BinaryArrayLoader):
    element = np.dtype(">f8")


class TimestampArrayLoader(_BinaryArrayLoader):
    """timestamptz[] -> int64 µs since 1970-01-01 UTC."""

    element = np.dtype(">i8")

    def load(self, data: Any) -> np.ndarray:
        return super().load(data) + PG_EPOCH_US


class Int4ArrayLoader(_BinaryArrayLoader):
    element = np.dtype(">i4")


def _register_array_loaders(cur: psycopg.Cursor) -> None:
    """float8[], int4[] and timestamptz[] results of this cursor as numpy arrays (binary cursors only)."""
    types = psycopg.postgres.types
    cur.adapters.register_loader(types["timestamptz"].array_oid, TimestampArrayLoader)
    cur.adapters.register_loader(types["float8"].array_oid, Float8ArrayLoader)
    cur.adapters.register_loader(types["int4"].array_oid, Int4ArrayLoader)


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY header: no flags, no extension
COPY_TRAILER = b"\xff\xff"


def _field_bytes(values: np.ndarray, kind: str, present: np.ndarray | None = None):
    """Binary COPY fields of a block of columns of one type: (n, columns * (4 + size)) bytes of
    big-endian length and value per field, and the mask of the bytes that belong in the stream (a NULL
    is the length -1 and no value).

    values : (n,) or (n, columns); present : same shape, False where the field is NULL
    """
    values = values.reshape(len(values), -1)
    n, k = values.shape
    data = np.ascontiguousarray(values, dtype=kind).view(np.uint8).reshape(n, k, -1)
    size = data.shape[2]
    lengths = np.full((n, k), size, ">i4")
    keep = np.ones((n, k, 4 + size), bool)
    if present is not None:
        present = present.reshape(n, k)
        lengths[~present] = -1
        keep[~present, 4:] = False
    fields = np.concatenate([lengths.view(np.uint8).reshape(n, k, 4), data], axis=2)
    return fields.reshape(n, -1), keep.reshape(n, -1)


def _kpi_copy_stream(rows: pd.DataFrame, columns: list[str]) -> bytes:
    """KPI rows as one binary COPY stream, built with numpy a column at a time (no per-value
    formatting): text names, timestamptz, float8 (NaN and None as NULL) and the int4 sample count."""
    if columns[:3] != ["site_id", "device_id", "period_start"]:
        raise ValueError("KPI rows start with site_id, device_id, period_start")
    site_codes, sites = pd.factorize(rows["site_id"])
    device_codes, devices = pd.factorize(rows["device_id"])
    pair_ids, codes = np.unique(site_codes * len(devices) + device_codes, return_inverse=True)
    uniques = [(sites[i // len(devices)], devices[i % len(devices)]) for i in pair_ids]
    # the row header and the two names are the same for every row of a (site, device): a small table
    heads = [
        len(columns).to_bytes(2, "big")
        + b"".join(len(b := str(x).encode()).to_bytes(4, "big") + b for x in pair)
        for pair in uniques
    ]
    width = max(len(h) for h in heads)
    table = np.zeros((len(heads), width), np.uint8)
    for i, head in enumerate(heads):
        table[i, : len(head)] = np.frombuffer(head, np.uint8)
    head_len = np.array([len(h) for h in heads])
    parts = [(table[codes], np.arange(width) < head_len[codes][:, None])]
    stamps = pd.DatetimeIndex(rows["period_start"]).tz_convert("UTC").as_unit("us").asi8
    parts.append(_field_bytes(stamps - PG_EPOCH_US, ">i8"))
    numbers = columns[3:-1] if columns[-1] == "samples" else columns[3:]
    values = rows[numbers].astype(float).to_numpy(dtype=float, na_value=np.nan)
    parts.append(_field_bytes(values, ">f8", ~np.isnan(values)))
    if columns[-1] == "samples":
        parts.append(_field_bytes(rows["samples"].to_numpy(dtype=np.int64), ">i4"))
    matrix = np.hstack([m for m, _ in parts])
    keep = np.hstack([k for _, k in parts])
    return COPY_SIGNATURE + matrix[keep].tobytes() + COPY_TRAILER


def _copy_kpi_rows(raw: Any, table: str, rows: pd.DataFrame, columns: list[str]) -> None:
    """Write KPI rows with one binary COPY (see `_kpi_copy_stream`)."""
    key, count = (
        ["site_id", "device_id", "period_start"],
        ["samples"] if "samples" in columns else [],
    )
    columns = key + [c for c in columns if c not in (*key, "samples")] + count
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)") as copy,
    ):
        copy.write(_kpi_copy_stream(rows, columns))


class Database:
    """Telemetry storage on PostgreSQL, TimescaleDB when the extension is there."""

    def __init__(
        self, url: str, *, pool_size: int = 5, max_overflow: int = 10, use_copy: bool = True
    ) -> None:
        """`use_copy=False` loads staging rows with `unnest` arrays instead of COPY, for servers that
        cannot COPY FROM STDIN (the WASM TimescaleDB build used in the tests)."""
        self.url = url
        self.use_copy = use_copy
        self.engine = sa.create_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
        )
        self._dialect: Dialect | None = None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- dialect and migrations -------------------------------------------------------------------
    @property
    def dialect(self) -> Dialect:
        """`timescale` when the timescaledb extension is installed in this database, else `postgres`."""
        if self._dialect is None:
            with self.engine.connect() as conn:
                found = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
                ).first()
            self._dialect = "timescale" if found else "postgres"
        return self._dialect

    ROLE_GRANTS = {
        # collector / Dagster ingest and KPI runs: write telemetry, KPIs and alerts; create partitions
        # (partitions through the owner's SECURITY DEFINER function: no CREATE anywhere)
        "pvp_ingest": (
            "REVOKE CREATE ON SCHEMA public FROM {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.schema_migrations FROM {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT EXECUTE ON FUNCTION public.pvp_ensure_samples_partitions(timestamptz, timestamptz) TO {role}",
            "GRANT EXECUTE ON FUNCTION public.pvp_sign_alert(bigint, text, text, text, timestamptz) TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        ),
        # dashboards: read everything, sign alerts off (acknowledge/resolve, only through
        # pvp_sign_alert: never an alert's message, severity, rule or times), nothing else
        "pvp_reader": (
            "REVOKE CREATE ON SCHEMA public FROM {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {role}",
            "GRANT EXECUTE ON FUNCTION public.pvp_sign_alert(bigint, text, text, text, timestamptz) TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
        ),
    }

    def ensure_roles(self, passwords: dict[str, str]) -> None:
        """Create (or update the password of) the least-privilege login roles `pvp_ingest` and `pvp_reader`
        and grant each only what its service needs. Run as the schema owner after `migrate`."""
        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            for role, password in passwords.items():
                if role not in self.ROLE_GRANTS:
                    raise ValueError(f"unknown role {role!r}; known: {', '.join(self.ROLE_GRANTS)}")
                exists = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).first()
                verb = "ALTER" if exists else "CREATE"
                raw.execute(
                    sql.SQL(
                        verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                    ).format(sql.Identifier(role), sql.Literal(password))
                )
                database = conn.exec_driver_sql("SELECT current_database()").scalar()
                raw.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
                for grant in self.ROLE_GRANTS[role]:
                    raw.execute(sql.SQL(grant).format(role=sql.Identifier(role)))
        log.info("roles %s granted on %s", sorted(passwords), redact(self.url))

    def migrate(
        self,
        chunk_interval: str = "7 days",
        compress_after: str = "7 days",
        raw_retention: str | None = None,
    ) -> list[int]:
        """Apply pending migrations (idempotent) and the TimescaleDB policies; returns the versions applied now.

        chunk_interval : hypertable chunk width (TimescaleDB only)
        compress_after : compress chunks older than this (TimescaleDB only)
        raw_retention : drop raw samples older than this; None keeps them forever (TimescaleDB only)
        """
        applied: list[int] = []
        with self.engine.begin() as conn:
            if not conn.exec_driver_sql(
                "SELECT pg_catalog.has_schema_privilege('public', 'CREATE')"
            ).scalar():
                return self._check_migrated(conn)
            conn.exec_driver_sql("SELECT pg_catalog.pg_advisory_xact_lock(7240001)")
            available = conn.exec_driver_sql(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).first()
            if available:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
            self._dialect = None
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")}
            is_timescale = (
                conn.exec_driver_sql(
                    "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
                ).first()
                is not None
            )
            samples_ddl = (
                SAMPLES_TIMESCALE.format(chunk_interval=chunk_interval)
                if is_timescale
                else SAMPLES_PLAIN
            )
            rollup_ddl = ROLLUP_TIMESCALE if is_timescale else ROLLUP_PLAIN
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                ddl = sql.replace("{samples_ddl}", samples_ddl).replace("{rollup_ddl}", rollup_ddl)
                conn.exec_driver_sql(ddl)
                conn.exec_driver_sql(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                )
                applied.append(version)
            if is_timescale:
                self._timescale_policies(conn, compress_after, raw_retention)
            raw = conn.connection.driver_connection  # no parameters: `%` stays SQL's (format())
            raw.execute(SECURE_SCHEMA)
            raw.execute(ENSURE_PARTITIONS_FUNCTION)
            raw.execute(SIGN_ALERT_FUNCTION)
            self._dialect = "timescale" if is_timescale else "postgres"
        if applied:
            log.info("migrated %s to versions %s (%s)", redact(self.url), applied, self.dialect)
        return applied

    @staticmethod
    def _check_migrated(conn: sa.Connection) -> list[int]:
        """`migrate` for a role that may not create objects (the services' roles): nothing, when the
        owner has applied every migration; a named error otherwise (no DDL is tried)."""
        done = set()
        if conn.exec_driver_sql("SELECT to_regclass('public.schema_migrations')").scalar():
            done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")}
        pending = [version for version, _ in MIGRATIONS if version not in done]
        if pending:
            role = conn.exec_driver_sql("SELECT current_user").scalar()
            raise RuntimeError(
                f"database needs migrations {pending}, which role {role} may not apply:"
                " run `pvp migrate` as the schema owner"
            )
        return []

    @staticmethod
    def _timescale_policies(
        conn: sa.Connection, compress_after: str, raw_retention: str | None
    ) -> None:
        """Compression segmented by entity and ordered by time, the rollup refresh, optional retention."""
        conn.exec_driver_sql(
            "ALTER TABLE samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'entity_id',"
            " timescaledb.compress_orderby = 'ts DESC')"
        )
        conn.exec_driver_sql("SELECT remove_compression_policy('samples', if_exists => true)")
        conn.exec_driver_sql(
            "SELECT add_compression_policy('samples', %s::interval)", (compress_after,)
        )
        conn.exec_driver_sql(
            "SELECT add_continuous_aggregate_policy('samples_hourly', start_offset => INTERVAL '30 days',"
            " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => true)"
        )
        conn.exec_driver_sql("SELECT remove_retention_policy('samples', if_exists => true)")
        if raw_retention:
            conn.exec_driver_sql(
                "SELECT add_retention_policy('samples', %s::interval)", (raw_retention,)
            )

    def run_policies_now(self) -> list[str]:
        """Run the TimescaleDB policy jobs at once (where no background worker runs them); returns their names.

        Order: compression, then the rollup refresh, then retention.
        """
        if self.dialect != "timescale":
            return []
        order = {
            "policy_compression": 0,
            "policy_refresh_continuous_aggregate": 1,
            "policy_retention": 2,
        }
        with self.engine.connect() as conn:
            jobs = conn.exec_driver_sql(
                "SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE proc_name = ANY(%s)",
                (list(order),),
            ).all()
            conn.commit()
        ran = []
        for job_id, name in sorted(jobs, key=lambda j: order[j[1]]):
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"CALL run_job({int(job_id)})")
            ran.append(name)
        return ran

    def refresh_rollup(self, start: datetime, end: datetime) -> None:
        """Materialize the hourly rollup for [start, end) now (TimescaleDB; a view needs nothing).

        The ingest job calls it for the hours it touched, so late and back-filled data reach the
        continuous aggregate whatever the refresh policy's window.
        """
        if self.dialect != "timescale":
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(
                "CALL refresh_continuous_aggregate('samples_hourly', %s::timestamptz, %s::timestamptz)",
                (start, end),
            )

    def bucket_sql(self, width: str, column: str = "ts") -> str:
        """The time-bucketing expression of this dialect: `time_bucket` or `date_bin` (same UTC origin)."""
        if self.dialect == "timescale":
            return f"time_bucket(INTERVAL '{width}', {column})"
        return f"date_bin(INTERVAL '{width}', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"

    def sync_plant(self, plant: Plant) -> None:
        """Upsert sites and devices from the plant file."""
        with self.engine.begin() as conn:
            for site in plant.sites:
                conn.execute(
                    sa.text(
                        "INSERT INTO sites (id, name, latitude, longitude, altitude_m, timezone, tilt_deg, azimuth_deg)"
                        " VALUES (:id, :name, :latitude, :longitude, :altitude_m, :timezone, :tilt_deg, :azimuth_deg)"
                        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, latitude = EXCLUDED.latitude,"
                        " longitude = EXCLUDED.longitude, altitude_m = EXCLUDED.altitude_m,"
                        " timezone = EXCLUDED.timezone, tilt_deg = EXCLUDED.tilt_deg,"
                        " azimuth_deg = EXCLUDED.azimuth_deg, updated_at = now()"
                    ),
                    site.model_dump(exclude={"devices"}),
                )
                for device in site.devices:
                    conn.execute(
                        sa.text(
                            "INSERT INTO devices (site_id, id, kind, integration, p_dc_kw, p_ac_kw, gamma_pdc_per_c)"
                            " VALUES (:site_id, :id, :kind, :integration, :p_dc_kw, :p_ac_kw, :gamma_pdc_per_c)"
                            " ON CONFLICT (site_id, id) DO UPDATE SET kind = EXCLUDED.kind,"
                            " integration = EXCLUDED.integration, p_dc_kw = EXCLUDED.p_dc_kw,"
                            " p_ac_kw = EXCLUDED.p_ac_kw, gamma_pdc_per_c = EXCLUDED.gamma_pdc_per_c"
                        ),
                        {"site_id": site.id, **device.model_dump(exclude={"config", "name"})},
                    )

    # -- ingest -----------------------------------------------------------------------------------
    def _ensure_partitions(self, conn: sa.Connection, first: datetime, last: datetime) -> None:
        """Monthly range partitions of `samples` covering [first, last] (plain PostgreSQL only), made by
        the owner's SECURITY DEFINER function: the ingest role creates no object itself."""
        conn.exec_driver_sql("SELECT public.pvp_ensure_samples_partitions(%s, %s)", (first, last))

    def ingest_segment(self, segment: Segment, neighbour_s: float = 900.0) -> IngestResult:
        """Load one landing segment exactly once: COPY to staging, insert new samples, record the ledger.

        A segment already in `ingest_ledger` is skipped; a sample already in `samples` is not inserted
        again (re-delivery is harmless). The hours it touched are recorded in `telemetry_changes`; a sample
        within `neighbour_s` of an hour edge touches the hour across the edge too (the KPIs interpolate
        across it, so that hour's values change as well).
        """
        with self.engine.begin() as conn:
            if conn.exec_driver_sql(
                "SELECT 1 FROM ingest_ledger WHERE segment_id = %s", (segment.segment_id,)
            ).first():
                return IngestResult(segment.segment_id, segment.rows, 0, 0, (), already_loaded=True)
            conn.exec_driver_sql(
                "CREATE TEMP TABLE staging (entity text, ts timestamptz, value double precision) ON COMMIT DROP"
            )
            self._load_staging(conn, segment.csv_body)
            self._register_entities(conn, segment.meta.get("entities", {}))
            first, last = conn.exec_driver_sql("SELECT min(ts), max(ts) FROM staging").one()
            inserted = 0
            hours: tuple[datetime, ...] = ()
            if first is not None:
                if self.dialect == "postgres":
                    self._ensure_partitions(conn, first, last)
                inserted = conn.exec_driver_sql(
                    "INSERT INTO samples (entity_id, ts, value)"
                    " SELECT DISTINCT ON (e.id, s.ts) e.id, s.ts, s.value FROM staging s JOIN entities e ON e.key = s.entity"
                    " ORDER BY e.id, s.ts ON CONFLICT (entity_id, ts) DO NOTHING"
                ).rowcount
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
            quarantined = self._quarantine(conn, segment)
            conn.exec_driver_sql(
                "INSERT INTO ingest_ledger (segment_id, rows, inserted, quarantined) VALUES (%s, %s, %s, %s)",
                (segment.segment_id, segment.rows, inserted, quarantined),
            )
        return IngestResult(segment.segment_id, segment.rows, inserted, quarantined, hours)

    def _load_staging(self, conn: sa.Connection, csv_body: str) -> None:
        """COPY the segment's CSV into staging, or insert it with unnest arrays where COPY is not possible."""
        if self.use_copy:
            raw = conn.connection.driver_connection
            with (
                raw.cursor() as cur,
                cur.copy("COPY staging (entity, ts, value) FROM STDIN (FORMAT csv)") as copy,
            ):
                copy.write(csv_body)
            return
        entities, stamps, values = [], [], []
        for line in csv_body.splitlines():
            entity, ts, value = line.split(",")
            entities.append(entity)
            stamps.append(ts)
            values.append(float(value))
        for i in range(0, len(values), UNNEST_CHUNK_ROWS):
            conn.exec_driver_sql(
                "INSERT INTO staging (entity, ts, value)"
                " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::double precision[])",
                (
                    entities[i : i + UNNEST_CHUNK_ROWS],
                    stamps[i : i + UNNEST_CHUNK_ROWS],
                    values[i : i + UNNEST_CHUNK_ROWS],
                ),
            )

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
                    _text(q["source"]),
                    base64.b64decode(q["payload_b64"]),  # bytea: any bytes, verbatim
                    _text(q["reason"]),
                    segment.segment_id,
                ),
            )
        return len(records)

    def reject_segment(self, segment_id: str, reason: str, head: bytes) -> None:
        """Record a landing segment that cannot be loaded: one `quarantine` row (its first 64 KiB and
        the reason; once per segment, so a retried run adds none) and the open `landing_rejected`
        alert, whose count grows with each rejected segment."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            added = conn.exec_driver_sql(
                "INSERT INTO quarantine (received_at, source, payload, reason, segment_id)"
                " SELECT %s, 'landing', %s, %s, %s WHERE NOT EXISTS"
                " (SELECT 1 FROM quarantine WHERE source = 'landing' AND segment_id = %s)",
                (now, head[:65536], _text(f"segment rejected: {reason}"), segment_id, segment_id),
            ).rowcount
            if not added:
                return
            conn.exec_driver_sql(
                "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
                " last_seen_at, message, context) VALUES ('landing_rejected:*:landing', 'landing_rejected',"
                " 'HIGH', '*', 'landing', 'open', %s, %s, %s, '{}')"
                " ON CONFLICT (fingerprint) WHERE state <> 'resolved' DO UPDATE SET"
                " count = alerts.count + 1, last_seen_at = EXCLUDED.last_seen_at, message = EXCLUDED.message",
                (now, now, _text(f"landing segment {segment_id} rejected: {reason}"[:2000])),
            )

    # -- reads ------------------------------------------------------------------------------------
    def query_df(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame."""
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params or {}).scalar()

    def _entities(self, metrics: list[str], site_id: str | None) -> pd.DataFrame:
        return self.query_df(
            "SELECT id, site_id, device_id, metric FROM entities WHERE metric = ANY(:metrics)"
            + (" AND site_id = :site_id" if site_id else ""),
            {"metrics": metrics, "site_id": site_id},
        )

    def samples(
        self, start: datetime, end: datetime, metrics: list[str], site_id: str | None = None
    ) -> pd.DataFrame:
        """Samples of the given metrics in [start, end): columns site_id, device_id, metric, ts, value,
        ordered by entity and time. For the KPI maths `sample_set` is faster (no row frame)."""
        columns = ["site_id", "device_id", "metric", "ts", "value"]
        if self.use_copy:
            return self.sample_set(start, end, metrics, site_id).to_frame()
        entities = self._entities(metrics, site_id)
        if entities.empty:
            return pd.DataFrame(columns=columns)
        raw_df = self.query_df(
            "SELECT entity_id, ts, value FROM samples WHERE entity_id = ANY(:ids) AND ts >= :start AND ts < :end"
            " ORDER BY entity_id, ts",
            {"ids": [int(i) for i in entities["id"]], "start": start, "end": end},
        )
        if raw_df.empty:
            return pd.DataFrame(columns=columns)
        raw_df["ts"] = pd.to_datetime(raw_df["ts"], utc=True)
        raw_df["value"] = raw_df["value"].astype(float)
        df = raw_df.merge(entities.rename(columns={"id": "entity_id"}), on="entity_id")
        return df.loc[:, columns]

    def sample_set(
        self, start: datetime, end: datetime, metrics: list[str], site_id: str | None = None
    ) -> SampleSet:
        """Samples of the given metrics in [start, end) as a SampleSet: per entity two numpy arrays, read
        without a Python object per sample (what the KPI assets use for a week of a fleet)."""
        if not self.use_copy:
            return SampleSet.from_frame(self.samples(start, end, metrics, site_id))
        entities = self._entities(metrics, site_id)
        if entities.empty:
            return SampleSet({})
        names = {
            int(r.id): (r.site_id, r.device_id, r.metric) for r in entities.itertuples(index=False)
        }
        per_entity = self._sample_arrays(list(names), start, end)
        return SampleSet({names[i]: arrays for i, arrays in per_entity.items()})

    def _sample_arrays(
        self, ids: list[int], start: datetime, end: datetime
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """entity id -> (times [µs since the epoch], values), not necessarily in time order.

        One row per entity whose samples arrive as one bytea of 16-byte records (the binary send form
        of the timestamptz and the float8, concatenated on the server) that numpy reads in place: a
        week of a fleet is a few large messages and no Python object per sample. Each record carries
        its own time and value, so the unordered aggregate cannot pair them wrongly."""
        # the ids as a constant: PostgreSQL then tests membership with a hash, not a scan of the
        # list for each row (~25 % of this query for 40 entities)
        id_list = "{" + ",".join(str(int(i)) for i in ids) + "}"
        rows = self._binary_rows(
            "SELECT entity_id, string_agg(timestamptz_send(ts) || float8send(value), ''::bytea)"
            f" FROM samples WHERE entity_id = ANY('{id_list}'::int4[])"
            " AND ts >= %(start)s AND ts < %(end)s GROUP BY entity_id",
            {"start": start, "end": end},
        )
        out = {}
        for entity_id, packed in rows:
            records = np.frombuffer(packed, SAMPLE_RECORD)
            out[int(entity_id)] = (records["ts"] + PG_EPOCH_US, records["value"].astype(float))
        return out

    def _binary_rows(self, query: str, params: dict[str, Any]) -> list[tuple]:
        """Rows of a read query over a binary cursor: float8[], int4[] and timestamptz[] columns as
        numpy arrays (see `_register_array_loaders`). Not prepared: each call gets a plan for its
        own parameters."""
        with self.engine.connect() as conn:
            with conn.connection.driver_connection.cursor(binary=True) as cur:  # noqa: SIM117
                _register_array_loaders(cur)
                cur.execute(query, params, prepare=False)
                rows = cur.fetchall()
            conn.rollback()
        return rows

    def kpi_rollup(
        self,
        start: datetime,
        end: datetime,
        timezones: dict[str, str],
        grain: str,
        site_id: str | None = None,
    ) -> pd.DataFrame:
        """Daily, monthly or yearly KPI rows from `kpi_hourly` summed by PostgreSQL in each site's local
        time: the same rows as `periods.aggregate(self.kpis(...))`, without reading every hour out.

        timezones : site id -> IANA time zone (sites not listed are left out)
        """
        unit = {"daily": "day", "monthly": "month", "yearly": "year"}.get(grain)
        if unit is None:
            raise ValueError(f"unknown grain {grain!r}; use daily, monthly or yearly")
        sums = ", ".join(
            [f"sum(h.{c}) AS {c}" for c in ADDITIVE if c != "samples"]
            + [
                "max(h.p_dc_kw) AS p_dc_kw",
                "max(h.p_ac_kw) AS p_ac_kw",
                "sum(h.samples) AS samples",
            ]
        )
        sites = list(timezones if site_id is None else [site_id])
        summed = self.query_df(
            f"SELECT h.site_id, h.device_id, date_trunc('{unit}', h.period_start AT TIME ZONE z.tz)"
            f" AT TIME ZONE z.tz AS period_start, {sums}"
            " FROM kpi_hourly h JOIN unnest(CAST(:sites AS text[]), CAST(:zones AS text[])) AS"
            " z(site_id, tz) ON z.site_id = h.site_id"
            " WHERE h.period_start >= :start AND h.period_start < :end"
            " GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
            {"sites": sites, "zones": [timezones[s] for s in sites], "start": start, "end": end},
        )
        if summed.empty:
            return summed
        summed["period_start"] = pd.to_datetime(summed["period_start"], utc=True)
        for column in summed.columns[3:]:
            summed[column] = summed[column].astype(float)
        summed["samples"] = summed["samples"].astype(int)
        return finish_periods(summed, timezones, grain)

    def _kpis_as_arrays(self, table: str, params: dict[str, Any]) -> pd.DataFrame:
        """`kpis` with one row per (site, device) whose columns arrive as binary arrays (NULL as NaN):
        a year of a fleet's hours is a few hundred messages, not a Python object per value."""
        where = (
            "period_start >= %(start)s AND period_start < %(end)s"
            + (" AND site_id = %(site_id)s" if params["site_id"] else "")
            + (" AND device_id = %(device_id)s" if params["device_id"] else "")
        )
        aggregates = ", ".join(
            ["array_agg(period_start)", "array_agg(samples)", "array_agg(computed_at)"]
            + [f"array_agg(coalesce({c}, 'NaN'))" for c in KPI_VALUE_COLUMNS]
        )
        # aggregated from time-ordered input: one sort, not one per column (checked below)
        groups = self._binary_rows(
            f"SELECT site_id, device_id, {aggregates} FROM (SELECT * FROM {table}"
            f" WHERE {where} ORDER BY site_id, device_id, period_start) o"
            " GROUP BY site_id, device_id",
            params,
        )
        for i, g in enumerate(groups):
            if np.any(np.diff(g[2]) <= 0):  # not in time order after all: order every column
                order = np.argsort(g[2], kind="stable")
                groups[i] = (*g[:2], *(a[order] for a in g[2:]))
        columns = [
            "site_id",
            "device_id",
            "period_start",
            *KPI_VALUE_COLUMNS,
            "samples",
            "computed_at",
        ]
        if not groups:
            return pd.DataFrame(columns=columns)
        sizes = [len(g[2]) for g in groups]
        stamps = lambda i: pd.DatetimeIndex(  # noqa: E731
            np.concatenate([g[i] for g in groups]).astype("datetime64[us]")
        ).tz_localize("UTC")
        frame = pd.DataFrame(
            {
                "site_id": np.repeat([g[0] for g in groups], sizes).astype(object),
                "device_id": np.repeat([g[1] for g in groups], sizes).astype(object),
                "period_start": stamps(2),
                **{
                    c: np.concatenate([g[5 + i] for g in groups])
                    for i, c in enumerate(KPI_VALUE_COLUMNS)
                },
                "samples": np.concatenate([g[3] for g in groups]),
                "computed_at": stamps(4),
            }
        )
        return frame.sort_values(["period_start", "site_id", "device_id"], ignore_index=True)

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
        rollup = (
            "samples_hourly"
            if self.dialect == "timescale"
            else "(" + ROLLUP_PLAIN_SELECT.format(where="WHERE ts >= :start AND ts < :end") + ")"
        )  # hour-aligned [start, end): the ts condition selects exactly those buckets
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
        df = self.query_df(*self.hourly_rollup_query(start, end, metrics, site_id, metric_like))
        if not df.empty:
            df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
            for col in ("avg_value", "min_value", "max_value", "first_value", "last_value"):
                df[col] = df[col].astype(float)
            df["n"] = df["n"].astype(int)
        return df

    def bucketed_mean(
        self, start: datetime, end: datetime, width: str, metrics: list[str]
    ) -> pd.DataFrame:
        """Mean value per entity and bucket of any width, bucketed by the dialect's own function."""
        sql = (
            f"SELECT e.site_id, e.device_id, e.metric, {self.bucket_sql(width, 's.ts')} AS bucket,"
            " avg(s.value) AS avg_value, count(*) AS n FROM samples s JOIN entities e ON e.id = s.entity_id"
            " WHERE s.ts >= :start AND s.ts < :end AND e.metric = ANY(:metrics)"
            " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        df = self.query_df(sql, {"start": start, "end": end, "metrics": metrics})
        if not df.empty:
            df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
            df["avg_value"] = df["avg_value"].astype(float)
        return df

    # -- KPI tables -------------------------------------------------------------------------------
    def replace_kpis(
        self,
        table: str,
        start: datetime,
        end: datetime,
        rows: pd.DataFrame,
        site_ids: list[str] | None = None,
        quality: list[dict] | None = None,
    ) -> int:
        """Idempotent write of one window of a KPI table: delete [start, end) (of the given sites), insert rows;
        with `quality`, the check outcomes of the same hours in the same transaction (`replace_quality`).

        Only the table's own columns are written; a column the table lacks is an error, not a silent drop.
        """
        if table not in KPI_TABLES:
            raise ValueError(f"{table!r} is not a KPI table ({', '.join(KPI_TABLES)})")
        allowed = {"site_id", "device_id", "period_start", "samples", *KPI_VALUE_COLUMNS}
        unknown = [c for c in rows.columns if c not in allowed]
        if unknown:
            raise ValueError(f"{table} has no columns {unknown}")
        columns = [c for c in rows.columns if IDENTIFIER.match(c)]
        where = "period_start >= :s AND period_start < :e" + (
            " AND site_id = ANY(:sites)" if site_ids else ""
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE {where}"),
                {"s": start, "e": end, "sites": site_ids},
            )
            if quality is not None:
                self.write_quality(conn, start, end, quality)
            if rows.empty:
                return 0
            if self.use_copy:
                _copy_kpi_rows(conn.connection.driver_connection, table, rows, columns)
            else:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {table} ({', '.join(columns)})"
                        f" VALUES ({', '.join(f':{c}' for c in columns)})"
                    ),
                    _records(rows.loc[:, columns]),
                )
        return len(rows)

    def kpis(
        self,
        table: str,
        start: datetime,
        end: datetime,
        site_id: str | None = None,
        device_id: str | None = None,
    ) -> pd.DataFrame:
        """Rows of a KPI table with period_start in [start, end)."""
        if table not in KPI_TABLES:
            raise ValueError(f"{table!r} is not a KPI table ({', '.join(KPI_TABLES)})")
        params = {"start": start, "end": end, "site_id": site_id, "device_id": device_id}
        if self.use_copy:
            return self._kpis_as_arrays(table, params)
        sql = (
            f"SELECT * FROM {table} WHERE period_start >= :start AND period_start < :end"
            + (" AND site_id = :site_id" if site_id else "")
            + (" AND device_id = :device_id" if device_id else "")
            + " ORDER BY period_start, site_id, device_id"
        )
        df = self.query_df(sql, params)
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
            for c in KPI_VALUE_COLUMNS:
                df[c] = df[c].astype(float)
        return df

    def replace_quality(self, start: datetime, end: datetime, outcomes: list[dict]) -> None:
        """Idempotent write of check outcomes for the hours in [start, end): dicts with period_start,
        site_id, check_name, passed, severity, detail, metadata."""
        with self.engine.begin() as conn:
            self.write_quality(conn, start, end, outcomes)

    @staticmethod
    def write_quality(
        conn: sa.Connection, start: datetime, end: datetime, outcomes: list[dict]
    ) -> None:
        """`replace_quality` inside the caller's transaction (with the KPI rows of the same hours)."""
        conn.execute(
            sa.text("DELETE FROM kpi_quality WHERE period_start >= :s AND period_start < :e"),
            {"s": start, "e": end},
        )
        if outcomes:
            conn.execute(
                sa.text(
                    "INSERT INTO kpi_quality (period_start, site_id, check_name, passed, severity, detail, metadata)"
                    " VALUES (:period_start, :site_id, :check_name, :passed, :severity, :detail,"
                    " CAST(:metadata AS jsonb))"
                ),
                [
                    {**o, "metadata": json.dumps(o.get("metadata", {}), default=str)}
                    for o in outcomes
                ],
            )

    def blocking_failures(
        self, start: datetime, end: datetime, site_id: str | None = None
    ) -> pd.DataFrame:
        """Failed ERROR checks of the hours in [start, end) - of one site (and the fleet-wide outcomes
        older versions wrote as site '*') or of every site: what keeps those hours out of the rollups."""
        df = self.query_df(
            "SELECT period_start, site_id, check_name, detail FROM kpi_quality"
            " WHERE period_start >= :s AND period_start < :e AND NOT passed AND severity = 'ERROR'"
            + (" AND site_id IN (:site, '*')" if site_id else "")
            + " ORDER BY period_start, site_id, check_name",
            {"s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def kpi_hours(self, site_id: str, start: datetime, end: datetime) -> list[datetime]:
        """The UTC hours in [start, end) that have hourly KPI rows for the site."""
        with self.engine.connect() as conn:
            return [
                row[0]
                for row in conn.execute(
                    sa.text(
                        "SELECT DISTINCT period_start FROM kpi_hourly WHERE site_id = :site"
                        " AND period_start >= :s AND period_start < :e ORDER BY 1"
                    ),
                    {"site": site_id, "s": start, "e": end},
                )
            ]

    def replace_coverage(
        self,
        grain: str,
        site_id: str,
        period_start: datetime,
        hours_expected: int,
        hours_present: int,
        missing: list[datetime],
    ) -> None:
        """How many hours a daily/monthly/yearly row was computed from, and which were missing."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO kpi_coverage (grain, site_id, period_start, hours_expected, hours_present, missing)"
                    " VALUES (:g, :site, :p, :e, :h, CAST(:m AS jsonb))"
                    " ON CONFLICT (grain, site_id, period_start) DO UPDATE SET"
                    " hours_expected = EXCLUDED.hours_expected, hours_present = EXCLUDED.hours_present,"
                    " missing = EXCLUDED.missing, computed_at = now()"
                ),
                {
                    "g": grain, "site": site_id, "p": period_start, "e": hours_expected,
                    "h": hours_present, "m": json.dumps([m.isoformat() for m in missing[:100]]),
                },
            )  # fmt: skip

    def coverage(
        self, grain: str, start: datetime, end: datetime, site_id: str | None = None
    ) -> pd.DataFrame:
        """kpi_coverage rows of a grain with period_start in [start, end)."""
        df = self.query_df(
            "SELECT site_id, period_start, hours_expected, hours_present, missing FROM kpi_coverage"
            " WHERE grain = :g AND period_start >= :s AND period_start < :e"
            + (" AND site_id = :site" if site_id else "")
            + " ORDER BY site_id, period_start",
            {"g": grain, "s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def unreported_hours(self) -> list[tuple[datetime, datetime]]:
        """Telemetry hours loaded but not yet reported to Dagster: (hour, changed_at), oldest first."""
        with self.engine.connect() as conn:
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
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE telemetry_changes t SET reported_at = now()"
                " FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS c(hour, changed_at)"
                " WHERE t.hour = c.hour AND t.changed_at = c.changed_at",
                ([h for h, _ in changes], [c for _, c in changes]),
            )

    def last_reading_per_device(self) -> dict[tuple[str, str], datetime]:
        """Newest sample time of each (site, device), from the last day of samples (index scans)."""
        df = self.query_df(
            "SELECT e.site_id, e.device_id, max(s.ts) AS ts FROM samples s"
            " JOIN entities e ON e.id = s.entity_id WHERE s.ts > now() - interval '1 day'"
            " GROUP BY e.site_id, e.device_id"
        )
        return {
            (r.site_id, r.device_id): pd.Timestamp(r.ts).to_pydatetime() for r in df.itertuples()
        }

    def site_t_ref_nrel(self) -> dict[str, float]:
        """Stored typical-year reference cell temperature per site [°C] (NREL weather-corrected PR)."""
        df = self.query_df("SELECT id, t_ref_nrel_c FROM sites WHERE t_ref_nrel_c IS NOT NULL")
        return {row.id: float(row.t_ref_nrel_c) for row in df.itertuples()}

    def set_site_t_ref_nrel(self, site_id: str, t_ref_c: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE sites SET t_ref_nrel_c = :t WHERE id = :id"),
                {"t": t_ref_c, "id": site_id},
            )

    def kpi_hourly(
        self, start: datetime, end: datetime, site_id: str | None = None
    ) -> pd.DataFrame:
        return self.kpis("kpi_hourly", start, end, site_id)


def _text(value: str) -> str:
    """Text as PostgreSQL stores it: a NUL byte (which `text` cannot hold) written as the escape `\\x00`,
    so one odd byte from a device can never fail its whole segment."""
    return value.replace("\x00", "\\x00")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as dicts of plain Python values, NaN as None (for executemany)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                record[key] = value.item()
    return records
