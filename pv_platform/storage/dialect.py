"""What differs between TimescaleDB and plain PostgreSQL, in one object chosen once per database:
the samples table and its hourly rollup, partitions, time buckets and the Timescale policies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from pv_platform.storage.schema import (
    ROLLUP_PLAIN,
    ROLLUP_PLAIN_SELECT,
    ROLLUP_TIMESCALE,
    SAMPLES_PLAIN,
    SAMPLES_TIMESCALE,
)


@dataclass(frozen=True)
class Postgres:
    """Plain PostgreSQL: `samples` range-partitioned by month, `samples_hourly` a view, `date_bin`."""

    name: str = "postgres"

    def samples_ddl(self, chunk_interval: str) -> str:
        return SAMPLES_PLAIN

    def rollup_ddl(self) -> str:
        return ROLLUP_PLAIN

    def install_policies(
        self, conn: sa.Connection, compress_after: str, raw_retention: str | None
    ) -> None:
        """No background policies on plain PostgreSQL."""

    def ensure_partitions(self, conn: sa.Connection, first: datetime, last: datetime) -> None:
        """Monthly range partitions of `samples` covering [first, last], made by the owner's SECURITY
        DEFINER function: the ingest role creates no object itself."""
        conn.exec_driver_sql("SELECT public.pvp_ensure_samples_partitions(%s, %s)", (first, last))

    def refresh_rollup(self, engine: sa.Engine, start: datetime, end: datetime) -> None:
        """Nothing to do: the rollup is a view."""

    def rollup_source(self) -> str:
        """`samples_hourly` as a FROM item; on plain PostgreSQL the view's query with `ts` filtered by
        :start and :end, so only the partitions of [start, end) are read (hour-aligned: the ts condition
        selects exactly those buckets)."""
        return "(" + ROLLUP_PLAIN_SELECT.format(where="WHERE ts >= :start AND ts < :end") + ")"

    def bucket_sql(self, width: str, column: str = "ts") -> str:
        """The time-bucketing expression of this dialect (same UTC origin as `time_bucket`)."""
        return f"date_bin(INTERVAL '{width}', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


@dataclass(frozen=True)
class Timescale:
    """TimescaleDB: `samples` a compressed hypertable, `samples_hourly` a continuous aggregate."""

    name: str = "timescale"

    def samples_ddl(self, chunk_interval: str) -> str:
        return SAMPLES_TIMESCALE.format(chunk_interval=chunk_interval)

    def rollup_ddl(self) -> str:
        return ROLLUP_TIMESCALE

    def install_policies(
        self, conn: sa.Connection, compress_after: str, raw_retention: str | None
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

    def ensure_partitions(self, conn: sa.Connection, first: datetime, last: datetime) -> None:
        """Nothing to do: the hypertable makes its own chunks."""

    def refresh_rollup(self, engine: sa.Engine, start: datetime, end: datetime) -> None:
        """Materialize the continuous aggregate for [start, end) now."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(
                "CALL refresh_continuous_aggregate('samples_hourly', %s::timestamptz, %s::timestamptz)",
                (start, end),
            )

    def rollup_source(self) -> str:
        return "samples_hourly"

    def bucket_sql(self, width: str, column: str = "ts") -> str:
        return f"time_bucket(INTERVAL '{width}', {column})"


Dialect = Postgres | Timescale  # chosen once per database by `detect_dialect`


def detect_dialect(conn: sa.Connection) -> Dialect:
    """`Timescale()` when the timescaledb extension is installed in this database, else `Postgres()`."""
    found = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").first()
    return Timescale() if found else Postgres()
