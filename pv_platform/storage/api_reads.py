"""SQL of the read-only HTTP API (`pvp api`): sites, devices, KPI rows, samples and alerts, one page at
a time with keyset pagination (a page after the last key of the previous one: stable while rows arrive)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from pv_platform.storage.exports import BUCKET_ORIGIN, LAST_VALUE_CLASSES
from pv_platform.storage.schema import KPI_TABLES, KPI_VALUE_COLUMNS

ALERT_COLUMNS = (
    "id", "rule", "severity", "site_id", "device_id", "state", "opened_at", "last_seen_at", "count",
    "acknowledged_by", "acknowledged_at", "ack_comment", "resolved_at", "resolved_by", "message",
)  # fmt: skip


def _rows(engine: sa.Engine, sql: str, params: dict) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def sites(engine: sa.Engine) -> list[dict]:
    """Every site (id, name, latitude, longitude, altitude_m, timezone, tilt_deg, azimuth_deg)."""
    return _rows(
        engine,
        "SELECT id, name, latitude, longitude, altitude_m, timezone, tilt_deg, azimuth_deg"
        " FROM sites ORDER BY id",
        {},
    )


def devices(engine: sa.Engine, site_id: str) -> list[dict]:
    """The site's devices (id, kind, integration, p_dc_kw, p_ac_kw) with their metrics and units."""
    rows = _rows(
        engine,
        "SELECT d.id, d.kind, d.integration, d.p_dc_kw, d.p_ac_kw,"
        " COALESCE(json_agg(json_build_object('metric', e.metric, 'unit', e.unit) ORDER BY e.metric)"
        " FILTER (WHERE e.id IS NOT NULL), '[]') AS metrics"
        " FROM devices d LEFT JOIN entities e ON e.site_id = d.site_id AND e.device_id = d.id"
        " WHERE d.site_id = :site GROUP BY d.site_id, d.id ORDER BY d.id",
        {"site": site_id},
    )
    return rows


def kpi_page(
    engine: sa.Engine,
    table: str,
    site_id: str,
    start: datetime,
    end: datetime,
    device_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict]:
    """Up to `limit` KPI rows of a site in [start, end), ordered by (period_start, device_id), after
    the key `after`."""
    if table not in KPI_TABLES:
        raise ValueError(f"{table!r} is not a KPI table")
    values = ", ".join(KPI_VALUE_COLUMNS)
    sql = (
        f"SELECT device_id, period_start, {values}, samples FROM {table}"
        " WHERE site_id = :site AND period_start >= :start AND period_start < :end"
        + (" AND device_id = :device" if device_id else "")
        + (" AND (period_start, device_id) > (:a_ts, :a_dev)" if after else "")
        + " ORDER BY period_start, device_id LIMIT :limit"
    )
    params = {"site": site_id, "start": start, "end": end, "device": device_id, "limit": limit}
    if after:
        params.update(a_ts=after[0], a_dev=after[1])
    return _rows(engine, sql, params)


def sample_page(
    engine: sa.Engine,
    site_id: str,
    start: datetime,
    end: datetime,
    device_id: str | None,
    metrics: list[str] | None,
    bucket_s: int | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict]:
    """Up to `limit` samples (or bucket values: mean, last for counters and states) of a site in
    [start, end), ordered by (ts, entity), after the key `after`; each with device, metric and unit."""
    where = "e.site_id = :site AND s.ts >= :start AND s.ts < :end"
    where += " AND e.device_id = :device" if device_id else ""
    where += " AND e.metric = ANY(:metrics)" if metrics else ""
    params = {
        "site": site_id, "start": start, "end": end, "device": device_id, "metrics": metrics,
        "limit": limit, "last_classes": list(LAST_VALUE_CLASSES),
    }  # fmt: skip
    if bucket_s:
        params["bucket"] = timedelta(seconds=bucket_s)
        inner = (
            f"SELECT date_bin(:bucket, s.ts, TIMESTAMPTZ '{BUCKET_ORIGIN}') AS ts, s.entity_id,"
            " CASE WHEN e.device_class = ANY(:last_classes)"
            " THEN (array_agg(s.value ORDER BY s.ts DESC))[1] ELSE avg(s.value) END AS value"
            f" FROM samples s JOIN entities e ON e.id = s.entity_id WHERE {where}"
            " GROUP BY 1, 2, e.device_class"
        )
    else:
        inner = (
            "SELECT s.ts, s.entity_id, s.value FROM samples s JOIN entities e ON e.id = s.entity_id"
            f" WHERE {where}"
        )
    sql = (
        f"SELECT x.ts, x.entity_id, e.device_id, e.metric, e.unit, x.value FROM ({inner}) x"
        " JOIN entities e ON e.id = x.entity_id"
        + (" WHERE (x.ts, x.entity_id) > (:a_ts, :a_id)" if after else "")
        + " ORDER BY x.ts, x.entity_id LIMIT :limit"
    )
    if after:
        params.update(a_ts=after[0], a_id=after[1])
    return _rows(engine, sql, params)


def alert_page(
    engine: sa.Engine,
    site_ids: list[str] | None,
    state: str | None,
    severity: str | None,
    after_id: int | None,
    limit: int,
) -> list[dict]:
    """Up to `limit` alerts, newest first (by id), older than `after_id`; of the given sites only."""
    sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE true"
    sql += " AND site_id = ANY(:sites)" if site_ids is not None else ""
    sql += " AND state = :state" if state else ""
    sql += " AND severity = :severity" if severity else ""
    sql += " AND id < :after" if after_id is not None else ""
    params = {"sites": site_ids, "state": state, "severity": severity, "after": after_id}
    return _rows(engine, sql + " ORDER BY id DESC LIMIT :limit", {**params, "limit": limit})


def alert(engine: sa.Engine, alert_id: int) -> dict | None:
    """One alert by id (None when there is none)."""
    rows = _rows(
        engine, f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE id = :id", {"id": alert_id}
    )
    return rows[0] if rows else None
