"""The Reports page in Debian's headless Chromium, on the seeded database of the browser tests: the
site's stored reports are listed with their figures, and the PDF and HTML downloads are the stored ones."""

from __future__ import annotations

from datetime import UTC, datetime

from pv_platform.kpi.calendar import local_window
from pv_platform.plant import load_plant
from pv_platform.reports.publish import publish_report
from pv_platform.settings import Settings
from tests.test_dashboard_browser import open_page, site  # noqa: F401 (fixture)
from tests.test_dashboard_download import download
from tests.test_reports import pdf_pages


def test_reports_page_lists_and_downloads_the_stored_reports(site, browser):  # noqa: F811
    db = site["db"]
    now = datetime.now(UTC)
    month = f"{now.year - (now.month == 1)}-{(now.month - 2) % 12 + 1:02d}"  # the last closed month
    plant_site = load_plant(site["tmp"] / "plant.yaml").site("testsite")
    bounds = local_window(f"{month}-01", "monthly", plant_site.timezone)
    published = publish_report(db, plant_site, "monthly", f"{month}-01", bounds, Settings(), now)

    page = open_page(browser, f"{site['url']}?page=4&site=testsite")
    page.wait_for_selector("text=1 report(s) of testsite", timeout=30_000)
    row = page.locator(
        "[name='reports-table'] .tabulator-row, .tabulator-row", has_text=month
    ).first
    energy = published.summary.get("energy_ac_kwh")
    if energy is not None:
        assert f"{round(energy, 1)}" in row.inner_text()
    name, pdf = download(page, "Download PDF")
    assert name == f"pvp-report-testsite-{month}.pdf"
    assert pdf == db.reports.document("testsite", "monthly", month, "pdf")
    assert f"monthly report {month}" in pdf_pages(pdf)[0][0]
    name, html = download(page, "Download HTML")
    assert name == f"pvp-report-testsite-{month}.html"
    assert html == db.reports.document("testsite", "monthly", month, "html")
    page.close()
