"""`pvp import`: a CSV or Parquet file of history into the landing, block by block, resumable.

Each block of the file becomes landing segments whose ids are fixed by the file's content, the mapping
and the block number, so an import that is run again (after a crash, Ctrl-C, or by mistake) writes the
same segments again at most, and the ingest ledger loads each once. A state file per import,
`<landing>/imports/<fingerprint>.json`, records the blocks already landed, so a re-run skips them.
Refused rows and cells land in the segments' quarantine records with their reason and never stop the
import. The segments are loaded by the same sensor and ingest job as live data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pv_platform.importing.convert import Block, Limits, long_block, resolve_columns, wide_block
from pv_platform.importing.mapping import Mapping, MappingError
from pv_platform.landing import SegmentWriter, TimeLimits, list_closed
from pv_platform.settings import get_settings

SEGMENT_ROWS = 50_000  # readings per landing segment (bigger segments ingest faster)
STATE_DIR = "imports"
_OWN_VALUES = re.compile(r"'[^']*'|\d{4}-\d\d-\d\dT[\d:.+Z-]+")


@dataclass
class Report:
    """What an import landed (or, dry, would land): per entity [rows, first ns, last ns], refusals."""

    rows: int = 0
    readings: int = 0
    segments: int = 0
    skipped_rows: int = 0  # rows of blocks an earlier run already landed
    entities: dict[str, list[int]] = field(default_factory=dict)
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    where: str = "line"  # what a refusal's number counts: CSV lines, or Parquet rows

    def add(self, block: Block) -> None:
        self.rows += block.lines
        for target, stamps, _ in block.readings:
            entry = self.entities.setdefault(target.key, [0, stamps[0], stamps[0]])
            entry[0] += stamps.size
            entry[1], entry[2] = min(entry[1], stamps.min()), max(entry[2], stamps.max())
            self.readings += stamps.size
        for line, _, reason in block.rejected:
            self.rejected += 1
            self.reasons[_kind(reason)] += 1
            if len(self.examples) < 10:
                self.examples.append(f"{self.where} {line}: {reason}")


def _kind(reason: str) -> str:
    """A reason without the row's own values (quoted text, time stamps), to count alike ones together."""
    return _OWN_VALUES.sub("…", reason)


def fingerprint(path: Path, mapping: Mapping) -> tuple[str, int]:
    """SHA-256 (first 16 hex digits) of the file's bytes and the mapping, and the file's line count."""
    digest = hashlib.sha256(mapping.model_dump_json().encode())
    lines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest()[:16], lines


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def header_and_rows(path: Path, lines: int) -> tuple[list[str], int]:
    """The file's column names and its number of data rows."""
    if _is_parquet(path):
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        return list(meta.schema_arrow.names), meta.metadata.num_rows
    return list(pd.read_csv(path, nrows=0).columns), max(0, lines - 1)


def read_blocks(
    path: Path, mapping: Mapping, block_rows: int, skip_blocks: int
) -> Iterator[pd.DataFrame]:
    """The file's data rows in blocks of `block_rows`, from block `skip_blocks` on (CSV: the time,
    device and metric columns as text; Parquet: as stored)."""
    if _is_parquet(path):
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches(batch_size=block_rows)
        for n, batch in enumerate(batches):
            if n >= skip_blocks:
                yield batch.to_pandas()
        return
    text = [mapping.time.column] + (
        [mapping.long.device, mapping.long.metric] if mapping.layout == "long" else []
    )
    skip = range(1, 1 + skip_blocks * block_rows) if skip_blocks else None
    yield from pd.read_csv(
        path, chunksize=block_rows, dtype=dict.fromkeys(text, str), skiprows=skip,
        keep_default_na=False, na_values=[""], low_memory=False,
    )  # fmt: skip


def segment_lines(block: Block) -> tuple[list[str], dict[str, dict]]:
    """The block's readings as landing CSV lines `entity,ts,value` (ts ISO UTC) and entity metadata."""
    lines: list[str] = []
    meta: dict[str, dict] = {}
    for target, stamps, values in block.readings:
        unit = "s" if not np.any(stamps % 1_000_000_000) else "us"
        iso = np.datetime_as_string(stamps.view("datetime64[ns]"), unit=unit, timezone="UTC")
        key = target.key
        lines.extend(
            f"{key},{t},{v!r}\n" for t, v in zip(iso.tolist(), values.tolist(), strict=True)
        )
        meta[key] = {"unit": target.unit, "device_class": target.device_class}
    return lines, meta


class StateFile:
    """The blocks an import has landed, kept beside the landing (written atomically)."""

    def __init__(self, landing_dir: Path, print_id: str, source: Path) -> None:
        self.path = Path(landing_dir) / STATE_DIR / f"{print_id}.json"
        self.data = {"file": str(source), "started_ns": time.time_ns(), "blocks_done": 0}
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))

    def save(self, **changes) -> None:
        self.data.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data), encoding="utf-8")
        os.replace(tmp, self.path)


