"""The demo's month of history: which window it lands (site-local months, cut where the recent back-fill
starts) and that `pvp simulate --history-only` lands it at its step with counters that end where the
recent history's begin (no counter goes backwards at the seam)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from integrations.simulator.devices import initial_energy_wh
from pv_platform.demo_history import history_window
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant
from tests.test_reports import _plant

REPO = Path(__file__).resolve().parent.parent


def test_history_window_is_the_last_closed_local_month():
    # Zurich on 2 December: November in Zurich time (UTC+1), the recent 24 h from 1 Dec 09:00 UTC
    start, end, recent_end = history_window(
        ["Europe/Zurich"], datetime(2026, 12, 2, 9, 30, tzinfo=UTC), 24
    )
    assert (start, end) == (
        datetime(2026, 10, 31, 23, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),
    )
    assert recent_end == datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    # two zones: the earliest start and latest end of their Septembers (Zurich UTC+2, Kolkata UTC+5:30)
    start, end, _ = history_window(
        ["Europe/Zurich", "Asia/Kolkata"], datetime(2026, 10, 26, 3, tzinfo=UTC), 30
    )
    assert (start, end) == (
        datetime(2026, 8, 31, 18, 30, tzinfo=UTC),
        datetime(2026, 9, 30, 22, tzinfo=UTC),
    )
    # Honolulu early on 1 December: November's end is inside the recent 24 h, cut where they start
    start, end, _ = history_window(["Pacific/Honolulu"], datetime(2026, 12, 1, 12, tzinfo=UTC), 24)
    assert (start, end) == (
        datetime(2026, 11, 1, 10, tzinfo=UTC),
        datetime(2026, 11, 30, 12, tzinfo=UTC),
    )


def test_history_only_lands_the_month_at_its_step_with_counters_ending_at_the_seam(tmp_path):
    plant = _plant()
    dump_plant(plant, tmp_path / "plant.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_PLANT_FILE=str(tmp_path / "plant.yaml"), PVP_LANDING_DIR=str(tmp_path / "landing")
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pvp"), "simulate", "--history-only", "2026-11-01T00:00Z",
         "2026-11-03T00:00Z", "--history-step-s", "300"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "history landed: 2026-11-01 00:00 to 2026-11-03 00:00 UTC" in done.stdout
    bodies = [
        read_segment(segment_path(tmp_path / "landing", s)).csv_body
        for s in list_closed(tmp_path / "landing")
    ]
    rows = pd.DataFrame(
        [line.split(",", 2) for body in bodies for line in body.splitlines()],
        columns=["key", "ts", "value"],
    )
    counter = (
        rows[rows["key"] == "testsite.inv1.ac_energy"]
        .assign(ts=lambda d: pd.to_datetime(d["ts"]), value=lambda d: d["value"].astype(float))
        .sort_values("ts")
    )
    assert len(counter) == 2 * 288  # two days every 5 minutes
    assert counter["ts"].diff().dropna().dt.total_seconds().eq(300).all()
    assert counter["value"].diff().dropna().ge(0).all()  # never backwards
    # it ends where the recent back-fill starts its counter: the seam is continuous
    device = plant.sites[0].device("inv1")
    assert counter["value"].iloc[-1] == initial_energy_wh(device)
    assert (
        counter["value"].iloc[0] < initial_energy_wh(device) - 100_000
    )  # two days of a 110-kWp array
