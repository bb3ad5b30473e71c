"""One PostgreSQL database of the platform: its engine, its dialect and transfer (chosen once) and
a store per concern. Only storage speaks SQL; each store holds one concern's tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from pv_platform.storage.codecs import register_array_loaders
from pv_platform.storage.dialect import Dialect, detect_dialect
from pv_platform.storage.kpis import KpiStore
from pv_platform.storage.losses import LossStore
from pv_platform.storage.migrations import MigrationStore
from pv_platform.storage.plant import PlantStore
from pv_platform.storage.reports import ReportStore
from pv_platform.storage.telemetry import TelemetryStore
from pv_platform.storage.transfer import Binary, Transfer
from pv_platform.storage.urls import sqlalchemy_url


class Database:
    """Telemetry storage on PostgreSQL, TimescaleDB when the extension is there.

    migrations : schema versions, Timescale policies, login roles (`MigrationStore`)
    plant : sites and devices of the plant file (`PlantStore`)
    telemetry : ingest of landing segments, samples, hourly rollups (`TelemetryStore`)
    kpis : KPI tables, their quality outcomes and coverage (`KpiStore`)
    reports : monthly and yearly owner reports, PDF and HTML (`ReportStore`)
    losses : soiling, degradation and the loss waterfall (`LossStore`)
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        transfer: Transfer = Binary(),  # noqa: B008 (frozen, stateless)
    ) -> None:
        """`transfer=Rows()` loads and reads row by row instead of COPY and binary arrays, for servers
        that cannot COPY FROM STDIN (the WASM TimescaleDB build used in the tests)."""
        self.url = url
        self.transfer = transfer
        self.engine = sa.create_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
        )
        self._dialect: Dialect | None = None
        self.migrations = MigrationStore(self)
        self.plant = PlantStore(self)
        self.telemetry = TelemetryStore(self)
        self.kpis = KpiStore(self)
        self.reports = ReportStore(self.engine)
        self.losses = LossStore(self)

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> Dialect:
        """`Timescale()` when the timescaledb extension is installed in this database, else
        `Postgres()`: detected on first use, and again by `migrations.migrate`."""
        if self._dialect is None:
            with self.engine.connect() as conn:
                self._dialect = detect_dialect(conn)
        return self._dialect

    @dialect.setter
    def dialect(self, dialect: Dialect | None) -> None:
        self._dialect = dialect

    def query_df(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame."""
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def binary_rows(self, query: str, params: dict[str, Any]) -> list[tuple]:
        """Rows of a read query over a binary cursor: float8[], int4[] and timestamptz[] columns as
        numpy arrays (see `codecs.register_array_loaders`). Not prepared: each call gets a plan for
        its own parameters."""
        with self.engine.connect() as conn:
            with conn.connection.driver_connection.cursor(binary=True) as cur:  # noqa: SIM117
                register_array_loaders(cur)
                cur.execute(query, params, prepare=False)
                rows = cur.fetchall()
            conn.rollback()
        return rows
