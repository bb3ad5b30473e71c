"""Owner reports: content from the KPI tables, the PDF's pages rendered and read back, the HTML twin,
the target (budget and modelled year), the loss-waterfall hook, and e-mail through a real SMTP server."""

from __future__ import annotations

import math
import os
import re
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy

import numpy as np
import pandas as pd
import pypdfium2 as pdfium
import pytest
from PIL import Image

from pv_platform.analytics.waterfall import CAUSES
from pv_platform.kpi.target import typical_year_monthly_energy_kwh
from pv_platform.plant import parse_plant
from pv_platform.reports import waterfall
from pv_platform.reports.content import build_report_data
from pv_platform.reports.publish import publish_report
from pv_platform.reports.render import number, render_html, render_pdf
from pv_platform.services import free_port
from pv_platform.settings import Settings
from pv_platform.storage.alerts import AlertStore
from tests.conftest import demo_plant_dict
from tests.report_seed import END, START, YEAR_END, YEAR_START, seed_november

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


def _plant(**report):
    data = demo_plant_dict([free_port(), free_port()])
    if report:
        data["sites"][0]["report"] = report
    return parse_plant(data)


def pdf_pages(pdf: bytes) -> tuple[list[str], list[np.ndarray]]:
    """Each page's extracted text and its rendering (RGB array at 72 dpi)."""
    doc = pdfium.PdfDocument(pdf)
    texts, images = [], []
    for page in doc:
        texts.append(page.get_textpage().get_text_range())
        images.append(np.asarray(page.render(scale=1.0).to_pil().convert("RGB")))
    return texts, images


def _value_on_line(text: str, label: str) -> str:
    line = next(line for line in text.splitlines() if line.strip().startswith(label))
    return re.split(r"\s{2,}", line[len(label) :].strip())[0].split(" ")[0]


def test_pdf_pages_show_the_numbers_of_the_database(db):
    plant = _plant(monthly_target_kwh=[20_000.0] * 10 + [30_000.0, 20_000.0])
    seed_november(db, plant)
    site = plant.sites[0]
    data = build_report_data(db, site, "monthly", "2026-11-01", START, END, AlertStore(db.engine))
    texts, images = pdf_pages(render_pdf(data))
    if os.environ.get("PVP_REPORT_PNG_DIR"):  # to look at the pages
        for i, image in enumerate(images):
            Image.fromarray(image).save(f"{os.environ['PVP_REPORT_PNG_DIR']}/page{i}.png")
    assert len(texts) == 3  # summary, PR/availability/alerts, waterfall
    for image in images:  # every page has ink: not blank
        assert (image < 200).any(axis=2).mean() > 0.001
    for image in images[
        :2
    ]:  # the charts are drawn: coloured (not grey) pixels, the bars' blue among them
        rgb = image.astype(int)
        coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
        assert coloured.mean() > 0.01
        assert ((rgb[..., 2] > 150) & (rgb[..., 0] < 80)).sum() > 500  # #1f77b4 bars and lines
    stored = db.kpis.read("kpi_monthly", START, END, "testsite").set_index("device_id")
    site_row = stored.loc["*"]
    shown = {
        "Energy (AC)": site_row.energy_ac_kwh,
        "Specific yield": site_row.final_yield_h,
        "Performance ratio (raw)": site_row.pr * 100,
        "PR at 25 C (IEC 61724-1)": site_row.pr_temp_iec * 100,
        "PR weather-corrected (NREL)": site_row.pr_temp_nrel * 100,
        "Availability, time-based": site_row.availability_time * 100,
        "Availability, energy-based": site_row.availability_energy * 100,
        "Expected energy": site_row.energy_expected_kwh,
        "Energy lost to outages": site_row.energy_lost_kwh,
        "Target energy (budget (plant file))": 30_000.0,
        "Target achieved": site_row.energy_ac_kwh / 30_000.0 * 100,
    }
    for label, value in shown.items():
        printed = float(_value_on_line(texts[0], label).replace(",", ""))
        digits = 2 if label == "Specific yield" else 1
        assert printed == pytest.approx(round(value, digits), abs=1e-9), label
    # hand-worked: PR = 0.8 everywhere except inv2's 3 outage hours; IEC reference 1.02 × STC
    assert site_row.pr < 0.8 and site_row.pr_temp_iec == pytest.approx(site_row.pr / 1.02)
    assert "Data coverage" in texts[0] and "719 of 720" in texts[0]
    for device in ("inv1", "inv2"):
        line = next(x for x in texts[0].splitlines() if x.startswith(device))
        assert number(stored.loc[device].energy_ac_kwh) in line
    # alerts: the trip on inv2, 3 h, lost 3 × 36 kWh × the day's swing (1 + 0.3 sin(10/3)) = 101.8 kWh;
    # the meter's open alert: 29.5 h to the month's end, lost the site's (expected − actual) of its
    # 8 daylight hours on 30 November: 8 × 1.6 kWh × (1 + 0.3 sin(10)) = 10.7 kWh
    trip = next(x for x in texts[1].splitlines() if "equipment_fault" in x)
    assert "3.00" in trip and number(3 * 36 * (1 + 0.3 * math.sin(10 / 3))) in trip
    silent = next(x for x in texts[1].splitlines() if "communication_lost" in x)
    assert "29.50" in silent and number(8 * 1.6 * (1 + 0.3 * math.sin(10))) in silent
    assert "2026-11-20 03:00" in texts[1]  # the missing hour, named
    assert "not available for this period" in texts[2]  # no loss analytics: the hook says so


