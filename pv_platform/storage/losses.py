"""Loss analytics tables: `loss_daily` (soiling ratio, performance index and the loss waterfall per device
and site-local day), `degradation` (the year-on-year rate per device) and `quality_findings` (the
site-level detectors' latest finding per device)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from pv_platform.storage.codecs import records
from pv_platform.storage.schema import DEGRADATION_COLUMNS, LOSS_DAILY_COLUMNS

if TYPE_CHECKING:
    from pv_platform.storage.database import Database

KEY = ["site_id", "device_id", "period_start"]


class LossStore:
    """`loss_daily` and `degradation`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def replace_daily(self, site_id: str, rows: pd.DataFrame) -> int:
        """Idempotent write of one site's analytics: its days are replaced by `rows` (every day of the
        site, as soiling and degradation are fitted over its whole history)."""
        unknown = [c for c in rows.columns if c not in (*KEY, *LOSS_DAILY_COLUMNS)]
        if unknown:
            raise ValueError(f"loss_daily has no columns {unknown}")
        if (rows["site_id"] != site_id).any():
            raise ValueError(f"rows of other sites than {site_id!r} given to replace {site_id!r}")
        columns = [*KEY, *(c for c in LOSS_DAILY_COLUMNS if c in rows)]
        with self.db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM loss_daily WHERE site_id = :s"), {"s": site_id})
            if not rows.empty:
                self.db.transfer.write_kpis(conn, "loss_daily", rows[columns], columns)
        return len(rows)

    def read_daily(
        self,
        start: datetime,
        end: datetime,
        site_id: str | None = None,
        device_id: str | None = None,
    ) -> pd.DataFrame:
        """Rows of `loss_daily` with period_start in [start, end), ordered by site, device and day."""
        df = self.db.query_df(
            "SELECT * FROM loss_daily WHERE period_start >= :start AND period_start < :end"
            " AND (CAST(:site AS text) IS NULL OR site_id = :site)"
            " AND (CAST(:device AS text) IS NULL OR device_id = :device)"
            " ORDER BY site_id, device_id, period_start",
            {"start": start, "end": end, "site": site_id, "device": device_id},
        )
        if df.empty:
            return pd.DataFrame(columns=[*KEY, *LOSS_DAILY_COLUMNS])
        df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        for column in LOSS_DAILY_COLUMNS:
            df[column] = df[column].astype(float)
        return df.drop(columns=["computed_at"])

    def replace_degradation(self, site_id: str, rows: pd.DataFrame) -> int:
        """One site's degradation rows (site_id, device_id, first_day, last_day, DEGRADATION_COLUMNS)."""
        with self.db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM degradation WHERE site_id = :s"), {"s": site_id})
            if rows.empty:
                return 0
            columns = ["site_id", "device_id", "first_day", "last_day", *DEGRADATION_COLUMNS]
            conn.execute(
                sa.text(
                    f"INSERT INTO degradation ({', '.join(columns)})"
                    f" VALUES ({', '.join(':' + c for c in columns)})"
                ),
                records(rows.loc[:, columns]),
            )
        return len(rows)

    def read_degradation(self, site_id: str | None = None) -> pd.DataFrame:
        """The degradation rows (of one site), ordered by site and device."""
        df = self.db.query_df(
            "SELECT * FROM degradation WHERE CAST(:site AS text) IS NULL OR site_id = :site"
            " ORDER BY site_id, device_id",
            {"site": site_id},
        )
        for column in DEGRADATION_COLUMNS:
            if column in df:
                df[column] = df[column].astype(float)
        return df

    def replace_findings(
        self, site_id: str, findings: list, window_start: datetime, window_end: datetime
    ) -> int:
        """One site's detector findings (`analytics.site_checks.Finding`) over [window_start,
        window_end), replacing the site's earlier ones."""
        rows = [
            {"site_id": site_id, "device_id": f.device_id, "check_name": f.check, "passed": f.passed,
             "detail": f.detail, "metadata": json.dumps(f.metadata), "ws": window_start, "we": window_end}
            for f in findings
            if f.site_id == site_id
        ]  # fmt: skip
        with self.db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM quality_findings WHERE site_id = :s"), {"s": site_id})
            if rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO quality_findings (site_id, device_id, check_name, passed, detail,"
                        " metadata, window_start, window_end) VALUES (:site_id, :device_id,"
                        " :check_name, :passed, :detail, CAST(:metadata AS jsonb), :ws, :we)"
                    ),
                    rows,
                )
        return len(rows)

    def read_findings(self, site_id: str) -> pd.DataFrame:
        """The site's detector findings: device_id, check_name, passed, detail, metadata, window."""
        return self.db.query_df(
            "SELECT device_id, check_name, passed, detail, metadata, window_start, window_end"
            " FROM quality_findings WHERE site_id = :s ORDER BY check_name, device_id",
            {"s": site_id},
        )
