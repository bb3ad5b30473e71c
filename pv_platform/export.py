"""Exports for owners and their tools: samples (raw or downsampled) and KPIs (hour, day, month, year)
as CSV or Parquet, units in every header, written while they stream from the database.

Layouts:

- samples: one row per instant (or bucket), a column per entity named `site.device.metric [unit]`
  (`(mean)` or `(last)` appended when downsampled: counters and states take the bucket's last value);
  an entity without a sample at that instant has an empty cell.
- KPIs: one row per site/device and period, `period_start [UTC]`, `period_start_local` (the site's own
  calendar, ISO 8601 with offset) and each KPI as `name [unit]`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from pv_platform.storage.exports import (
    ExportEntity,
    export_entities,
    site_timezones,
    stream_kpis,
    stream_samples,
)
from pv_platform.storage.schema import KPI_VALUE_COLUMNS

GRAINS = ("samples", "hour", "day", "month", "year")
KPI_TABLE = {"hour": "kpi_hourly", "day": "kpi_daily", "month": "kpi_monthly", "year": "kpi_yearly"}
FORMATS = ("csv", "parquet")
PARQUET_ROW_GROUP = 50_000  # rows buffered before a Parquet row group is written
MAX_BUCKET_S = 86_400  # longer periods: the KPI grains (site-local days, months, years)

FRACTION = "fraction"
# Each KPI column: its export header (name without the unit suffix, the unit in brackets).
KPI_HEADERS: dict[str, str] = {
    "period_h": "period [h]",
    "p_dc_kw": "p_dc [kW]",
    "p_ac_kw": "p_ac [kW]",
    "energy_ac_kwh": "energy_ac [kWh]",
    "insolation_poa_kwh_m2": "insolation_poa [kWh/m²]",
    "ref_energy_stc_kwh": "ref_energy_stc [kWh]",
    "ref_energy_iec_kwh": "ref_energy_iec [kWh]",
    "ref_energy_nrel_kwh": "ref_energy_nrel [kWh]",
    "t_cell_x_insolation": "t_cell_x_insolation [°C·kWh/m²]",
    "energy_expected_kwh": "energy_expected [kWh]",
    "energy_lost_kwh": "energy_lost [kWh]",
    "energy_lost_grid_kwh": "energy_lost_grid [kWh]",
    "energy_lost_planned_kwh": "energy_lost_planned [kWh]",
    "energy_clipped_kwh": "energy_clipped [kWh]",
    "energy_curtailed_kwh": "energy_curtailed [kWh]",
    "time_night_s": "time_night [s]",
    "time_no_data_s": "time_no_data [s]",
    "time_grid_outage_s": "time_grid_outage [s]",
    "time_planned_s": "time_planned [s]",
    "time_operating_s": "time_operating [s]",
    "time_forced_outage_s": "time_forced_outage [s]",
    "export_kwh": "export [kWh]",
    "import_kwh": "import [kWh]",
    "reactive_kvarh": "reactive [kvarh]",
    "time_freq_out_s": "time_freq_out [s]",
    "time_volt_out_s": "time_volt_out [s]",
    "reference_yield_h": "reference_yield [h]",
    "final_yield_h": "final_yield [kWh/kWp]",
    "pr": f"pr [{FRACTION}]",
    "pr_temp_iec": f"pr_temp_iec [{FRACTION}]",
    "pr_temp_nrel": f"pr_temp_nrel [{FRACTION}]",
    "t_cell_mean_c": "t_cell_mean [°C]",
    "expected_deviation": f"expected_deviation [{FRACTION}]",
    "capacity_factor_ac": f"capacity_factor_ac [{FRACTION}]",
    "capacity_factor_dc": f"capacity_factor_dc [{FRACTION}]",
    "availability_time": f"availability_time [{FRACTION}]",
    "availability_energy": f"availability_energy [{FRACTION}]",
    "power_factor": f"power_factor [{FRACTION}]",
}
assert set(KPI_HEADERS) == set(KPI_VALUE_COLUMNS), "every KPI column needs its export header"


class ExportError(ValueError):
    """A request that cannot be exported, with the reason (an unknown site, an empty range, ...)."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export. `start`/`end` without an offset are local times of each site (a date: its
    local midnight); with an offset they are instants. The end is exclusive."""

    grain: str
    start: datetime
    end: datetime
    site_id: str | None = None  # None: every site
    device_id: str | None = None  # None: every device (for KPIs: sites and inverters, '*' the site)
    bucket_s: int | None = None  # samples only: downsample to buckets of this many seconds
    metrics: tuple[str, ...] = ()  # samples only: these metrics (all when empty)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    rows: int
    columns: list[str]


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time (`2026-06-01`, `2026-06-01T12:00`, `2026-06-01T10:00Z`); naive
    when it has no offset (then it is read in each site's time zone)."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.combine(date.fromisoformat(text.strip()), time())
        except ValueError:
            raise ExportError(
                f"{text!r} is not an ISO 8601 date or time (e.g. 2026-06-01 or 2026-06-01T10:00Z)"
            ) from None


def parse_bucket(text: str) -> int:
    """`30s`, `5min`, `15min`, `1h` → seconds (from 1 s to 1 day)."""
    units = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86_400}
    body = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if body.endswith(suffix) and body[: -len(suffix)].strip().isdigit():
            seconds = int(body[: -len(suffix)]) * units[suffix]
            if 1 <= seconds <= MAX_BUCKET_S:
                return seconds
            break
    raise ExportError(
        f"bucket {text!r}: give a whole number of s, min or h from 1 s to 1 day"
        " (e.g. 15min; for days, months and years use the KPI grains)"
    )


def site_window(start: datetime, end: datetime, tz: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC for one site: naive times are the site's local times."""
    zone = ZoneInfo(tz)
    as_utc = [(t if t.tzinfo else t.replace(tzinfo=zone)).astimezone(UTC) for t in (start, end)]
    return as_utc[0], as_utc[1]


