"""The `reports` table: each site's monthly and yearly owner reports (PDF and HTML) and their e-mail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

FORMATS = ("pdf", "html")


class ReportStore:
    """Stored reports, one per (site, grain, period); a regenerated report replaces the old one."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(
        self,
        site_id: str,
        grain: str,
        period: str,
        bounds: tuple[datetime, datetime],
        pdf: bytes,
        html: str,
        summary: dict[str, Any],
    ) -> None:
        """Write (or replace) a report; when it was e-mailed is kept."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO reports (site_id, grain, period, period_start, period_end, pdf, html,"
                    " summary) VALUES (:site, :grain, :period, :s, :e, :pdf, :html, CAST(:summary AS jsonb))"
                    " ON CONFLICT (site_id, grain, period) DO UPDATE SET period_start = EXCLUDED.period_start,"
                    " period_end = EXCLUDED.period_end, pdf = EXCLUDED.pdf, html = EXCLUDED.html,"
                    " summary = EXCLUDED.summary, generated_at = now()"
                ),
                {
                    "site": site_id, "grain": grain, "period": period, "s": bounds[0], "e": bounds[1],
                    "pdf": pdf, "html": html, "summary": json.dumps(summary, default=str),
                },
            )  # fmt: skip

    def document(self, site_id: str, grain: str, period: str, fmt: str) -> bytes | None:
        """A stored report as PDF bytes or UTF-8 HTML bytes; None when there is none."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; use {' or '.join(FORMATS)}")
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text(
                    f"SELECT {fmt} FROM reports WHERE site_id = :site AND grain = :grain"
                    " AND period = :period"
                ),
                {"site": site_id, "grain": grain, "period": period},
            ).scalar()
        if value is None:
            return None
        return bytes(value) if fmt == "pdf" else value.encode()

    def list(self, site_ids: list[str] | None = None, grain: str | None = None) -> pd.DataFrame:
        """Stored reports without their documents (newest period first): site_id, grain, period,
        period_start, period_end, generated_at, emailed_at, pdf_bytes, summary."""
        where = ["TRUE"]
        if site_ids is not None:
            where.append("site_id = ANY(:sites)")
        if grain is not None:
            where.append("grain = :grain")
        sql = (
            "SELECT site_id, grain, period, period_start, period_end, generated_at, emailed_at,"
            " octet_length(pdf) AS pdf_bytes, summary FROM reports WHERE "
            + " AND ".join(where)
            + " ORDER BY period_start DESC, grain, site_id"
        )
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), {"sites": site_ids, "grain": grain})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def mark_emailed(
        self, site_id: str, grain: str, period: str, to: list[str], at: datetime
    ) -> None:
        """Record that the report went out (to whom, when)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE reports SET emailed_at = :at, emailed_to = :to WHERE site_id = :site"
                    " AND grain = :grain AND period = :period"
                ),
                {"at": at, "to": ", ".join(to), "site": site_id, "grain": grain, "period": period},
            )

    def emailed_at(self, site_id: str, grain: str, period: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT emailed_at FROM reports WHERE site_id = :site AND grain = :grain"
                    " AND period = :period"
                ),
                {"site": site_id, "grain": grain, "period": period},
            ).scalar()
