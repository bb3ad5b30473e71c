"""SQL of the alert lifecycle (open → acknowledged → resolved)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import sqlalchemy as sa


class AlertStore:
    """The `alerts` table, on the platform's Database engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def active(self) -> dict[str, dict]:
        """Open and acknowledged alerts by fingerprint."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.text("SELECT * FROM alerts WHERE state <> 'resolved'"))
                .mappings()
                .all()
            )
        return {row["fingerprint"]: dict(row) for row in rows}

    def last_resolved_at(self, fingerprint: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT max(resolved_at) FROM alerts WHERE fingerprint = :f AND state = 'resolved'"
                ),
                {"f": fingerprint},
            ).scalar()

    def opened_between(self, since: datetime, until: datetime) -> int:
        """Alerts opened in [since, until] (the rate limit's window around an evaluated time)."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM alerts WHERE opened_at >= :a AND opened_at <= :b"),
                {"a": since, "b": until},
            ).scalar()

    def open(
        self,
        fingerprint: str,
        rule: str,
        severity: str,
        site_id: str,
        device_id: str,
        message: str,
        context: dict,
        ts: datetime,
    ) -> dict:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at, last_seen_at,"
                    " message, context) VALUES (:f, :r, :s, :site, :dev, 'open', :t, :t, :m, CAST(:c AS jsonb)) RETURNING *"
                ),
                {"f": fingerprint, "r": rule, "s": severity, "site": site_id, "dev": device_id, "t": ts, "m": message,
                 "c": json.dumps(context, default=str)},
            ).mappings().one()  # fmt: skip
        return dict(row)

    def touch(
        self, alert_id: int, ts: datetime, message: str, context: dict, severity: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE alerts SET last_seen_at = :t, clear_since = NULL, count = count + 1, message = :m,"
                    " context = CAST(:c AS jsonb), severity = coalesce(:s, severity) WHERE id = :id"
                ),
                {"t": ts, "m": message, "c": json.dumps(context, default=str), "id": alert_id,
                 "s": severity},
            )  # fmt: skip

    def get(self, alert_id: int) -> dict | None:
        """One alert by id (None when unknown)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.text("SELECT * FROM alerts WHERE id = :id"), {"id": alert_id})
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def mark_clear(self, alert_id: int, ts: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE alerts SET clear_since = :t WHERE id = :id AND clear_since IS NULL"
                ),
                {"t": ts, "id": alert_id},
            )

    def acknowledge(self, alert_id: int, by: str, comment: str, ts: datetime) -> bool:
        """Sign an open alert off as acknowledged by `by`; False when it is not open (or unknown)."""
        return self._sign(alert_id, "acknowledge", by, comment, ts)

    def resolve(self, alert_id: int, by: str, comment: str, ts: datetime) -> bool:
        """Resolve an alert in the name of `by`; False when it is resolved already (or unknown)."""
        return self._sign(alert_id, "resolve", by, comment, ts)

    def _sign(self, alert_id: int, action: str, by: str, comment: str, ts: datetime) -> bool:
        """Through the owner's `pvp_sign_alert`, the only way the dashboards' role changes an alert
        (the sign-off time is the server's for a role that may not update alerts itself)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT public.pvp_sign_alert(:id, :action, :by, :c, :t)"),
                    {"id": alert_id, "action": action, "by": by, "c": comment, "t": ts},
                ).scalar()
            )

    def list(
        self,
        state: str | None = None,
        site_id: str | None = None,
        severity: str | None = None,
        limit: int | None = 200,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Alerts newest first, filtered (severity in any case); `limit=None`: all of them."""
        where, params = self._where(state, site_id, severity)
        sql = f"SELECT * FROM alerts{where} ORDER BY opened_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT :limit OFFSET :offset"
            params |= {"limit": limit, "offset": offset}
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def count(
        self, state: str | None = None, site_id: str | None = None, severity: str | None = None
    ) -> int:
        """How many alerts the same filters as `list` match (to say what a page leaves out)."""
        where, params = self._where(state, site_id, severity)
        with self.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM alerts{where}"), params).scalar()

    @staticmethod
    def _where(state, site_id, severity) -> tuple[str, dict]:
        where, params = [], {}
        for column, value in (("state", state), ("site_id", site_id), ("severity", severity)):
            if value:
                where.append(f"{column} = :{column}")
                params[column] = value.upper() if column == "severity" else value
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def overlapping(self, site_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """A site's alerts active at some time in [start, end): opened before `end` and not resolved
        before `start`, oldest first."""
        sql = (
            "SELECT id, rule, severity, device_id, state, opened_at, resolved_at, message FROM alerts"
            " WHERE site_id = :site AND opened_at < :end AND (resolved_at IS NULL OR resolved_at > :start)"
            " ORDER BY opened_at, id"
        )
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), {"site": site_id, "start": start, "end": end})
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for column in ("opened_at", "resolved_at"):
            df[column] = pd.to_datetime(df[column], utc=True)
        return df