def windows(
    request: ExportRequest, timezones: dict[str, str]
) -> dict[str, tuple[datetime, datetime]]:
    """Per site of the request, its [start, end) in UTC."""
    if request.site_id is not None and request.site_id not in timezones:
        known = ", ".join(sorted(timezones)) or "none stored yet"
        raise ExportError(f"site {request.site_id!r} is not in the database (sites: {known})")
    sites = [request.site_id] if request.site_id else sorted(timezones)
    out = {s: site_window(request.start, request.end, timezones[s]) for s in sites}
    for site, (start, end) in out.items():
        if end <= start:
            raise ExportError(
                f"the range ends ({end:%Y-%m-%d %H:%M} UTC) before it starts"
                f" ({start:%Y-%m-%d %H:%M} UTC) for site {site!r}"
            )
    return out


def sample_header(entity: ExportEntity, bucketed: bool) -> str:
    """`site.device.metric [unit]`, plus `(last)` or `(mean)` when downsampled."""
    header = f"{entity.site_id}.{entity.device_id}.{entity.metric} [{entity.unit or '?'}]"
    if bucketed:
        header += " (last)" if entity.takes_last_value else " (mean)"
    return header


def wide_rows(
    stream: Iterable[tuple[datetime, int, float]], column_of: dict[int, int]
) -> Iterator[tuple[datetime, list[float | None]]]:
    """(ts, entity id, value) ordered by ts → one (ts, values per column) row per instant."""
    current: datetime | None = None
    values: list[float | None] = []
    for ts, entity_id, value in stream:
        if ts != current:
            if current is not None:
                yield current, values
            current, values = ts, [None] * len(column_of)
        values[column_of[entity_id]] = value
    if current is not None:
        yield current, values


