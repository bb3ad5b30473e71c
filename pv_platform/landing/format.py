"""The segment format and the readers of the landing folder: what a closed segment holds, how it is
verified and parsed, and how it moves to `ingested/` or `rejected/` (see `pv_platform.landing`)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from pv_platform.readings import ENTITY_KEY_PATTERN, MAX_FUTURE
from pv_platform.segment_rows import Columns, all_accepted, parse_columns

log = logging.getLogger(__name__)
META_PREFIX = "#meta "
END_PREFIX = "#end "
FORMAT = 2  # 2: checksum trailer
SUFFIX = ".seg"
REASON_SUFFIX = ".reason.txt"
QUARANTINE_PAYLOAD_BYTES = 65536
_ENTITY = re.compile(ENTITY_KEY_PATTERN)
_END = re.compile(r"^#end sha256=([0-9a-f]{64}) rows=(\d+)$")


class SegmentError(ValueError):
    """A segment that cannot be read as a whole; the message says why."""


@dataclass(frozen=True)
class TimeLimits:
    """Timestamps a row may carry: from its site's earliest (commissioning) to `latest`."""

    latest: datetime
    default_earliest: datetime
    earliest_by_site: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def for_plant(cls, plant, now: datetime | None = None) -> TimeLimits:
        """Limits of a plant: a site's commissioning day, and nothing before the first KPI partition
        (`Plant.kpi_start`), so no hour is stored that no partition computes. `None` (no plant file):
        only the default window, DEFAULT_HISTORY_YEARS back."""
        from pv_platform.plant import default_earliest_reading, kpi_start
        from pv_platform.settings import get_settings

        now = now or datetime.now(UTC)
        if plant is None:
            return cls(now + MAX_FUTURE, default_earliest_reading(now), {})
        start = kpi_start(plant, get_settings().kpi_start, now)
        sites = {
            s.id: max(s.earliest_reading(now), start) for s in plant.sites if s.commissioning_date
        }
        return cls(now + MAX_FUTURE, start, sites)

    @classmethod
    def for_plant_file(cls, path: Path | str | None) -> TimeLimits:
        """Limits of the plant file at `path` (read again only when it changes); the default window
        when there is none."""
        path = Path(path) if path else None
        if path is None or not path.exists():
            return cls.for_plant(None)
        limits = _plant_file_limits(path, path.stat().st_mtime_ns)
        return cls(datetime.now(UTC) + MAX_FUTURE, limits.default_earliest, limits.earliest_by_site)

    def why_not(self, entity: str, ts: datetime) -> str | None:
        """Why a row at `ts` is refused, or None when it is inside the limits."""
        site_id = entity.partition(".")[0]
        earliest = self.earliest_by_site.get(site_id, self.default_earliest)
        if ts < earliest and site_id in self.earliest_by_site:
            return f"timestamp {ts.isoformat()} is before {earliest:%Y-%m-%d} (site {site_id} commissioning)"
        if ts < earliest:
            return (
                f"timestamp {ts.isoformat()} is before {earliest:%Y-%m-%dT%H:%M}Z, the first KPI"
                f" partition (give site {site_id} a commissioning_date in the plant file to keep"
                " older history)"
            )
        if ts > self.latest:
            return (
                f"timestamp {ts.isoformat()} is in the future (limit {self.latest:%Y-%m-%dT%H:%M}Z)"
            )
        return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Segment:
    """A closed segment read back: its id, metadata and CSV body."""

    segment_id: str
    path: Path
    meta: dict
    csv_body: str
    columns: Columns | None = None  # the body's rows as arrays (None: parse csv_body when needed)

    @property
    def rows(self) -> int:
        return self.csv_body.count("\n")


def list_closed(landing_dir: Path | str) -> list[str]:
    """Ids of closed segments waiting for ingest, oldest first."""
    folder = Path(landing_dir) / "closed"
    if not folder.exists():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX))


def segment_path(landing_dir: Path | str, segment_id: str) -> Path:
    return Path(landing_dir) / "closed" / f"{segment_id}{SUFFIX}"


@lru_cache(maxsize=4)
def _plant_file_limits(path: Path, mtime_ns: int) -> TimeLimits:
    from pv_platform.plant import load_plant

    return TimeLimits.for_plant(load_plant(path))


