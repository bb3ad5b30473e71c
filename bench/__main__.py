"""`make bench` / `python -m bench`: run every benchmark under bench/ (each in its own process, at its
default size) and print one table of their ratios against the limits measured in the same runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = [
    ("collector", ["-m", "bench.collector"]),
    ("kpi", ["-m", "bench.kpi"]),
    ("dashboard", ["-m", "bench.dashboard"]),
    ("first_kpis", ["-m", "bench.first_kpis"]),
    ("losses", ["-m", "bench.losses"]),
    ("ingest", ["-m", "bench.ingest"]),
    ("history", ["-m", "bench.history"]),
    ("alert_scores", ["-m", "bench.alert_scores"]),
    ("fleet", ["-m", "bench.fleet"]),
]


def machine() -> str:
    cpus = os.cpu_count()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {cpus} cores, {mem_gb:.0f} GiB, Python {platform.python_version()}"
    )


def main() -> int:
    only = set(sys.argv[1:])
    out = Path(tempfile.mkstemp(prefix="pvp-bench-", suffix=".jsonl")[1])
    env = {**os.environ, "PVP_BENCH_JSON": str(out)}
    failed = []
    for name, args in BENCHES:
        if only and name not in only:
            continue
        print(f"\n=== bench {name} ===", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, *args], env=env)
        print(f"(bench {name}: {time.perf_counter() - t0:.0f} s, exit {code})", flush=True)
        if code:
            failed.append(name)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line]
    print(f"\nPV Platform benchmarks on {machine()}, {time.strftime('%Y-%m-%d')}")
    print(
        f"{'bench':<10} {'measure':<44} {'value':>12} {'limit (same run)':<34} {'ratio':>8} {'target':<12} met"
    )
    for r in rows:
        value = f"{r['value']:,.3g} {r['unit']}".strip()
        limit = f"{r['limit_name']}: {r['limit']:,.3g}"
        ratio = f"{r['ratio']:.3g}" if r["ratio"] is not None else "—"
        print(f"{r['bench']:<10} {r['measure']:<44} {value:>12} {limit:<34} {ratio:>8} {r['target']:<12} {'yes' if r['met'] else 'NO'}")  # fmt: skip
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
