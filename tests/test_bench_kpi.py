"""`python -m bench.kpi` at a small size: it runs end to end and writes every hourly and daily row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pv_platform.storage import Database
from tests.conftest import scalar

ROOT = Path(__file__).resolve().parents[1]


def test_kpi_benchmark_runs_and_writes_every_row(pg_url):
    out = subprocess.run(
        [sys.executable, "-m", "bench.kpi", "--days", "7", "--inverters", "3", "--database-url", pg_url],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    assert "hourly rows written: 672;" in out  # 7 days x 24 h x (3 inverters + the site)
    ratio = float(re.search(r"hourly\+checks\+daily, 2 procs\s+[\d.]+\s+([\d.]+)", out).group(1))
    assert ratio > 0
    db = Database(pg_url)
    try:
        assert scalar(db, "SELECT count(*) FROM kpi_hourly") == 672
        # local days of Europe/Zurich touching the week: 8 (the first starts at 23:00 UTC the day before)
        assert scalar(db, "SELECT count(DISTINCT period_start) FROM kpi_daily") == 8
        energy = scalar(db, "SELECT sum(energy_ac_kwh) FROM kpi_hourly WHERE device_id = '*'")
        daily = scalar(db, "SELECT sum(energy_ac_kwh) FROM kpi_daily WHERE device_id = '*'")
        assert energy > 0 and abs(daily - energy) < 1e-6 * energy
    finally:
        db.dispose()
