"""The Losses page in Debian's headless Chromium against a real PostgreSQL holding 800 days of a site's
loss analytics (`analyse_site` over seeded daily KPIs, written by the storage module as the asset does):
the cards show the stored sums and rate, the charts draw, a deep link picks site, device, range and
grain. Screenshot to tests/artifacts/screenshots/losses.png."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from pv_platform.analytics.losses import analyse_site
from pv_platform.analytics.site_checks import Finding
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.loss_seed import daily_kpis
from tests.test_dashboard_browser import SHOTS, open_page, serve, text_of

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="`make test` installs Debian's chromium first"
)


@pytest.fixture(scope="module")
def served(pg_admin_url, mqtt_url, tmp_path_factory):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("losses")
    name = f"pvp_losses_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    plant_dict = demo_plant_dict([15020, 15021])
    plant_dict["sites"][0].update(tariff_per_kwh=0.12, currency="CHF")
    plant = parse_plant(plant_dict)
    dump_plant(plant, tmp / "plant.yaml")
    today = datetime.now(UTC).date()
    daily, truth = daily_kpis("testsite", (("inv1", 110.0), ("inv2", 110.0)),
                              start=str(today - timedelta(days=800)), days=800)  # fmt: skip
    losses, degradation = analyse_site(daily, "testsite")
    db.losses.replace_daily("testsite", losses)
    db.losses.replace_degradation("testsite", degradation)
    db.kpis.replace("kpi_daily", daily["period_start"].min(), today_utc(), daily)
    # yesterday's detector outcomes as the hourly asset stores them: a power stuck at 21-22 h UTC, clipping at noon
    noon = datetime.combine(today - timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        hours=12
    )
    flagged = {
        noon: "clipping",
        noon + timedelta(hours=9): "stale_values",
        noon + timedelta(hours=10): "stale_values",
    }
    outcomes = [{"period_start": h, "site_id": "testsite", "check_name": c, "passed": False, "severity": "WARN",
                 "detail": f"{c}: inv1.ac_power", "metadata": {"entity_keys": ["testsite.inv1.ac_power"]}}
                for h, c in flagged.items()]  # fmt: skip
    # every other check of the day's 24 hours passed (what the Quality page counts as judged)
    for hour in (noon - timedelta(hours=12) + timedelta(hours=i) for i in range(24)):
        for check in ("stale_values", "interpolated_values", "clipping", "completeness"):
            if flagged.get(hour) != check:
                outcomes.append({"period_start": hour, "site_id": "testsite", "check_name": check,
                                 "passed": True, "severity": "WARN", "detail": "ok", "metadata": {}})  # fmt: skip
    # the loss analytics' sensor checks: wx1's POA reads 91 % of the clear sky, the clock is right
    findings = [
        Finding("irradiance_clearsky", "testsite", "wx1", False,
                "wx1 reads 91.0% of the clear-sky POA on 5 clear days (more than 5% off: drifting, dirty or shaded)"),
        Finding("clock_shift", "testsite", "*", True, "noon +3 min from the solar noon"),
    ]  # fmt: skip
    db.losses.replace_findings("testsite", findings, noon - timedelta(days=14), noon)
    db.kpis.replace(
        "kpi_hourly",
        noon - timedelta(hours=12),
        noon + timedelta(hours=12),
        daily.iloc[:0],
        quality=outcomes,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp / "plant.yaml"), PVP_MQTT_URL=mqtt_url,
               PVP_LIVE_TOPIC_PREFIX=f"pvp/losstest/{os.getpid()}")  # fmt: skip
    port = free_port(5410)
    proc = serve(env, port)
    yield {
        "db": db,
        "url": f"http://127.0.0.1:{port}/app",
        "losses": losses,
        "degradation": degradation,
    }
    proc.terminate()
    proc.wait(10)
    db.dispose()
    drop_database(pg_admin_url, name)


def today_utc() -> datetime:
    return datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


def test_history_marks_the_hours_with_failed_detector_checks(served, browser):
    page = open_page(browser, f"{served['url']}?page=1&site=testsite&days=7&grain=day")
    page.wait_for_selector("text=data-quality flags", timeout=30_000)
    note = page.locator("text=data-quality flags").first.locator("xpath=..").inner_text()
    assert "data-quality flags: stale_values 2 h, clipping 1 h" in note, note
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "history-quality.png"))


def test_the_losses_page_shows_the_stored_analytics(served, browser):
    losses, degradation = served["losses"], served["degradation"].set_index("device_id")
    page = open_page(browser, f"{served['url']}?page=5&site=testsite&days=3660&grain=month")
    site_rows = losses[losses["device_id"] == "*"]
    soiling = site_rows["soiling_kwh"].sum()
    assert text_of(page, "[data-kpi='loss-soiling']", 30_000) == f"{soiling:,.0f} kWh"
    rate = degradation.loc["*", "rate_pct_per_year"]
    assert text_of(page, "[data-kpi='loss-degradation']") == f"{rate:+.2f} %/y"
    lost = site_rows["reference_kwh"].sum() - site_rows["measured_kwh"].sum()
    assert text_of(page, "[data-kpi='loss-total']") == f"{lost:,.0f} kWh"
    assert page.locator("text=CHF").count() >= 1  # the money at the site's tariff
    page.wait_for_timeout(1500)
    # four Bokeh charts drew (waterfall, per period, soiling, degradation): each is a canvas
    assert (
        page.locator("div.bk-Canvas, .bk-Canvas").count() >= 4
        or page.locator("canvas").count() >= 4
    )
    page.screenshot(path=str(SHOTS / "losses.png"), full_page=True)
    # a deep link to one inverter and its last 30 days
    page.goto(f"{served['url']}?page=5&site=testsite&device=inv2&days=30&grain=day")
    inv2 = losses[losses["device_id"] == "inv2"]
    today = datetime.now(ZoneInfo("Europe/Zurich")).date()
    first = pd.Timestamp(today - timedelta(days=29)).tz_localize("Europe/Zurich")
    expected = inv2.loc[
        inv2["period_start"] >= first, "soiling_kwh"
    ].sum()  # the last 30 local days
    assert text_of(page, "[data-kpi='loss-soiling']", 30_000) == f"{expected:,.0f} kWh"
    assert page.locator("text=inv2").count() >= 1


def test_the_quality_page_shows_the_masks_per_device_and_hour(served, browser):
    """The seeded day: 24 hours judged by four checks, inv1's AC power stale at 21-22 h UTC and clipped at
    noon (3 hours flagged), wx1's POA sensor failing the clear-sky check; filtered to inv2 nothing is
    flagged (inv1's flags are not inv2's)."""
    page = open_page(browser, f"{served['url']}?page=6&site=testsite&days=7")
    assert text_of(page, "[data-kpi='q-judged']", 30_000) == "24"
    assert text_of(page, "[data-kpi='q-flagged']") == "3"
    assert text_of(page, "[data-kpi='q-stale']") == "2 h"
    assert text_of(page, "[data-kpi='q-clipping']") == "1 h"
    assert text_of(page, "[data-kpi='q-interpolated']") == "0 h"
    assert text_of(page, "[data-kpi='q-sensors']") == "1"
    table = page.locator("[name='quality-table'], .tabulator").first
    table.wait_for(timeout=30_000)
    page.wait_for_selector("text=ac_power", timeout=30_000)
    rows = page.locator(".tabulator-row").all_inner_texts()
    flagged = [r for r in rows if "ac_power" in r]
    assert len(flagged) == 3 and all("inv1" in r for r in flagged), rows
    assert sum("stale_values" in r for r in flagged) == 2
    assert any("POA vs clear sky" in r and "FAILED" in r and "91.0%" in r for r in rows), rows
    assert any("clock vs sun" in r and "passed" in r for r in rows), rows
    page.wait_for_timeout(1500)
    assert page.locator("canvas").count() >= 1  # the check × hour chart drew
    page.screenshot(path=str(SHOTS / "quality.png"), full_page=True)
    page.goto(f"{served['url']}?page=6&site=testsite&device=inv2&days=7")
    assert text_of(page, "[data-kpi='q-flagged']", 30_000) == "0"
    assert text_of(page, "[data-kpi='q-judged']") == "24"