def iso_utc(ts: datetime) -> str:
    """`2026-06-30T23:58:00Z` (microseconds only when there are some)."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- writers ---------------------------------------------------------------------------------------
class CsvSink:
    """Rows to CSV text: times as ISO 8601, floats in their shortest exact form, missing as empty."""

    def __init__(self, out: IO[str], headers: list[str]) -> None:
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(headers)

    @staticmethod
    def _cell(value) -> object:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, datetime):
            return iso_utc(value)
        return repr(value) if isinstance(value, float) else value

    def write(self, row: list) -> None:
        self.writer.writerow([self._cell(v) for v in row])

    def close(self) -> None:
        pass


class ParquetSink:
    """Rows to a Parquet file in row groups of PARQUET_ROW_GROUP rows; the units are also stored as
    field metadata (`unit`)."""

    def __init__(self, out, headers: list[str], kinds: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        types = {
            "time": pa.timestamp("us", tz="UTC"),
            "float": pa.float64(),
            "text": pa.string(),
            "int": pa.int64(),
        }
        fields = []
        for header, kind in zip(headers, kinds, strict=True):
            unit = header.rsplit("[", 1)[1].split("]")[0] if "[" in header else ""
            fields.append(pa.field(header, types[kind], metadata={"unit": unit}))
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(out, self.schema)
        self.columns: list[list] = [[] for _ in headers]

    def write(self, row: list) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)
        if len(self.columns[0]) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.columns[0]:
            self.writer.write_table(self.pa.table(self.columns, schema=self.schema))
            self.columns = [[] for _ in self.columns]

    def close(self) -> None:
        self._flush()
        self.writer.close()


def _sink(fmt: str, out, headers: list[str], kinds: list[str]):
    if fmt == "csv":
        return CsvSink(out, headers)
    if fmt == "parquet":
        return ParquetSink(out, headers, kinds)
    raise ExportError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")


# -- the export ------------------------------------------------------------------------------------
def export(engine: sa.Engine, request: ExportRequest, fmt: str, out) -> ExportSummary:
    """Write the request's rows to `out` (a text stream for CSV, a binary file or path for Parquet).

    Raises
    ------
    ExportError
        Unknown grain, site, device or metric, an empty range, a bucket on a KPI grain.
    """
    if request.grain not in GRAINS:
        raise ExportError(f"grain {request.grain!r}: use one of {', '.join(GRAINS)}")
    if request.device_id and not request.site_id:
        raise ExportError("a device needs its site (--site)")
    wins = windows(request, site_timezones(engine))
    if request.grain == "samples":
        return _export_samples(engine, request, wins, fmt, out)
    if request.bucket_s or request.metrics:
        raise ExportError("--bucket and --metric are for the samples grain (KPIs have their own)")
    return _export_kpis(engine, request, wins, fmt, out)


def _export_samples(engine, request, wins, fmt, out) -> ExportSummary:
    entities = export_entities(
        engine, request.site_id, request.device_id, list(request.metrics) or None
    )
    if not entities:
        what = ", ".join(
            f"{k} {v!r}"
            for k, v in (
                ("site", request.site_id),
                ("device", request.device_id),
                ("metrics", ",".join(request.metrics) or None),
            )
            if v
        )
        raise ExportError(f"no stored entities for {what or 'any site'}")
    headers = ["ts [UTC]"] + [sample_header(e, bool(request.bucket_s)) for e in entities]
    sink = _sink(fmt, out, headers, ["time"] + ["float"] * len(entities))
    column_of = {e.id: i for i, e in enumerate(entities)}
    rows = 0
    stream = stream_samples(engine, entities, wins, request.bucket_s)
    for ts, values in wide_rows(stream, column_of):
        sink.write([ts, *values])
        rows += 1
    sink.close()
    return ExportSummary(rows, headers)


def _export_kpis(engine, request, wins, fmt, out) -> ExportSummary:
    headers = [
        "site",
        "device",
        "period_start [UTC]",
        "period_start_local",
        *(KPI_HEADERS[c] for c in KPI_VALUE_COLUMNS),
        "samples [count]",
    ]
    kinds = ["text", "text", "time", "text", *(["float"] * len(KPI_VALUE_COLUMNS)), "int"]
    sink = _sink(fmt, out, headers, kinds)
    rows = 0
    for site, device, start, tz, *values in stream_kpis(
        engine, KPI_TABLE[request.grain], wins, request.device_id
    ):
        local = start.astimezone(ZoneInfo(tz)).isoformat()
        sink.write([site, device, start, local, *values])
        rows += 1
    sink.close()
    return ExportSummary(rows, headers)


def default_output(request: ExportRequest, fmt: str) -> Path:
    """`pvp-<site or all>-<grain>-<start>-<end>.<fmt>` in the current folder."""
    stamp = lambda t: t.strftime("%Y%m%dT%H%M") if t.time() != time() else t.strftime("%Y%m%d")  # noqa: E731
    site = request.site_id or "all"
    device = f"-{request.device_id}" if request.device_id else ""
    return Path(
        f"pvp-{site}{device}-{request.grain}-{stamp(request.start)}-{stamp(request.end)}.{fmt}"
    )


__all__ = [
    "ExportError",
    "ExportRequest",
    "ExportSummary",
    "GRAINS",
    "KPI_HEADERS",
    "export",
    "frame_bytes",
    "parse_bucket",
    "parse_time",
]


def frame_bytes(frame, fmt: str) -> bytes:
    """A small table (what a page shows) as CSV or Parquet bytes; a `[unit]` at the end of a header is
    also kept as the Parquet field's `unit` metadata."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").encode()
    if fmt != "parquet":
        raise ExportError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [
        f.with_metadata(
            {"unit": f.name.rsplit("[", 1)[1].rstrip("]")} if f.name.endswith("]") else {}
        )
        for f in table.schema
    ]
    buffer = io.BytesIO()
    pq.write_table(table.cast(pa.schema(fields)), buffer)
    return buffer.getvalue()