def _verified_text(raw: bytes) -> tuple[dict, str]:
    """Meta and CSV body of a segment's bytes; SegmentError for anything not written whole by a writer."""
    if not raw:
        raise SegmentError("empty file (0 bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SegmentError(
            f"not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    first, _, rest = text.partition("\n")
    if not first.startswith(META_PREFIX):
        raise SegmentError("not a landing segment (no #meta line)")
    try:
        meta = json.loads(first[len(META_PREFIX) :])
    except ValueError as exc:
        raise SegmentError(f"broken #meta JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise SegmentError("broken #meta JSON: not an object")
    if meta.get("format", 1) < 2:
        return meta, rest  # written before segments carried a checksum: read as before
    body, sep, last = rest[:-1].rpartition("\n") if rest.endswith("\n") else ("", "", "")
    body += sep
    end = _END.match(last)
    if end is None:
        raise SegmentError("no #end checksum line (the file was cut off or appended to)")
    digest = hashlib.sha256((first + "\n" + body).encode()).hexdigest()
    if digest != end.group(1) or body.count("\n") != int(end.group(2)):
        raise SegmentError("checksum mismatch: the file changed after it was closed")
    return meta, body


def _checked_rows(segment_id: str, body: str, limits: TimeLimits) -> tuple[str, list[dict]]:
    """The body without the rows `limits` or a non-finite value refuse, and those rows as quarantine
    records. SegmentError for a row that is not `entity,ts,value` at all (the file is damaged)."""
    if body and not body.endswith("\n"):
        raise SegmentError(f"row {body.count(chr(10)) + 1} is cut off (no end of line)")
    kept: list[str] = []
    refused: list[dict] = []
    now = datetime.now(UTC).isoformat()
    for n, row in enumerate(body.split("\n")[:-1], start=1):  # COPY splits on \n only
        line = row + "\n"
        try:
            if not row.isprintable():  # a control character (\r, \x1c, ...) is damage
                raise ValueError(row)
            entity, raw_ts, raw_value = row.split(",")
            ts = datetime.fromisoformat(raw_ts)
            value = float(raw_value)
        except ValueError:
            raise SegmentError(f"row {n} is not entity,ts,value: {line[:200]!r}") from None
        if not _ENTITY.match(entity) or ts.tzinfo is None:
            raise SegmentError(f"row {n} has a bad entity or a time without zone: {line[:200]!r}")
        why = (
            f"value {raw_value} is not a finite number"
            if not math.isfinite(value)
            else limits.why_not(entity, ts.astimezone(UTC))
        )
        if why is None:
            kept.append(line)
            continue
        refused.append(
            {"received_at": now, "source": f"landing:{segment_id}",
             "payload_b64": base64.b64encode(line.encode()).decode(), "reason": f"row {n}: {why}"}
        )  # fmt: skip
    return "".join(kept), refused


def read_segment(path: Path, limits: TimeLimits | None = None) -> Segment:
    """Read a closed segment, verify its checksum (format 2) and every row.

    Rows with a non-finite value or a time outside `limits` (default: DEFAULT_HISTORY_YEARS back to
    MAX_FUTURE ahead) leave the body and join the meta's quarantine records. Raises SegmentError when
    the file as a whole cannot be trusted (empty, not UTF-8, broken #meta, checksum mismatch, cut off,
    a row that is not `entity,ts,value`)."""
    segment_id = path.name[: -len(SUFFIX)]
    meta, body = _verified_text(path.read_bytes())
    limits = limits or TimeLimits.for_plant(None)
    columns = parse_columns(body)  # every row well-formed and accepted: no row-by-row pass
    if columns is not None and all_accepted(columns, limits):
        return Segment(segment_id, path, meta, body, columns)
    body, refused = _checked_rows(segment_id, body, limits)
    if refused:
        meta = {**meta, "quarantine": [*meta.get("quarantine", []), *refused]}
    return Segment(segment_id, path, meta, body)


def reject(landing_dir: Path | str, segment_id: str, reason: str) -> Path:
    """Move an unreadable segment from `closed/` to `rejected/`, beside a `<id>.reason.txt`."""
    src = segment_path(landing_dir, segment_id)
    dst_dir = Path(landing_dir) / "rejected"
    dst_dir.mkdir(parents=True, exist_ok=True)
    note = dst_dir / f"{segment_id}{REASON_SUFFIX}"
    note.write_text(f"{datetime.now(UTC).isoformat()} {reason}\n", encoding="utf-8")
    if src.exists():
        os.replace(src, dst_dir / src.name)
    fsync_dir(dst_dir)
    return dst_dir / src.name


def archive(landing_dir: Path | str, segment_id: str) -> None:
    """Move an ingested segment out of `closed/` into `ingested/<yyyymmdd>/`."""
    src = segment_path(landing_dir, segment_id)
    day = datetime.now(UTC).strftime("%Y%m%d")
    dst_dir = Path(landing_dir) / "ingested" / day
    dst_dir.mkdir(parents=True, exist_ok=True)
    if src.exists():
        os.replace(src, dst_dir / src.name)
