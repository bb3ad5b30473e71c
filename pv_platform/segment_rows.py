"""A landing segment's rows as columns: entity codes, times and values as numpy arrays, checked without a
Python object per row (the ingest job's hot path). Anything unusual in a body (a control character, a
row that is not three fields, a time without zone) returns None, and the landing's row-by-row reader
then finds and names the row exactly."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pv_platform.readings import ENTITY_KEY_PATTERN

_ENTITY = re.compile(ENTITY_KEY_PATTERN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Columns:
    """Rows of a segment: `keys[codes[i]]`, `ts_us[i]` (µs since 1970 UTC), `values[i]`."""

    keys: list[str]
    codes: np.ndarray  # int64 index into keys
    ts_us: np.ndarray  # int64
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.values)

    def has_duplicates(self) -> bool:
        """Whether two rows share an entity and a time (then only one of them may be inserted)."""
        if len(self) < 2:
            return False
        order = np.lexsort((self.ts_us, self.codes))
        codes, stamps = self.codes[order], self.ts_us[order]
        return bool(np.any((codes[1:] == codes[:-1]) & (stamps[1:] == stamps[:-1])))


EMPTY = Columns([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


def _micros(stamp: str) -> int | None:
    """µs since 1970 UTC of an ISO time with zone, parsed as the row-by-row reader does; None else."""
    try:
        ts = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if ts.tzinfo is None:
        return None
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_columns(body: str) -> Columns | None:
    """The rows of a well-formed body as Columns; None when any row needs the row-by-row reader."""
    if not body:
        return EMPTY
    lines = body.count("\n")
    if body.count(",") != 2 * lines or not body.endswith("\n"):
        return None  # a row of other than three fields, or cut off
    if not body.replace("\n", "").isprintable():
        return None
    try:
        frame = pd.read_csv(
            io.StringIO(body), header=None, names=["e", "t", "v"], dtype={"e": str, "t": str},
            quoting=csv.QUOTE_NONE, skip_blank_lines=False,  # pandas 3 reads floats exactly
            na_filter=False, index_col=False, engine="c",
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError):
        return None
    if len(frame) != lines or frame["v"].dtype != np.float64:
        return None
    codes, keys = pd.factorize(frame["e"])
    if any(not isinstance(k, str) or not _ENTITY.match(k) for k in keys):
        return None
    t_codes, stamps = pd.factorize(frame["t"])
    micros = [_micros(s) if isinstance(s, str) else None for s in stamps]
    if any(m is None for m in micros):
        return None
    return Columns(
        list(keys),
        codes.astype(np.int64),
        np.asarray(micros, dtype=np.int64)[t_codes],
        frame["v"].to_numpy(dtype=np.float64),
    )


def all_accepted(cols: Columns, limits) -> bool:
    """Whether every row has a finite value and a time inside `limits` (a `landing.TimeLimits`: from
    the site's commissioning to MAX_FUTURE ahead); when not, the row-by-row reader quarantines them."""
    if not len(cols):
        return True
    earliest = [
        limits.earliest_by_site.get(k.partition(".")[0], limits.default_earliest) for k in cols.keys
    ]
    earliest_us = np.array([_micros(t.isoformat()) for t in earliest], dtype=np.int64)
    latest_us = _micros(limits.latest.isoformat())
    return bool(
        np.isfinite(cols.values).all()
        and (cols.ts_us >= earliest_us[cols.codes]).all()
        and (cols.ts_us <= latest_us).all()
    )
