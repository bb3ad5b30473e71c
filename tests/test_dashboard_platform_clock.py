"""The Live and Alerts pages read "now" from the platform clock (issue 17): while the simulator,
collector and Dagster run accelerated they share it through `<landing>/clock.json`, and the pages show
ages on it, not on the wall clock (which is months after the simulated readings). Debian's headless
Chromium against `pvp dashboard`; the clock file is written as `pvp simulate` writes it."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.clock import CLOCK_FILE, HEARTBEAT_S
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.test_dashboard_browser import SHOTS, open_page, serve

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
OPENED = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
SIMULATED_NOW = OPENED + timedelta(minutes=40)  # the shared clock reads this when the test starts


def _keep_clock(path: Path, stop: threading.Event) -> None:
    """As a running simulator does: keep the clock file fresh (a stale one belongs to nobody)."""
    while not stop.wait(HEARTBEAT_S):
        os.utime(path)


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
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    clock_file = landing / CLOCK_FILE  # speed 1, so the ages do not run away while the page loads
    clock_file.write_text(json.dumps({"start": SIMULATED_NOW.isoformat(), "speed": 1.0,
                                      "anchor": time.time()}))  # fmt: skip
    stop = threading.Event()
    threading.Thread(target=_keep_clock, args=(clock_file, stop), daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp_path / "plant.yaml"),
               PVP_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    port = free_port(5350)
    proc = serve(env, port)
    try:
        page = open_page(browser, f"http://127.0.0.1:{port}/app?page=0")  # Live
        page.wait_for_selector("text=string_fault on inv2", timeout=30_000)
        shown = page.get_by_text(re.compile(r"string_fault on inv2")).first.inner_text()
        # 40 min on the platform clock (plus the seconds the page took); the wall clock would say
        # months
        assert 40 <= _minutes(shown, r"12:00 \((\d+) min ago\)") <= 42, shown
        page.goto(f"http://127.0.0.1:{port}/app?page=2")  # Alerts: the incident, open for 40 min
        page.wait_for_selector("text=Incidents (one per root cause)", timeout=30_000)
        page.wait_for_selector(".tabulator-row >> text=string_fault on inv2", timeout=30_000)
        row = page.locator(".tabulator-row", has_text="inv2").first.inner_text()
        assert 40 <= _minutes(row, r"\b(\d+) min\b") <= 42, row
        page.screenshot(path=str(SHOTS / "alerts-platform-clock.png"))
        page.close()
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
        db.dispose()
        drop_database(pg_admin_url, name)
