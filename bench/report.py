"""Results of one benchmark for `make bench`'s table: each bench prints its own report and, when
PVP_BENCH_JSON names a file, appends its ratios there as JSON lines."""

from __future__ import annotations

import json
import os


def emit(bench: str, measure: str, value: float, unit: str, limit_name: str, limit: float,
         target: str, met: bool) -> None:  # fmt: skip
    """One row: `value` measured beside `limit` (measured in the same run); ratio = value / limit."""
    path = os.environ.get("PVP_BENCH_JSON")
    if not path:
        return
    row = {
        "bench": bench, "measure": measure, "value": value, "unit": unit, "limit_name": limit_name,
        "limit": limit, "ratio": value / limit if limit else None, "target": target, "met": met,
    }  # fmt: skip
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
