"""SQL of the exports (`pvp export`, the History page's downloads): samples and KPI rows streamed from
a server-side cursor, so a year of minute data never sits in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from pv_platform.storage.schema import KPI_TABLES, KPI_VALUE_COLUMNS

STREAM_ROWS = 10_000  # rows fetched per round trip from the server-side cursor
# Counters and states: the value of a bucket is its last sample (a mean of a lifetime counter or of
# an operating-state code means nothing); every other metric: the mean of the bucket's samples.
LAST_VALUE_CLASSES = ("energy", "enum")
BUCKET_ORIGIN = "2000-01-01 00:00:00+00"  # buckets are aligned to UTC (a minute, 15 min, an hour)


@dataclass(frozen=True, slots=True)
class ExportEntity:
    """One stored entity as an export column: its id, names and unit (None when never reported)."""

    id: int
    site_id: str
    device_id: str
    metric: str
    unit: str | None
    device_class: str | None

    @property
    def takes_last_value(self) -> bool:
        """In a downsampled export: the bucket's last sample (counters, states), else the mean."""
        return self.device_class in LAST_VALUE_CLASSES


def site_timezones(engine: sa.Engine) -> dict[str, str]:
    """Every site that has a row in `sites` or an entity, with its IANA time zone ('UTC' if unknown)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, timezone FROM sites UNION"
                " SELECT DISTINCT e.site_id, 'UTC' FROM entities e"
                " WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.id = e.site_id)"
            )
        ).all()
    return {site_id: tz for site_id, tz in rows}


def export_entities(
    engine: sa.Engine,
    site_id: str | None = None,
    device_id: str | None = None,
    metrics: list[str] | None = None,
) -> list[ExportEntity]:
    """Entities of a site (or every site), a device, and the given metrics, ordered by key."""
    sql = "SELECT id, site_id, device_id, metric, unit, device_class FROM entities WHERE true"
    sql += " AND site_id = :site" if site_id else ""
    sql += " AND device_id = :device" if device_id else ""
    sql += " AND metric = ANY(:metrics)" if metrics else ""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(sql + " ORDER BY site_id, device_id, metric"),
            {"site": site_id, "device": device_id, "metrics": metrics},
        ).all()
    return [ExportEntity(*row) for row in rows]


def _window_join(windows: dict[str, tuple[datetime, datetime]]) -> tuple[str, dict]:
    """A join on per-site [start, end) windows (each site's dates are its own local dates)."""
    sites = sorted(windows)
    return (
        "JOIN unnest(CAST(:w_sites AS text[]), CAST(:w_starts AS timestamptz[]),"
        " CAST(:w_ends AS timestamptz[])) AS w(site_id, w_start, w_end) ON w.site_id = e.site_id",
        {
            "w_sites": sites,
            "w_starts": [windows[s][0] for s in sites],
            "w_ends": [windows[s][1] for s in sites],
        },
    )


def stream_samples(
    engine: sa.Engine,
    entities: list[ExportEntity],
    windows: dict[str, tuple[datetime, datetime]],
    bucket_s: int | None = None,
    chunk: timedelta = timedelta(days=1),
) -> Iterator[tuple[datetime, int, float]]:
    """(ts, entity id, value) of the entities' samples inside their site's window, ordered by time then
    entity; with `bucket_s`, one row per entity and bucket (start of the bucket, mean or last value).

    The range is read one `chunk` at a time (each a sort the server can do in memory, on the chunk's
    partitions only) through a server-side cursor: memory stays flat however long the range."""
    if not entities or not windows:
        return
    first = min(start for start, _ in windows.values())
    last = max(end for _, end in windows.values())
    if bucket_s:  # chunks on the bucket grid, so no bucket is split between two chunks
        origin = datetime.fromisoformat(BUCKET_ORIGIN)
        first = origin + timedelta(seconds=(first - origin).total_seconds() // bucket_s * bucket_s)
        chunk = timedelta(seconds=bucket_s * max(1, round(chunk.total_seconds() / bucket_s)))
    join, params = _window_join(windows)
    params["ids"] = [e.id for e in entities]
    params["last_classes"] = list(LAST_VALUE_CLASSES)
    where = (
        "s.entity_id = ANY(:ids) AND s.ts >= :c_start AND s.ts < :c_end"
        " AND s.ts >= w.w_start AND s.ts < w.w_end"
    )
    if bucket_s:
        params["bucket"] = timedelta(seconds=bucket_s)
        bucket = f"date_bin(:bucket, s.ts, TIMESTAMPTZ '{BUCKET_ORIGIN}')"
        sql = (
            f"SELECT {bucket} AS t, s.entity_id, CASE WHEN e.device_class = ANY(:last_classes)"
            " THEN (array_agg(s.value ORDER BY s.ts DESC))[1] ELSE avg(s.value) END"
            f" FROM samples s JOIN entities e ON e.id = s.entity_id {join} WHERE {where}"
            " GROUP BY 1, 2, e.device_class ORDER BY 1, 2"
        )
    else:
        sql = (
            f"SELECT s.ts, s.entity_id, s.value FROM samples s JOIN entities e ON e.id = s.entity_id"
            f" {join} WHERE {where} ORDER BY s.ts, s.entity_id"
        )
    query = sa.text(sql)
    with engine.connect() as conn:
        streaming = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS)
        c_start = first
        while c_start < last:
            c_end = min(c_start + chunk, last)
            result = streaming.execute(query, {**params, "c_start": c_start, "c_end": c_end})
            yield from result
            c_start = c_end


def stream_kpis(
    engine: sa.Engine,
    table: str,
    windows: dict[str, tuple[datetime, datetime]],
    device_id: str | None = None,
) -> Iterator[tuple]:
    """Rows of a KPI table (site_id, device_id, period_start, timezone, *KPI_VALUE_COLUMNS, samples)
    whose period starts inside its site's window, ordered by site, device, period."""
    if table not in KPI_TABLES:
        raise ValueError(f"{table!r} is not a KPI table ({', '.join(KPI_TABLES)})")
    if not windows:
        return
    sites = sorted(windows)
    values = ", ".join(f"k.{c}" for c in KPI_VALUE_COLUMNS)
    sql = (
        f"SELECT k.site_id, k.device_id, k.period_start, COALESCE(s.timezone, 'UTC'), {values},"
        f" k.samples FROM {table} k LEFT JOIN sites s ON s.id = k.site_id"
        " JOIN unnest(CAST(:w_sites AS text[]), CAST(:w_starts AS timestamptz[]),"
        " CAST(:w_ends AS timestamptz[])) AS w(site_id, w_start, w_end) ON w.site_id = k.site_id"
        " WHERE k.period_start >= w.w_start AND k.period_start < w.w_end"
        + (" AND k.device_id = :device" if device_id else "")
        + " ORDER BY k.site_id, k.device_id, k.period_start"
    )
    params = {
        "w_sites": sites,
        "w_starts": [windows[s][0] for s in sites],
        "w_ends": [windows[s][1] for s in sites],
        "device": device_id,
    }
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
            sa.text(sql), params
        )
        yield from result
