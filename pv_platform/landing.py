"""Durable landing: append-only segment files, closed with fsync and an atomic rename.

Layout under the landing folder: `open/` (being written; a leftover there is a torn segment from a
crash, never acknowledged, and is removed on start), `closed/` (durable, waiting for ingest) and
`ingested/<yyyymmdd>/` (loaded, kept for audit and replay).

A segment is UTF-8 text: a first line `#meta {json}` (entity metadata and quarantined inputs), then
CSV rows `entity,ts,value` with ts in ISO-8601 UTC.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pv_platform.readings import Reading

META_PREFIX = "#meta "
SUFFIX = ".seg"


def _fsync_dir(path: Path) -> None:
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

    @property
    def rows(self) -> int:
        return self.csv_body.count("\n")


@dataclass
class SegmentWriter:
    """Buffers readings and closes them into segment files by size or age. One writer per folder+name."""

    landing_dir: Path
    writer_name: str = "collector"
    max_rows: int = 5000
    max_age_s: float = 5.0
    _rows: list[str] = field(default_factory=list)
    _entities: dict[str, dict] = field(default_factory=dict)
    _quarantine: list[dict] = field(default_factory=list)
    _opened_at: float | None = None
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.landing_dir = Path(self.landing_dir)
        for sub in ("open", "closed", "ingested"):
            (self.landing_dir / sub).mkdir(parents=True, exist_ok=True)
        self.torn_removed = recover_torn(self.landing_dir, self.writer_name)

    def add(self, readings: list[Reading], entity_meta: dict[str, dict] | None = None) -> list[str]:
        """Buffer readings; returns the ids of segments closed by this call."""
        with self._lock:
            if self._opened_at is None:
                self._opened_at = time.monotonic()
            for r in readings:
                self._rows.append(f"{r.entity},{r.ts.isoformat()},{r.value!r}\n")
                if entity_meta and r.entity in entity_meta:
                    self._entities[r.entity] = entity_meta[r.entity]
            return self._maybe_close()

    def add_rows(self, csv_rows: list[str], entity_meta: dict[str, dict]) -> list[str]:
        """Buffer pre-formatted `entity,ts,value` lines from a trusted source (the history back-fill)."""
        with self._lock:
            if self._opened_at is None:
                self._opened_at = time.monotonic()
            self._rows.extend(csv_rows)
            self._entities.update(entity_meta)
            return self._maybe_close()

    def add_quarantine(self, source: str, payload: bytes, reason: str) -> None:
        """Keep a rejected input with its reason; it lands in the `quarantine` table on ingest."""
        with self._lock:
            if self._opened_at is None:
                self._opened_at = time.monotonic()
            self._quarantine.append(
                {
                    "received_at": datetime.now(UTC).isoformat(),
                    "source": source,
                    "payload_b64": base64.b64encode(payload[:65536]).decode(),
                    "reason": reason[:2000],
                }
            )

    def tick(self) -> list[str]:
        """Close the open segment if it is old enough (call about once a second)."""
        with self._lock:
            return self._maybe_close()

    def close(self) -> list[str]:
        """Close whatever is buffered now."""
        with self._lock:
            return [self._close()] if self._rows or self._quarantine else []

    def _maybe_close(self) -> list[str]:
        if not self._rows and not self._quarantine:
            return []
        too_big = len(self._rows) >= self.max_rows
        too_old = (
            self._opened_at is not None and time.monotonic() - self._opened_at >= self.max_age_s
        )
        return [self._close()] if too_big or too_old else []

    def _close(self) -> str:
        self._seq += 1
        segment_id = f"{time.time_ns():020d}-{self.writer_name}-{os.getpid()}-{self._seq:06d}"
        meta = {
            "entities": self._entities,
            "quarantine": self._quarantine,
            "writer": self.writer_name,
        }
        tmp = self.landing_dir / "open" / f"{segment_id}{SUFFIX}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(META_PREFIX + json.dumps(meta, separators=(",", ":")) + "\n")
            fh.writelines(self._rows)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.landing_dir / "closed" / f"{segment_id}{SUFFIX}"
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        self._rows, self._entities, self._quarantine, self._opened_at = [], {}, [], None
        return segment_id


def recover_torn(landing_dir: Path, writer_name: str) -> int:
    """Remove this writer's unclosed segments left by a crash (they were never acknowledged)."""
    removed = 0
    for tmp in (Path(landing_dir) / "open").glob(f"*-{writer_name}-*{SUFFIX}.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def list_closed(landing_dir: Path | str) -> list[str]:
    """Ids of closed segments waiting for ingest, oldest first."""
    folder = Path(landing_dir) / "closed"
    if not folder.exists():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX))


def segment_path(landing_dir: Path | str, segment_id: str) -> Path:
    return Path(landing_dir) / "closed" / f"{segment_id}{SUFFIX}"


def read_segment(path: Path) -> Segment:
    """Read a closed segment; ValueError if it is not one."""
    text = path.read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith(META_PREFIX):
        raise ValueError(f"{path}: not a landing segment (no #meta line)")
    return Segment(path.name[: -len(SUFFIX)], path, json.loads(first[len(META_PREFIX) :]), body)


def archive(landing_dir: Path | str, segment_id: str) -> None:
    """Move an ingested segment out of `closed/` into `ingested/<yyyymmdd>/`."""
    src = segment_path(landing_dir, segment_id)
    day = datetime.now(UTC).strftime("%Y%m%d")
    dst_dir = Path(landing_dir) / "ingested" / day
    dst_dir.mkdir(parents=True, exist_ok=True)
    if src.exists():
        os.replace(src, dst_dir / src.name)
