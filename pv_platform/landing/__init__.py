"""Durable landing: append-only segment files, closed with fsync and an atomic rename.

Layout under the landing folder: `open/` (being written; a leftover there is a torn segment from a
crash, never acknowledged, and is removed on start), `closed/` (durable, waiting for ingest),
`ingested/<yyyymmdd>/` (loaded, kept for audit and replay) and `rejected/` (unreadable segments, each
with a `<id>.reason.txt`; fix and move back to `closed/` to load).

A segment is UTF-8 text: a first line `#meta {json}` (entity metadata and quarantined inputs), then
CSV rows `entity,ts,value` with ts in ISO-8601 UTC, then (format 2) a last line
`#end sha256=<hex> rows=<n>`: the SHA-256 of every byte before that line, written at close and
verified at read. Segments without `format` in their meta (written before the checksum existed) are
read without it.
"""

from pv_platform.landing.format import (
    END_PREFIX,
    FORMAT,
    META_PREFIX,
    QUARANTINE_PAYLOAD_BYTES,
    REASON_SUFFIX,
    SUFFIX,
    Segment,
    SegmentError,
    TimeLimits,
    archive,
    list_closed,
    read_segment,
    reject,
    segment_path,
)
from pv_platform.landing.writer import SegmentWriter, recover_torn

__all__ = [
    "END_PREFIX", "FORMAT", "META_PREFIX", "QUARANTINE_PAYLOAD_BYTES", "REASON_SUFFIX", "SUFFIX",
    "Segment", "SegmentError", "SegmentWriter", "TimeLimits", "archive", "list_closed",
    "read_segment", "recover_torn", "reject", "segment_path",
]  # fmt: skip
