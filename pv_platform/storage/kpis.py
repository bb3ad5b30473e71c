"""KPI tables by grain, the data-quality outcomes of their hours (`kpi_quality`) and the coverage of
their periods (`kpi_coverage`). Storage returns sums; the ratios are the KPI layer's (`pv_platform.kpi`)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from pv_platform.kpi.periods import ADDITIVE
from pv_platform.storage.schema import KPI_TABLES, KPI_VALUE_COLUMNS

if TYPE_CHECKING:
    from pv_platform.storage.database import Database

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class KpiStore:
    """`kpi_hourly`, `kpi_daily`, `kpi_monthly`, `kpi_yearly`, `kpi_quality` and `kpi_coverage`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def replace(
        self,
        table: str,
        start: datetime,
        end: datetime,
        rows: pd.DataFrame,
        site_ids: list[str] | None = None,
        quality: list[dict] | None = None,
    ) -> int:
        """Idempotent write of one window of a KPI table: delete [start, end) (of the given sites), insert rows;
        with `quality`, the check outcomes of the same hours in the same transaction.

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
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE {where}"),
                {"s": start, "e": end, "sites": site_ids},
            )
            if quality is not None:
                self._write_quality(conn, start, end, quality)
            if rows.empty:
                return 0
            self.db.transfer.write_kpis(conn, table, rows, columns)
        return len(rows)

    def read(
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
        return self.db.transfer.read_kpis(self.db, table, params)

    def has_rows(self, table: str) -> bool:
        """Whether a KPI table has any row (the demo waits for its first daily KPIs)."""
        if table not in KPI_TABLES:
            raise ValueError(f"{table!r} is not a KPI table ({', '.join(KPI_TABLES)})")
        with self.db.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar()

    def period_sums(
        self,
        start: datetime,
        end: datetime,
        timezones: dict[str, str],
        grain: str,
        site_id: str | None = None,
    ) -> pd.DataFrame:
        """The additive columns of `kpi_hourly` summed by PostgreSQL per day, month or year of each
        site's local time (and the largest p_dc_kw, p_ac_kw): `periods.finish_periods` makes them the
        same rows as `periods.aggregate(self.read(...))`, without reading every hour out.

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
        summed = self.db.query_df(
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
        return summed

    @staticmethod
    def _write_quality(
        conn: sa.Connection, start: datetime, end: datetime, outcomes: list[dict]
    ) -> None:
        """Idempotent write of check outcomes for the hours in [start, end), inside the caller's
        transaction (with the KPI rows of the same hours): dicts with period_start, site_id, check_name,
        passed, severity, detail, metadata."""
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
        df = self.db.query_df(
            "SELECT period_start, site_id, check_name, detail FROM kpi_quality"
            " WHERE period_start >= :s AND period_start < :e AND NOT passed AND severity = 'ERROR'"
            + (" AND site_id IN (:site, '*')" if site_id else "")
            + " ORDER BY period_start, site_id, check_name",
            {"s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def quality_failures(self, start: datetime, end: datetime, site_id: str) -> pd.DataFrame:
        """Every failed check (WARN or ERROR) of a site's hours in [start, end): period_start, check_name,
        severity, detail — what the History page marks on its charts."""
        df = self.db.query_df(
            "SELECT period_start, check_name, severity, detail FROM kpi_quality"
            " WHERE period_start >= :s AND period_start < :e AND NOT passed AND site_id IN (:site, '*')"
            " ORDER BY period_start, check_name",
            {"s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def quality_outcomes(self, start: datetime, end: datetime, site_id: str) -> pd.DataFrame:
        """Every check outcome, passed or not, of a site's hours in [start, end): period_start,
        check_name, passed, severity, detail, metadata (`entity_keys`: the entities that failed) — what
        the Quality page shows."""
        df = self.db.query_df(
            "SELECT period_start, check_name, passed, severity, detail, metadata FROM kpi_quality"
            " WHERE period_start >= :s AND period_start < :e AND site_id IN (:site, '*')"
            " ORDER BY period_start, check_name",
            {"s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def alerting_failures(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Failed checks of the hours in [start, end) that raise `data_quality` alerts: every ERROR
        check, and the frozen-values check (a WARN for the rollups, but a stuck sensor to fix), with the
        outcome's metadata (`entity_keys`: the entities that failed)."""
        df = self.db.query_df(
            "SELECT period_start, site_id, check_name, severity, detail, metadata FROM kpi_quality"
            " WHERE period_start >= :s AND period_start < :e AND NOT passed"
            " AND (severity = 'ERROR' OR check_name = 'frozen_values')"
            " ORDER BY period_start, site_id, check_name",
            {"s": start, "e": end},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df

    def hours(self, site_id: str, start: datetime, end: datetime) -> list[datetime]:
        """The UTC hours in [start, end) that have hourly KPI rows for the site."""
        with self.db.engine.connect() as conn:
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

    def hours_by_site(
        self, site_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[datetime]]:
        """The UTC hours in [start, end) that have hourly KPI rows, per site (one query for many sites)."""
        found: dict[str, list[datetime]] = {s: [] for s in site_ids}
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT site_id, period_start FROM kpi_hourly WHERE site_id = ANY(:sites)"
                    " AND period_start >= :s AND period_start < :e ORDER BY 1, 2"
                ),
                {"sites": list(site_ids), "s": start, "e": end},
            )
            for site_id, hour in rows:
                found[site_id].append(hour)
        return found

    def replace_coverages(self, grain: str, entries: list[dict]) -> None:
        """`replace_coverage` for many sites' periods in one transaction: dicts with site_id,
        period_start, hours_expected, hours_present, missing (list of datetimes)."""
        if not entries:
            return
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO kpi_coverage (grain, site_id, period_start, hours_expected, hours_present, missing)"
                    " VALUES (:g, :site_id, :period_start, :hours_expected, :hours_present,"
                    " CAST(:m AS jsonb)) ON CONFLICT (grain, site_id, period_start) DO UPDATE SET"
                    " hours_expected = EXCLUDED.hours_expected, hours_present = EXCLUDED.hours_present,"
                    " missing = EXCLUDED.missing, computed_at = now()"
                ),
                [
                    {
                        **{k: e[k] for k in ("site_id", "period_start", "hours_expected")},
                        "hours_present": e["hours_present"],
                        "g": grain,
                        "m": json.dumps([m.isoformat() for m in e["missing"][:100]]),
                    }
                    for e in entries
                ],
            )

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
        with self.db.engine.begin() as conn:
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
        df = self.db.query_df(
            "SELECT site_id, period_start, hours_expected, hours_present, missing FROM kpi_coverage"
            " WHERE grain = :g AND period_start >= :s AND period_start < :e"
            + (" AND site_id = :site" if site_id else "")
            + " ORDER BY site_id, period_start",
            {"g": grain, "s": start, "e": end, "site": site_id},
        )
        if not df.empty:
            df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
        return df
