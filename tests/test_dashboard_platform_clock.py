"""The Live and Alerts pages read "now" from the platform clock (issue 17), and the History, Losses and
Quality pages end their default ranges on its date: while the simulator, collector and Dagster run
accelerated they share it through `<landing>/clock.json`, and the pages show ages and dates on it, not
on the wall clock (which is months after the simulated readings). Debian's headless
Chromium against `pvp dashboard`; the clock file is written as `pvp simulate` writes it."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.analytics.waterfall import CAUSES
from pv_platform.clock import CLOCK_FILE, HEARTBEAT_S
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.test_dashboard_browser import SHOTS, open_page, serve, stop_server, text_of

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
OPENED = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
SIMULATED_NOW = OPENED + timedelta(minutes=40)  # the shared clock reads this when the test starts


def _keep_clock(path: Path, stop: threading.Event) -> None:
    """As a running simulator does: keep the clock file fresh (a stale one belongs to nobody)."""
    while not stop.wait(HEARTBEAT_S):
        os.utime(path)


def _clocked_server(tmp_path: Path, url: str, start: datetime, speed: float, port_base: int):
    """`pvp dashboard` on the database `url` and a shared clock reading `start` now and running `speed`
    times fast, written and kept fresh as `pvp simulate` does: (process, port, event that stops the
    clock's heartbeat)."""
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    clock_file = landing / CLOCK_FILE
    clock_file.write_text(json.dumps({"start": start.isoformat(), "speed": speed,
                                      "anchor": time.time()}))  # fmt: skip
    stop = threading.Event()
    threading.Thread(target=_keep_clock, args=(clock_file, stop), daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp_path / "plant.yaml"),
               PVP_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    port = free_port(port_base)
    return serve(env, port), port, stop


def _minutes(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, text
    return int(found.group(1))


def test_live_and_alerts_pages_show_ages_on_the_shared_platform_clock(
    pg_admin_url, browser, tmp_path
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"pvp_pageclock_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    dump_plant(parse_plant(demo_plant_dict([15030, 15031])), tmp_path / "plant.yaml")
    fault = AlertCandidate("string_fault", Severity.HIGH, "testsite", "inv2",
                           "string_fault on inv2", OPENED, "mppt1")  # fmt: skip
    AlertLifecycle(AlertStore(db.engine)).process([fault], OPENED, set())
    # speed 1, so the ages do not run away while the page loads
    proc, port, stop = _clocked_server(tmp_path, url, SIMULATED_NOW, 1.0, 5350)
    try:
        # the first session imports every page's modules: ~30 s on a loaded 2-core machine
        urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=180).read()
        page = open_page(browser, f"http://127.0.0.1:{port}/app?page=0")  # Live
        page.wait_for_selector("text=string_fault on inv2", timeout=30_000)
        shown = page.get_by_text(re.compile(r"string_fault on inv2")).first.inner_text()
        # 40 min on the platform clock (plus the seconds the page took); the wall clock would say
        # months
        assert 40 <= _minutes(shown, r"12:00 \((\d+) min ago\)") <= 42, shown
        page.goto(f"http://127.0.0.1:{port}/app?page=2")  # Alerts: the incident, open for 40 min
        page.wait_for_selector("text=Incidents (one per root cause)", timeout=30_000)
        # the incident's row (its duration in minutes): the alerts table refreshes before the
        # incidents table, and an alert's row also reads "string_fault on inv2"
        rows = page.locator(".tabulator-row", has_text="inv2").filter(
            has_text=re.compile(r"\d+ min")
        )
        rows.first.wait_for(timeout=30_000)
        row = rows.first.inner_text()
        assert 40 <= _minutes(row, r"\b(\d+) min\b") <= 42, row
        page.screenshot(path=str(SHOTS / "alerts-platform-clock.png"))
        page.close()
    finally:
        stop.set()
        stop_server(proc)
        db.dispose()
        drop_database(pg_admin_url, name)


# 12:00 in Zurich (UTC+1 in March) on the platform clock; the wall clock is years later
SHIFTED_NOW = datetime(2024, 3, 10, 11, 0, tzinfo=UTC)
SESSION_MS = 120_000  # a new session (each deep link) took over 30 s on a loaded 2-core machine
ZURICH_DAYS = [
    datetime(2024, 3, d - 1, 23, tzinfo=UTC) for d in range(6, 11)
]  # 03-06 … 03-10 local


def _loss_day(day: datetime, scale: float) -> dict:
    """A hand-made waterfall day of the site: cause i (1..10) loses i × scale kWh (55 × scale in all)."""
    causes = {f"{c}_kwh": (i + 1) * scale for i, c in enumerate(CAUSES)}
    return {"site_id": "testsite", "device_id": "*", "period_start": day, "reference_kwh": 500.0 * scale,
            "measured_kwh": 500.0 * scale - sum(causes.values()), **causes, "performance_index": 1.0,
            "soiling_ratio": 1.0, "soiling_ratio_low": 0.99, "soiling_ratio_high": 1.0,
            "cleaning": False, "degradation_factor": 1.0}  # fmt: skip


def test_history_losses_and_quality_ranges_end_on_the_platform_clock_date(
    pg_admin_url, browser, tmp_path
):
    """The Quality, Losses and History pages took "today" from the wall clock: with the platform clock
    at 2024-03-10 (60× accelerated, as `pvp simulate --start 2024-03-10 --speed 60` runs it) their
    default ranges ended years after the data and showed nothing. Now they end on the platform date."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"pvp_pagedate_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    dump_plant(parse_plant(demo_plant_dict([15032, 15033])), tmp_path / "plant.yaml")
    # five local days of losses, the n-th (from 03-06) with scale n: the last three lose 55 × 12 kWh
    db.losses.replace_daily("testsite", pd.DataFrame(
        [_loss_day(day, n + 1.0) for n, day in enumerate(ZURICH_DAYS)]))  # fmt: skip
    # 12 hours of 03-10 judged by two checks, clipping flagged at 10:00 UTC
    hours = [datetime(2024, 3, 10, h, tzinfo=UTC) for h in range(12)]
    outcomes = [{"period_start": h, "site_id": "testsite", "check_name": check,
                 "passed": not (check == "clipping" and h.hour == 10), "severity": "WARN",
                 "detail": f"{check}: inv1.ac_power", "metadata": {"entity_keys": ["testsite.inv1.ac_power"]}}
                for h in hours for check in ("stale_values", "clipping")]  # fmt: skip
    no_kpis = pd.DataFrame(columns=["site_id", "device_id", "period_start"])
    db.kpis.replace(
        "kpi_hourly", hours[0], hours[-1] + timedelta(hours=1), no_kpis, quality=outcomes
    )
    proc, port, stop = _clocked_server(tmp_path, url, SHIFTED_NOW, 60.0, 5360)
    try:
        base = f"http://127.0.0.1:{port}/app"
        # the first session imports every page's modules: 40 s on a loaded 2-core machine
        urllib.request.urlopen(base, timeout=180).read()
        page = open_page(browser, f"{base}?page=5&site=testsite")  # Losses, its default 365 days
        assert text_of(page, "[data-kpi='loss-total']", 30_000) == f"{55 * 15:,.0f} kWh"  # all five
        page.goto(
            f"{base}?page=5&site=testsite&days=3&grain=day", timeout=SESSION_MS
        )  # 03-08 … 03-10
        assert text_of(page, "[data-kpi='loss-soiling']", 30_000) == f"{8 * 12:,.0f} kWh"
        assert text_of(page, "[data-kpi='loss-total']") == f"{55 * 12:,.0f} kWh"
        page.screenshot(path=str(SHOTS / "losses-platform-clock.png"))
        page.goto(
            f"{base}?page=6&site=testsite&days=1", timeout=SESSION_MS
        )  # Quality: the platform clock's today
        assert text_of(page, "[data-kpi='q-judged']", 30_000) == "12"
        assert text_of(page, "[data-kpi='q-clipping']") == "1 h"
        page.screenshot(path=str(SHOTS / "quality-platform-clock.png"))
        page.goto(
            f"{base}?page=1&site=testsite", timeout=SESSION_MS
        )  # History: the last 7 days to the platform date
        deadline = time.monotonic() + 60  # the date picker's input (in Bokeh's shadow DOM)
        values: list = []
        while not any("2024-03-10" in v for v in values) and time.monotonic() < deadline:
            page.wait_for_timeout(500)
            values = page.locator("input").evaluate_all("els => els.map(e => e.value)")
        assert any("2024-03-04" in v and "2024-03-10" in v for v in values), values
        page.close()
    finally:
        stop.set()
        stop_server(proc)
        db.dispose()
        drop_database(pg_admin_url, name)
