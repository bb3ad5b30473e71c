"""How rows travel between Python and the server, chosen once per database: binary COPY in and binary
arrays out (`Binary`, the default), or one row at a time (`Rows`, for servers that cannot COPY FROM
STDIN, such as the WASM TimescaleDB build used in the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pv_platform.kpi.samples import SampleSet
from pv_platform.storage.codecs import (
    kpi_copy_stream,
    kpi_frame,
    records,
    sample_copy_stream,
    sample_records,
)
from pv_platform.storage.schema import KPI_VALUE_COLUMNS

if TYPE_CHECKING:
    from pv_platform.storage.database import Database

UNNEST_CHUNK_ROWS = (
    500  # rows per statement without COPY: the WASM server crashes on a ~140 kB message
)
KPI_KEY = ["site_id", "device_id", "period_start"]


def _kpi_where(params: dict[str, Any], style: str) -> str:
    """The period (and site, device) condition of a KPI read, in `:name` or `%(name)s` style."""
    p = (lambda n: f":{n}") if style == "named" else (lambda n: f"%({n})s")
    return (
        f"period_start >= {p('start')} AND period_start < {p('end')}"
        + (f" AND site_id = {p('site_id')}" if params["site_id"] else "")
        + (f" AND device_id = {p('device_id')}" if params["device_id"] else "")
    )


@dataclass(frozen=True)
class Binary:
    """Binary COPY for writes, binary arrays for reads: no Python object per value either way."""

    copies: bool = True  # loads samples as fast as a plain COPY

    def load_samples(
        self,
        conn: sa.Connection,
        table: str,
        entity_ids: np.ndarray,
        ts_us: np.ndarray,
        values: np.ndarray,
    ) -> None:
        """Rows into `table` (entity_id, ts, value) with one binary COPY built by numpy."""
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} (entity_id, ts, value) FROM STDIN (FORMAT binary)") as copy,
        ):
            copy.write(sample_copy_stream(entity_ids, ts_us, values))

    def write_kpis(self, conn: sa.Connection, table: str, rows: pd.DataFrame, columns: list[str]):
        """KPI rows with one binary COPY (see `codecs.kpi_copy_stream`)."""
        count = ["samples"] if "samples" in columns else []
        columns = KPI_KEY + [c for c in columns if c not in (*KPI_KEY, "samples")] + count
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)") as copy,
        ):
            copy.write(kpi_copy_stream(rows, columns))

    def read_kpis(self, db: Database, table: str, params: dict[str, Any]) -> pd.DataFrame:
        """One row per (site, device) whose columns arrive as binary arrays (NULL as NaN): a year of a
        fleet's hours is a few hundred messages, not a Python object per value."""
        aggregates = ", ".join(
            ["array_agg(period_start)", "array_agg(samples)", "array_agg(computed_at)"]
            + [f"array_agg(coalesce({c}, 'NaN'))" for c in KPI_VALUE_COLUMNS]
        )
        # aggregated from time-ordered input: one sort, not one per column (`kpi_frame` checks it)
        groups = db.binary_rows(
            f"SELECT site_id, device_id, {aggregates} FROM (SELECT * FROM {table}"
            f" WHERE {_kpi_where(params, 'pyformat')} ORDER BY site_id, device_id, period_start) o"
            " GROUP BY site_id, device_id",
            params,
        )
        return kpi_frame(groups, KPI_VALUE_COLUMNS)

    def read_samples(
        self, db: Database, names: dict[int, tuple], start: datetime, end: datetime
    ) -> SampleSet:
        """Samples of the entities `names` (id -> key) in [start, end).

        One row per entity whose samples arrive as one bytea of 16-byte records (the binary send form
        of the timestamptz and the float8, concatenated on the server) that numpy reads in place: a
        week of a fleet is a few large messages and no Python object per sample. Each record carries
        its own time and value, so the unordered aggregate cannot pair them wrongly."""
        # the ids as a constant: PostgreSQL then tests membership with a hash, not a scan of the
        # list for each row (~25 % of this query for 40 entities)
        id_list = "{" + ",".join(str(int(i)) for i in names) + "}"
        rows = db.binary_rows(
            "SELECT entity_id, string_agg(timestamptz_send(ts) || float8send(value), ''::bytea)"
            f" FROM samples WHERE entity_id = ANY('{id_list}'::int4[])"
            " AND ts >= %(start)s AND ts < %(end)s GROUP BY entity_id",
            {"start": start, "end": end},
        )
        return SampleSet({names[int(i)]: sample_records(packed) for i, packed in rows})


@dataclass(frozen=True)
class Rows:
    """Plain INSERTs and row reads, for servers that cannot COPY FROM STDIN."""

    copies: bool = False

    def load_staging(self, conn: sa.Connection, csv_body: str) -> None:
        """A segment's CSV rows into the `staging` table (entity key, ts, value) with unnest arrays of
        text, a chunk per statement (the WASM server of the tests hangs on other array parameters)."""
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

    def write_kpis(self, conn: sa.Connection, table: str, rows: pd.DataFrame, columns: list[str]):
        """KPI rows as multi-row INSERTs, a chunk per statement (psycopg's executemany pipelines its
        statements, and the WASM server of the tests lost sync in pipeline mode under load: "cannot
        exit pipeline mode while busy"). 20 rows a statement: one of 100 rows (~2,000 parameters)
        left the WASM server hanging on this machine every time (test_timescale: 300 s timeouts)."""
        values = records(rows.loc[:, columns])
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        step = UNNEST_CHUNK_ROWS // 25  # ~20 values a row: 400 values per statement
        for i in range(0, len(values), step):
            chunk = values[i : i + step]
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * len(chunk))}",
                tuple(v for r in chunk for v in (r[c] for c in columns)),
            )

    def read_kpis(self, db: Database, table: str, params: dict[str, Any]) -> pd.DataFrame:
        """KPI rows one row object each."""
        df = db.query_df(
            f"SELECT * FROM {table} WHERE {_kpi_where(params, 'named')}"
            " ORDER BY period_start, site_id, device_id",
            params,
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
            for c in KPI_VALUE_COLUMNS:
                df[c] = df[c].astype(float)
        return df

    def read_samples(
        self, db: Database, names: dict[int, tuple], start: datetime, end: datetime
    ) -> SampleSet:
        """Samples of the entities `names` (id -> key) in [start, end), one row object each."""
        raw_df = db.query_df(
            "SELECT entity_id, ts, value FROM samples WHERE entity_id = ANY(:ids) AND ts >= :start AND ts < :end"
            " ORDER BY entity_id, ts",
            {"ids": [int(i) for i in names], "start": start, "end": end},
        )
        if raw_df.empty:
            return SampleSet({})
        keys = pd.DataFrame(
            [(i, *key) for i, key in names.items()],
            columns=["entity_id", "site_id", "device_id", "metric"],
        )
        raw_df["ts"] = pd.to_datetime(raw_df["ts"], utc=True)
        raw_df["value"] = raw_df["value"].astype(float)
        df = raw_df.merge(keys, on="entity_id")
        return SampleSet.from_frame(df.loc[:, ["site_id", "device_id", "metric", "ts", "value"]])


Transfer = Binary | Rows  # chosen once per database