IMPORT_QUIET_S = (
    300.0  # an unfinished import whose state file has not changed for this long stopped
)


def imports_landing(landing_dir: Path, now_s: float | None = None) -> list[str]:
    """What of an import is still on its way into `samples`: its closed segments waiting for ingest,
    and imports still writing (state file not complete, changed within IMPORT_QUIET_S). The KPI
    sensor waits for none of them to be left before it hands the history to one backfill.
    An import stopped half-way (Ctrl-C) does not hold history up: re-running it lands the rest."""
    now_s = time.time() if now_s is None else now_s
    waiting = [sid for sid in list_closed(landing_dir) if "-import-" in sid]
    writing = []
    for state in sorted((Path(landing_dir) / STATE_DIR).glob("*.json")):
        try:
            done = json.loads(state.read_text(encoding="utf-8")).get("complete", False)
            recent = now_s - state.stat().st_mtime < IMPORT_QUIET_S
        except (OSError, ValueError):
            continue  # being replaced, or not one of ours
        if not done and recent:
            writing.append(state.stem)
    return [f"import {s} still landing" for s in writing] + [f"segment {s}" for s in waiting]


def _land(writer: SegmentWriter, block: Block, source: str, where: str, ids: Iterator[str]) -> int:
    """Write a block's readings and refusals as segments with the ids `ids` gives; returns how many."""
    for line, payload, reason in block.rejected:
        writer.add_quarantine(source, payload.encode(), f"{where} {line}: {reason}")
    lines, meta = segment_lines(block)
    written = 0
    for i in range(0, max(len(lines), 1), SEGMENT_ROWS):
        writer.add_rows(lines[i : i + SEGMENT_ROWS], meta)
        if not writer.empty:
            writer.close_as(next(ids))
            written += 1
    return written


def _layout(mapping: Mapping, header: list[str], plant, report: Report) -> tuple[dict | None, int]:
    """The wide layout's column targets (None for the long layout) and the rows per block; a column
    the mapping needs and the file lacks is a MappingError."""
    if mapping.layout == "wide":
        targets = resolve_columns(mapping, header, plant)
        report.ignored_columns = [
            c for c in header if c not in targets and c != mapping.time.column
        ]
        return targets, max(1000, get_settings().import_block_readings // max(1, len(targets)))
    missing = [c for c in (mapping.time.column, mapping.long.device, mapping.long.metric,
                           mapping.long.value) if c not in header]  # fmt: skip
    if missing:
        raise MappingError(f"column(s) {missing} not in the file (it has {header[:20]})")
    return None, get_settings().import_block_readings


def _writer(landing_dir: Path, print_id: str) -> SegmentWriter:
    """The import's own segment writer: it closes segments itself, and its quarantine is never limited
    (every refused row of a file is recorded)."""
    return SegmentWriter(
        landing_dir, f"import-{print_id}", max_rows=10**9, max_age_s=1e12,
        quarantine_burst=10**9, quarantine_per_s=1e9,
    )  # fmt: skip


def import_file(
    path: Path, mapping: Mapping, plant, landing_dir: Path | None, progress=None
) -> Report:
    """Import `path` into `landing_dir` (None: a dry run that writes nothing) and report."""
    t0 = time.perf_counter()
    path = Path(path)
    print_id, lines = fingerprint(path, mapping)
    header, total = header_and_rows(path, lines)
    report = Report(where="row" if _is_parquet(path) else "line")
    limits = Limits.of(TimeLimits.for_plant(plant))
    targets, block_rows = _layout(mapping, header, plant, report)
    state = StateFile(landing_dir, print_id, path) if landing_dir else None
    done = state.data["blocks_done"] if state else 0
    if state and state.data.get("complete"):
        report.skipped_rows = total
        return report
    report.skipped_rows = min(total, done * block_rows)
    writer = _writer(landing_dir, print_id) if landing_dir else None
    if progress is not None:
        progress.reset(total=total)
        progress.update(report.skipped_rows)
    for n, frame in enumerate(read_blocks(path, mapping, block_rows, done), start=done):
        line0 = n * block_rows + (1 if report.where == "row" else 2)  # CSV line 1 is the header
        block = (
            wide_block(frame, line0, mapping, targets, limits)
            if mapping.layout == "wide"
            else long_block(frame, line0, mapping, plant, limits)
        )
        report.add(block)
        if writer is not None:
            ids = (
                f"{state.data['started_ns']:020d}-import-{print_id}-{n:06d}-{p:04d}"
                for p in range(10**4)
            )
            report.segments += _land(writer, block, f"import:{path.name}", report.where, ids)
            state.save(blocks_done=n + 1)
        if progress is not None:
            progress.update(len(frame))
    if state is not None:
        state.save(complete=True, rows=report.rows + report.skipped_rows)
    report.seconds = time.perf_counter() - t0
    return report
