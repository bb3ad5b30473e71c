"""The segment writer: buffers readings, closes segments with fsync and an atomic rename, keeps what
it cannot write yet, and limits the quarantine per source (see `pv_platform.landing`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pv_platform import clock
from pv_platform.landing.format import (
    END_PREFIX,
    FORMAT,
    META_PREFIX,
    SUFFIX,
    fsync_dir,
)
from pv_platform.readings import Reading

log = logging.getLogger("pv_platform.landing")  # one logger for the landing


@dataclass
class _Bucket:
    """Token bucket of one quarantine source."""

    tokens: float
    refilled_at: float
    dropped: int = 0
    last_drop_at: float = 0.0


@dataclass
class SegmentWriter:
    """Buffers readings and closes them into segment files by size or age. One writer per folder+name.

    When the landing cannot be written (disk full, read-only, gone) nothing is lost that was handed
    over: the rows stay buffered and each later call tries again (at most every `retry_s`), so the
    collector keeps polling and resumes landing by itself. Memory stays bounded: past `max_held_rows`
    held rows, new *droppable* rows (polled devices, which poll again) are dropped and counted; rows of
    push devices are never dropped (they are acknowledged only when a segment holding them is closed,
    and the broker sends only a small window of unacknowledged messages).

    Quarantine is rate-limited per source (token bucket: `quarantine_burst`, `quarantine_per_s`) and
    payloads are cut to `quarantine_payload_bytes`; what the limit drops is counted and, once the source
    is accepted again, recorded as one quarantine record saying how many were dropped.
    """

    landing_dir: Path
    writer_name: str = "collector"
    max_rows: int = 5000
    max_age_s: float = 5.0
    max_held_rows: int = 200_000
    retry_s: float = 1.0
    quarantine_burst: int = 500
    quarantine_per_s: float = 50.0
    quarantine_payload_bytes: int = 4096
    _rows: list[str] = field(default_factory=list)
    _entities: dict[str, dict] = field(default_factory=dict)
    _quarantine: list[dict] = field(default_factory=list)
    _opened_at: float | None = None
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _failed_at: float = 0.0
    write_error: str | None = None  # why the landing cannot be written now; None: it can
    dropped_rows: int = 0  # droppable rows dropped while the landing could not be written
    quarantine_dropped: int = 0  # quarantine records dropped by the rate limit

    def __post_init__(self) -> None:
        self.landing_dir = Path(self.landing_dir)
        for sub in ("open", "closed", "ingested"):
            (self.landing_dir / sub).mkdir(parents=True, exist_ok=True)
        self.torn_removed = recover_torn(self.landing_dir, self.writer_name)

    @property
    def held_rows(self) -> int:
        """Rows buffered, not yet in a closed segment."""
        return len(self._rows)

    @property
    def empty(self) -> bool:
        """Nothing buffered: every row and quarantine record handed over is in a closed segment."""
        return not self._rows and not self._quarantine

    def _full(self) -> bool:
        return self.write_error is not None and len(self._rows) >= self.max_held_rows

    def add(
        self,
        readings: list[Reading],
        entity_meta: dict[str, dict] | None = None,
        droppable: bool = False,
    ) -> list[str]:
        """Buffer readings; returns the ids of segments closed by this call."""
        with self._lock:
            if droppable and self._full():
                if not self.dropped_rows:
                    log.error(
                        "landing %s not writable and %d rows held: dropping new polled readings",
                        self.landing_dir, len(self._rows),
                    )  # fmt: skip
                self.dropped_rows += len(readings)
                return self._maybe_close()
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

    def _admit(self, source: str, now: float) -> bool:
        """Take a token of `source`'s bucket; False (and counted) when it is empty."""
        bucket = self._buckets.setdefault(source, _Bucket(self.quarantine_burst, now))
        bucket.tokens = min(
            self.quarantine_burst,
            bucket.tokens + (now - bucket.refilled_at) * self.quarantine_per_s,
        )
        bucket.refilled_at = now
        if bucket.tokens >= 1 and not (self._full() and len(self._quarantine) >= self.max_rows):
            bucket.tokens -= 1
            return True
        if not bucket.dropped:
            log.warning("quarantine of %s over its limit: dropping and counting", source)
        bucket.dropped += 1
        bucket.last_drop_at = now
        self.quarantine_dropped += 1
        return False

    def flooding(self, within_s: float = 60.0) -> dict[str, int]:
        """Sources whose rejected inputs the rate limit dropped in the last `within_s`: source -> how
        many were dropped since it last got through (what the `quarantine_flood` alert reports)."""
        now = time.monotonic()
        with self._lock:
            return {
                source: b.dropped
                for source, b in self._buckets.items()
                if b.dropped and now - b.last_drop_at < within_s
            }

    def add_quarantine(self, source: str, payload: bytes, reason: str) -> None:
        """Keep a rejected input with its reason; it lands in the `quarantine` table on ingest."""
        with self._lock:
            if not self._admit(source, time.monotonic()):
                return
            if self._opened_at is None:
                self._opened_at = time.monotonic()
            now = (
                clock.now().isoformat()
            )  # the platform's time: rules judge quarantine per its hour
            bucket = self._buckets[source]
            if bucket.dropped:
                log.warning(
                    "quarantine of %s accepted again; %d dropped meanwhile", source, bucket.dropped
                )
                self._quarantine.append(
                    {"received_at": now, "source": source, "payload_b64": "",
                     "reason": f"{bucket.dropped} rejected inputs from this source were dropped"
                     " by the quarantine rate limit"}
                )  # fmt: skip
                bucket.dropped = 0
            cut = self.quarantine_payload_bytes
            if len(payload) > cut:
                reason = f"{reason} (payload cut to its first {cut} of {len(payload)} bytes)"
            self._quarantine.append(
                {
                    "received_at": now,
                    "source": source,
                    "payload_b64": base64.b64encode(payload[:cut]).decode(),
                    "reason": reason[:2000],
                }
            )

    def tick(self) -> list[str]:
        """Close the open segment if it is old enough (call about once a second)."""
        with self._lock:
            return self._maybe_close()

    def close(self, force: bool = False) -> list[str]:
        """Close whatever is buffered now ([] when there is nothing, or the landing is not writable;
        after a failure, tried again only every `retry_s` unless `force`)."""
        with self._lock:
            if not self._rows and not self._quarantine:
                return []
            if self.write_error and not force and time.monotonic() - self._failed_at < self.retry_s:
                return []
            return self._try_close()

    def close_as(self, segment_id: str) -> str:
        """Close what is buffered into a segment with this id (an importer's ids are fixed by its input,
        so landing the same input again rewrites the same segment, which the ingest ledger loads once).
        Raises OSError when the landing cannot be written (nothing is dropped: the rows stay held)."""
        with self._lock:
            return self._close(segment_id)

    def _maybe_close(self) -> list[str]:
        if not self._rows and not self._quarantine:
            return []
        if self.write_error is not None:  # retry a failed landing once per retry_s
            return self._try_close() if time.monotonic() - self._failed_at >= self.retry_s else []
        too_big = len(self._rows) >= self.max_rows
        too_old = (
            self._opened_at is not None and time.monotonic() - self._opened_at >= self.max_age_s
        )
        return self._try_close() if too_big or too_old else []

    def _try_close(self) -> list[str]:
        """Close the segment; on an OSError keep everything buffered and remember why (logged once
        per change: not writable, writable again)."""
        held = len(self._rows)
        try:
            segment_id = self._close()
        except OSError as exc:
            self._failed_at = time.monotonic()
            why = f"{type(exc).__name__}: {exc}"
            if self.write_error is None:
                log.error(
                    "landing %s not writable (%s); holding %d rows, retrying every %.0f s",
                    self.landing_dir, why, len(self._rows), self.retry_s,
                )  # fmt: skip
            self.write_error = why
            return []
        if self.write_error is not None:
            log.warning(
                "landing %s writable again; %d held rows landed, %d polled rows were dropped",
                self.landing_dir, held, self.dropped_rows,
            )  # fmt: skip
            self.write_error = None
        return [segment_id]

    def _close(self, segment_id: str | None = None) -> str:
        self._seq += 1
        segment_id = (
            segment_id or f"{time.time_ns():020d}-{self.writer_name}-{os.getpid()}-{self._seq:06d}"
        )
        meta = {
            "entities": self._entities,
            "quarantine": self._quarantine,
            "writer": self.writer_name,
            "format": FORMAT,
        }
        tmp = self.landing_dir / "open" / f"{segment_id}{SUFFIX}.tmp"
        head = (META_PREFIX + json.dumps(meta, separators=(",", ":")) + "\n").encode()
        body = "".join(self._rows).encode()
        digest = hashlib.sha256(head + body).hexdigest()
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)  # the folder may have been removed
            final = self.landing_dir / "closed" / f"{segment_id}{SUFFIX}"
            final.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(head + body)
                fh.write(f"{END_PREFIX}sha256={digest} rows={len(self._rows)}\n".encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # never leave half a segment behind
            raise
        with contextlib.suppress(OSError):  # renamed: the segment is there; a failed dir fsync
            fsync_dir(final.parent)  # only weakens durability against a power cut
        self._rows, self._entities, self._quarantine, self._opened_at = [], {}, [], None
        return segment_id


def recover_torn(landing_dir: Path, writer_name: str) -> int:
    """Remove this writer's unclosed segments left by a crash (they were never acknowledged)."""
    removed = 0
    for tmp in (Path(landing_dir) / "open").glob(f"*-{writer_name}-*{SUFFIX}.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
