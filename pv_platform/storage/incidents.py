"""SQL of incidents: alerts grouped by root cause (`incidents`, `alerts.incident_id`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

RECENT = timedelta(hours=2)  # a closed incident still absorbs symptoms whose evidence it covers


class IncidentStore:
    """The `incidents` table, on the platform's Database engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def candidates(self, site_id: str, now: datetime) -> list[dict]:
        """Open incidents of a site, and those closed within RECENT before `now`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT * FROM incidents WHERE site_id = :s"
                    " AND (state = 'open' OR resolved_at >= :since)"
                ),
                {"s": site_id, "since": now - RECENT},
            ).mappings()
            return [dict(r) for r in rows]

    def create(self, alert: dict, scope: str) -> dict:
        """A new incident caused by `alert` (which joins it)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "INSERT INTO incidents (site_id, scope, cause_alert_id, cause_rule, cause_device,"
                    " severity, state, opened_at, title) VALUES (:site, :scope, :aid, :rule, :dev, :sev,"
                    " 'open', :t, :title) RETURNING *"
                ),
                {"site": alert["site_id"], "scope": scope, "aid": alert["id"], "rule": alert["rule"],
                 "dev": alert["device_id"], "sev": alert["severity"], "t": alert["opened_at"],
                 "title": alert["message"].split("\n")[0]},
            ).mappings().one()  # fmt: skip
            conn.execute(
                sa.text("UPDATE alerts SET incident_id = :i WHERE id = :a"),
                {"i": row["id"], "a": alert["id"]},
            )
        return dict(row)

    def attach(self, incident: dict, alert: dict, severity: str) -> dict | None:
        """`alert` is a symptom of `incident`: linked; the incident open again if it had closed, with
        the higher severity. Returns the incident when this reopened it (its end was notified: the
        reopening is notified, and its next end again), else None."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE alerts SET incident_id = :i WHERE id = :a"),
                {"i": incident["id"], "a": alert["id"]},
            )
            was = conn.execute(
                sa.text("SELECT state FROM incidents WHERE id = :i FOR UPDATE"),
                {"i": incident["id"]},
            ).scalar_one()
            row = (
                conn.execute(
                    sa.text(
                        "UPDATE incidents SET state = 'open', resolved_at = NULL, severity = :sev,"
                        " notified_resolved_at = NULL WHERE id = :i RETURNING *"
                    ),
                    {"i": incident["id"], "sev": severity},
                )
                .mappings()
                .one()
            )
        return dict(row) if was != "open" else None

    def close_finished(self) -> list[dict]:
        """Close every open incident none of whose alerts is active any more (it ended when the last
        was resolved); the incidents closed now."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.text(
                    "UPDATE incidents i SET state = 'resolved', resolved_at = ("
                    "SELECT max(resolved_at) FROM alerts WHERE incident_id = i.id)"
                    " WHERE i.state = 'open' AND NOT EXISTS ("
                    "SELECT 1 FROM alerts WHERE incident_id = i.id AND state <> 'resolved')"
                    " RETURNING *"
                )
            ).mappings()
            return [dict(r) for r in rows]

    def mark_notified(self, incident_id: int, event: str, ts: datetime) -> bool:
        """Record that `event` (opened, resolved, escalated) went out; False when it had already."""
        column = {"resolved": "notified_resolved_at", "escalated": "escalated_at"}[event]
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        f"UPDATE incidents SET {column} = :t WHERE id = :i AND {column} IS NULL"
                    ),
                    {"t": ts, "i": incident_id},
                ).rowcount
            )

    def due_escalation(self, now: datetime, after_s: float) -> list[dict]:
        """Open CRITICAL incidents whose cause nobody acknowledged within `after_s`, not escalated yet."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT i.* FROM incidents i JOIN alerts a ON a.id = i.cause_alert_id"
                    " WHERE i.state = 'open' AND i.severity = 'CRITICAL' AND i.escalated_at IS NULL"
                    " AND a.acknowledged_at IS NULL AND i.opened_at <= :t"
                ),
                {"t": now - timedelta(seconds=after_s)},
            ).mappings()
            return [dict(r) for r in rows]

    def list(
        self, state: str | None = None, site_id: str | None = None, limit: int = 200
    ) -> pd.DataFrame:
        """Incidents newest first with their affected devices and how many alerts they hold."""
        where = [f"i.{c} = :{c}" for c, v in (("state", state), ("site_id", site_id)) if v]
        sql = (
            "SELECT i.*, array_agg(DISTINCT a.device_id) AS devices, count(a.id) AS alerts"
            " FROM incidents i LEFT JOIN alerts a ON a.incident_id = i.id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY i.id ORDER BY i.opened_at DESC, i.id DESC LIMIT :limit"
        )
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text(sql), {"state": state, "site_id": site_id, "limit": limit}
            )
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def count(self, state: str | None = None, site_id: str | None = None) -> int:
        """How many incidents the same filters as `list` match (to say what a page leaves out)."""
        where = [f"{c} = :{c}" for c, v in (("state", state), ("site_id", site_id)) if v]
        sql = "SELECT count(*) FROM incidents" + (" WHERE " + " AND ".join(where) if where else "")
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), {"state": state, "site_id": site_id}).scalar()

    def symptoms(self, incident_ids: list[int]) -> pd.DataFrame:
        """The alerts of the given incidents, oldest first."""
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text(
                    "SELECT * FROM alerts WHERE incident_id = ANY(:ids) ORDER BY opened_at, id"
                ),
                {"ids": list(incident_ids)},
            )
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