def test_yearly_report_sums_the_year(db):
    """The annual report: the year's KPI row, the twelve budgets summed as its target, one bar a month."""
    budget = [1000.0 * (m + 1) for m in range(12)]  # 1 000 ... 12 000 kWh: 78 000 kWh a year
    plant = _plant(monthly_target_kwh=budget)
    seed_november(db, plant)
    data = build_report_data(
        db, plant.sites[0], "yearly", "2026", YEAR_START, YEAR_END, AlertStore(db.engine)
    )
    assert data.period == "2026" and data.target_kwh == 78_000.0
    assert list(data.series["label"]) == ["Nov"]  # the one month with KPIs
    stored = (
        db.kpis.read("kpi_yearly", YEAR_START, YEAR_END, "testsite").set_index("device_id").loc["*"]
    )
    texts, _ = pdf_pages(render_pdf(data))
    assert "annual report 2026" in texts[0]
    assert float(_value_on_line(texts[0], "Energy (AC)").replace(",", "")) == round(
        stored.energy_ac_kwh, 1
    )
    assert float(_value_on_line(texts[0], "Target achieved").replace(",", "")) == round(
        stored.energy_ac_kwh / 78_000.0 * 100, 1
    )


def test_html_is_the_same_report(db):
    plant = _plant()
    seed_november(db, plant)
    data = build_report_data(
        db, plant.sites[0], "monthly", "2026-11-01", START, END, AlertStore(db.engine)
    )
    page = render_html(data)
    assert page.count("<svg") == 2 and "<script" not in page
    assert f"<td>{number(data.figures['energy_ac_kwh'])}</td>" in page
    assert "modelled typical year" in page and "equipment_fault" in page


def test_modelled_typical_year_target():
    """Zurich, 2 × 110 kWp: sunnier months give more, the year lies in a plausible band of a clear-sky
    model times 0.75, and the factor scales it linearly."""
    args = (47.37, 8.54, 410, 30, 180, "Europe/Zurich", [(110.0, 100.0, -0.0037)] * 2)
    full = typical_year_monthly_energy_kwh(*args, clearness_factor=1.0)
    three_quarters = typical_year_monthly_energy_kwh(*args, clearness_factor=0.75)
    assert three_quarters == pytest.approx(full * 0.75)
    assert full[5] > 1.8 * full[11]  # June over December
    specific = three_quarters.sum() / 220.0
    assert 1000 < specific < 2000  # kWh/kWp a year


def test_loss_waterfall_hook_shows_the_steps(db):
    plant = _plant()
    seed_november(db, plant)
    steps = [
        ("reference energy", 1000.0),
        ("temperature", -50.0),
        ("outage", -30.0),
        ("measured", 920.0),
    ]

    def source(db_, site_id, grain, start, end):
        return steps if site_id == "testsite" and grain == "monthly" else None

    waterfall.register_waterfall_source(source)
    try:
        data = build_report_data(
            db, plant.sites[0], "monthly", "2026-11-01", START, END, AlertStore(db.engine)
        )
    finally:
        waterfall.unregister_waterfall_source(source)
    assert data.waterfall == steps
    texts, _ = pdf_pages(render_pdf(data))
    assert "temperature" in texts[2] and "-50.0 kWh" in texts[2]
    assert "Loss waterfall" in render_html(data) and "<td>-30.0</td>" in render_html(data)


def test_the_loss_analytics_waterfall_is_in_the_report(db):
    """The built-in source: the site's `loss_daily` rows of the month summed into steps. Hand-worked: 30
    days of 100 kWh reference, 5 temperature, 3 irradiance, 2 forced outage, 10 unexplained, 80 measured."""
    plant = _plant()
    seed_november(db, plant)
    days = pd.date_range("2026-11-01", periods=30, freq="D", tz="Europe/Zurich").tz_convert("UTC")
    parts = {
        "temperature_kwh": 5.0,
        "irradiance_kwh": 3.0,
        "forced_outage_kwh": 2.0,
        "unexplained_kwh": 10.0,
    }
    rows = pd.DataFrame(
        {"site_id": "testsite", "device_id": "*", "period_start": days, "reference_kwh": 100.0,
         "measured_kwh": 80.0, **{f"{c}_kwh": 0.0 for c in CAUSES}, **parts}
    )  # fmt: skip
    db.losses.replace_daily("testsite", rows)
    data = build_report_data(
        db, plant.sites[0], "monthly", "2026-11-01", START, END, AlertStore(db.engine)
    )
    steps = dict(data.waterfall)
    assert steps["reference energy"] == 3000.0 and steps["measured energy"] == 2400.0
    assert steps["temperature"] == -150.0 and steps["forced outage"] == -60.0
    assert steps["unexplained"] == -300.0 and steps["soiling"] == 0.0
    assert sum(v for k, v in data.waterfall[1:-1]) == 2400.0 - 3000.0  # the parts close the gap
    texts, _ = pdf_pages(render_pdf(data))
    assert "forced outage" in texts[2] and "-60.0 kWh" in texts[2] and "3,000.0 kWh" in texts[2]


