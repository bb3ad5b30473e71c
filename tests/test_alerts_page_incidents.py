"""The Alerts page in Debian's headless Chromium shows incidents with their symptoms (issue 17 item 4):
a grid outage and the alerts it explains are one row, an unrelated string fault another."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.test_dashboard_browser import SHOTS, open_page, serve

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
T0 = datetime(2026, 6, 21, 10, 40, tzinfo=UTC)


def test_the_alerts_page_lists_incidents_with_their_symptoms(pg_admin_url, browser, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"pvp_incidents_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    spec = demo_plant_dict([15020, 15021])
    spec["sites"][0] |= {"tariff_per_kwh": 0.2, "currency": "CHF"}
    dump_plant(parse_plant(spec), tmp_path / "plant.yaml")
    engine = AlertLifecycle(AlertStore(db.engine), kinds={("testsite", "wx1"): "weather_station"})

    def c(rule, device, ts, severity=Severity.MEDIUM, key="", hour=None):
        context = {"hour": hour.isoformat()} if hour else {}
        return AlertCandidate(
            rule, severity, "testsite", device, f"{rule} on {device}", ts, key, context
        )

    grid = c("grid_outage", "meter1", T0, Severity.CRITICAL)
    engine.process([grid], T0, set())
    engine.process(
        [grid, c("availability_drop", "inv1", T0 + timedelta(minutes=20), hour=T0.replace(minute=0)),
         c("data_quality", "meter1", T0 + timedelta(minutes=20), key="physical_ranges",
           hour=T0.replace(minute=0))],
        T0 + timedelta(minutes=20), set(),
    )  # fmt: skip
    for minutes in (60, 63):  # the grid is back: clear, resolved after the hold; the incident ends
        engine.process([], T0 + timedelta(minutes=minutes))
    later = T0 + timedelta(hours=3)
    engine.process([c("string_fault", "inv2", later, Severity.HIGH, "mppt1")], later, set())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp_path / "plant.yaml"))
    port = free_port(5340)
    proc = serve(env, port)
    try:
        page = open_page(browser, f"http://127.0.0.1:{port}/app?page=2")
        page.wait_for_selector("text=Incidents (one per root cause)", timeout=30_000)
        page.wait_for_selector("text=string_fault on inv2", timeout=30_000)  # open: shown at once
        assert page.locator(".tabulator-row", has_text="grid_outage on meter1").count() == 0
        state = page.locator("select", has=page.locator("option", has_text="acknowledged"))
        state.select_option(label="all")  # State: all (the grid incident ended)
        # the alerts table refreshes before the incidents table: wait for the incident's own row,
        # the one listing its symptoms (an alert's row also reads "grid_outage on meter1")
        rows = page.locator(".tabulator-row", has_text="availability_drop inv1 (resolved)")
        rows.first.wait_for(timeout=30_000)
        text = rows.first.inner_text()
        assert "grid_outage on meter1" in text and "data_quality meter1" in text, text
        assert "string_fault" not in text and "2026-06-21 11:43" in text, text  # its end
        assert "inv1, meter1" in text and "CRITICAL" in text, text
        assert page.locator(".tabulator-row", has_text="string_fault on inv2").count() >= 1
        page.screenshot(path=str(SHOTS / "alerts-incidents.png"))
        page.close()
    finally:
        proc.terminate()
        proc.wait(10)
        db.dispose()
        drop_database(pg_admin_url, name)
