"""Issue 20's done-criterion: `pvp demo` as a user starts it shows the report of the last closed month of
its back-filled data - made by the daemon alone, from every hour of that month, on the Reports page
(downloaded in Chromium) and through the HTTP API with the demo's token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import Request, urlopen
from zoneinfo import ZoneInfo

import psycopg
import pytest

from pv_platform.plant import load_plant
from tests.conftest import wait_for
from tests.test_dashboard_download import download
from tests.test_reports import pdf_pages

REPO = Path(__file__).resolve().parent.parent


def last_closed_month(timezone: str) -> str:
    local = datetime.now(UTC).astimezone(ZoneInfo(timezone))
    return f"{local.year - (local.month == 1)}-{(local.month - 2) % 12 + 1:02d}"


@pytest.mark.slow
@pytest.mark.timeout(2700)
def test_the_demo_shows_the_report_of_its_last_closed_month(tmp_path, browser):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATA_DIR=str(tmp_path / "pvp"))
    out = tmp_path / "demo.out"
    t0 = time.monotonic()
    with open(out, "wb") as fh:
        demo = subprocess.Popen(
            [str(Path(sys.executable).parent / "pvp"), "demo"],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        text = wait_for(
            lambda: "all services answer" in out.read_text() and out.read_text(), 240, "the demo"
        )
        url = f"postgresql://postgres@/pvp?host={tmp_path / 'pvp' / 'pg'}"

        def query(sql: str):
            with psycopg.connect(url, connect_timeout=3) as conn:
                return conn.execute(sql).fetchall()

        wait_for(lambda: query("SELECT count(*) FROM kpi_daily")[0][0], 900, "the first daily KPIs")
        first_daily_s = time.monotonic() - t0
        wait_for(lambda: "landing the last closed month" in out.read_text(), 120, "the month")
        site = load_plant(tmp_path / "pvp" / "plant.yaml").sites[0]
        month = last_closed_month(site.timezone)
        wait_for(lambda: query("SELECT count(*) FROM reports")[0][0], 1800, "the month's report",
                 every_s=10, progress=lambda: query("SELECT count(*) FROM kpi_hourly"))  # fmt: skip
        report_s = time.monotonic() - t0
        print(
            f"first daily KPIs after {first_daily_s:.0f} s, the month's report after {report_s:.0f} s"
        )
        (grain, period, summary), = query("SELECT grain, period, summary FROM reports")  # fmt: skip
        assert (grain, period) == ("monthly", month)
        # made from every hour of the month (the daemon waited for them), and it says so
        assert summary["hours_present"] == summary["hours_expected"] >= 28 * 24 - 1
        ((energy,),) = query(  # fmt: skip
            "SELECT energy_ac_kwh FROM kpi_monthly WHERE device_id = '*' AND"
            f" to_char(period_start AT TIME ZONE '{site.timezone}', 'YYYY-MM') = '{month}'"
        )
        assert summary["energy_ac_kwh"] == pytest.approx(energy) and energy > 1000

        dash = re.search(r"Dashboard \(Panel\):\s+(\S+)", text).group(1)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{dash}?page=4")
        # the period itself is only an <option> of the report picker (never "visible"): wait for the note
        page.wait_for_selector(f"text=report(s) of {site.id}", timeout=60_000)
        name, pdf = download(page, "Download PDF")
        assert name == f"pvp-report-{site.id}-{month}.pdf"
        assert f"{energy:,.1f}" in pdf_pages(pdf)[0][0]
        page.close()

        api_url, token_file = re.search(
            r"HTTP API:\s+(\S+)/openapi.json \(a token .* in (\S+)\)", text
        ).groups()
        token = Path(token_file).read_text().strip()
        request = Request(f"{api_url}/sites/{site.id}/reports/monthly/{month}.pdf",
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        with urlopen(request, timeout=30) as answer:
            assert answer.read() == pdf
        listing = Request(f"{api_url}/sites/{site.id}/reports", headers=request.headers)
        with urlopen(listing, timeout=30) as answer:
            assert [r["period"] for r in json.loads(answer.read())["data"]] == [month]
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(90)
