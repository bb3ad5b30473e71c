"""The History page's CSV and Parquet downloads in Debian's headless Chromium, on the seeded database of
the browser tests: the files hold the rows the page shows, at full precision, units in the headers."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq

from tests.test_dashboard_browser import open_page, site  # noqa: F401 (fixture)

HEADERS = [
    "site",
    "period (Europe/Zurich)",
    "energy [kWh]",
    "expected [kWh]",
    "yield [kWh/kWp]",
    "PR [fraction]",
    "PR 25 °C [fraction]",
    "availability [fraction]",
    "capacity factor [fraction]",
    "insolation [kWh/m²]",
]
COLUMNS = {
    "energy [kWh]": "energy_ac_kwh",
    "expected [kWh]": "energy_expected_kwh",
    "yield [kWh/kWp]": "final_yield_h",
    "PR [fraction]": "pr",
    "PR 25 °C [fraction]": "pr_temp_iec",
    "availability [fraction]": "availability_time",
    "capacity factor [fraction]": "capacity_factor_ac",
    "insolation [kWh/m²]": "insolation_poa_kwh_m2",
}


def daily_rows_shown(db) -> dict[str, pd.Series]:
    """The site's daily KPI rows of the page's default range (the last 7 local days), by local date."""
    zone = ZoneInfo("Europe/Zurich")
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = db.kpis.read(
        "kpi_daily", today - timedelta(days=6), today + timedelta(days=1), "testsite", "*"
    )
    return {
        r.period_start.tz_convert(zone).strftime("%Y-%m-%d 00:00"): r for _, r in rows.iterrows()
    }


def download(page, label: str) -> tuple[str, bytes]:
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name=label).click()
    return info.value.suggested_filename, info.value.path().read_bytes()


def test_history_downloads_hold_the_rows_shown_with_units(site, browser):  # noqa: F811
    page = open_page(browser, f"{site['url']}?page=1&site=testsite&days=7&grain=day")
    page.wait_for_selector("text=daily rows", timeout=30_000)
    expected = daily_rows_shown(site["db"])
    assert len(expected) >= 3  # three seeded days (four local dates when UTC and local differ)

    today = datetime.now(ZoneInfo("Europe/Zurich")).date()
    stem = f"pvp-history-testsite-site-day-{today - timedelta(days=6)}-{today}"
    name, data = download(page, "Download CSV")
    assert name == f"{stem}.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert list(rows[0]) == HEADERS
    assert sorted(r["period (Europe/Zurich)"] for r in rows) == sorted(expected)
    for r in rows:
        db_row = expected[r["period (Europe/Zurich)"]]
        assert r["site"] == "testsite"
        for header, column in COLUMNS.items():
            want = float(db_row[column])
            assert (r[header] == "") if pd.isna(want) else float(r[header]) == want, header

    name, data = download(page, "Download Parquet")
    assert name == f"{stem}.parquet"
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == HEADERS
    assert table.schema.field("energy [kWh]").metadata == {b"unit": b"kWh"}
    for r in table.to_pylist():
        db_row = expected[r["period (Europe/Zurich)"]]
        assert r["energy [kWh]"] == float(db_row["energy_ac_kwh"])
        assert r["PR [fraction]"] == float(db_row["pr"]) or pd.isna(db_row["pr"])
    page.close()