def test_report_is_emailed_once_with_the_pdf_attached(db, smtp_server, tmp_path, caplog):
    port, received = smtp_server
    password_file = tmp_path / "smtp-password"
    password_file.write_text("s3cret-pw\n")
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_user="reports",
        smtp_password_file=password_file, smtp_from="pv@example.org",
        report_recipients=["owner@example.org"],
    )  # fmt: skip
    plant = _plant(recipients=["am@example.org"])
    seed_november(db, plant)
    caplog.set_level("DEBUG")
    first = publish_report(db, plant.sites[0], "monthly", "2026-11-01", (START, END), settings, NOW)
    assert first.emailed_to == ["owner@example.org", "am@example.org"]
    assert len(received) == 1 and received[0]["to"] == ["owner@example.org", "am@example.org"]
    msg = message_from_bytes(received[0]["data"], policy=policy.default)
    assert msg["Subject"] == "Test Plant: monthly report 2026-11"
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "pvp-report-testsite-2026-11.pdf"
    stored = db.reports.document("testsite", "monthly", "2026-11", "pdf")
    assert attachment.get_content() == stored
    texts, _ = pdf_pages(attachment.get_content())
    assert "monthly report 2026-11" in texts[0]
    # regenerated after late data: stored again, not sent again
    again = publish_report(db, plant.sites[0], "monthly", "2026-11-01", (START, END), settings, NOW)
    assert again.email_skipped == "already e-mailed" and len(received) == 1
    assert "s3cret-pw" not in caplog.text
    # a wrong password: the error names the server, never the password
    password_file.write_text("wrong")
    db.reports.mark_emailed("testsite", "monthly", "2026-11", [], None)
    with pytest.raises(Exception, match=rf"127.0.0.1:{port}") as failure:
        publish_report(db, plant.sites[0], "monthly", "2026-11-01", (START, END), settings, NOW)
    assert "wrong" not in str(failure.value) and "wrong" not in caplog.text


def test_no_email_without_smtp_or_for_a_running_period(db):
    plant = _plant(recipients=["am@example.org"])
    seed_november(db, plant)
    site = plant.sites[0]
    unset = publish_report(db, site, "monthly", "2026-11-01", (START, END), Settings(), NOW)
    assert unset.email_skipped.startswith("no SMTP server")
    assert db.reports.document("testsite", "monthly", "2026-11", "html").startswith(
        b"<!DOCTYPE html>"
    )
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none")
    running = publish_report(
        db,
        site,
        "monthly",
        "2026-11-01",
        (START, END),
        settings,
        datetime(2026, 11, 20, tzinfo=UTC),
    )
    assert running.email_skipped == "the period is still running"


def test_thread_safety_of_rendering(db):
    """The report assets may render in threads of one process: no pyplot state is shared."""
    plant = _plant()
    seed_november(db, plant)
    data = build_report_data(
        db, plant.sites[0], "monthly", "2026-11-01", START, END, AlertStore(db.engine)
    )
    out: list[bytes] = []
    threads = [threading.Thread(target=lambda: out.append(render_pdf(data))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and all(pdf_pages(pdf)[0][0] == pdf_pages(out[0])[0][0] for pdf in out)


def test_a_report_waits_only_for_the_runs_that_make_its_numbers():
    """November's report waits while an hourly, daily or monthly run over November is pending, not
    for a run of the running year (the demo's live data keep one queued: November's report never
    came); the year's report waits for that one too."""
    from pv_platform.defs.reports.sensors import ready_sites

    zones = {"capetown": "Africa/Johannesburg"}
    year = (datetime(2025, 12, 31, 10, tzinfo=UTC), datetime(2027, 1, 1, 12, tzinfo=UTC), "yearly")
    hours = (
        datetime(2026, 11, 30, 20, tzinfo=UTC),
        datetime(2026, 11, 30, 21, tzinfo=UTC),
        "hourly",
    )

    def ready(period: str, grain: str, windows: list) -> list[str]:
        book = {"capetown": [1, 0.0, "complete"]}
        return ready_sites(book, period, grain, zones, windows, 1e10)

    assert ready("2026-11-01", "monthly", [year]) == ["capetown"]
    assert ready("2026-11-01", "monthly", [year, hours]) == []
    assert ready("2026", "yearly", [year]) == []
    assert ready("2026", "yearly", []) == ["capetown"]
