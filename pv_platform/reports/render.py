"""A report as PDF (matplotlib PdfPages, TrueType fonts embedded so the text can be searched and
extracted) and as HTML (the same tables, the same charts as inline SVG)."""

from __future__ import annotations

import html
import io
import math

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from pv_platform.reports.charts import energy_chart, pr_availability_chart, waterfall_chart
from pv_platform.reports.content import ReportData

A4_IN = (8.27, 11.69)
MONO = {"family": "DejaVu Sans Mono", "size": 8}
# text stays text in both formats (TrueType embedded in the PDF, <text> in the SVG); set once for the
# process, not per call: rc_context swaps the global rcParams, which threads rendering at once would see
matplotlib.rcParams.update({"pdf.fonttype": 42, "svg.fonttype": "none"})
ALERTS_PER_PAGE = 40
NO_WATERFALL = "Loss waterfall: not available for this period (no loss analytics data)."


def number(value: float, digits: int = 1) -> str:
    """A figure as the report prints it: 12,345.6; n/a when missing."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def kpi_rows(data: ReportData) -> list[tuple[str, str, str]]:
    """(label, value, unit) of the headline table, formatted as printed."""
    f = data.figures
    pct = {k: f.get(k, math.nan) * 100.0 for k in (
        "pr", "pr_temp_iec", "pr_temp_nrel", "availability_time", "availability_energy", "expected_deviation",
    )}  # fmt: skip
    coverage = data.hours_present / data.hours_expected * 100.0 if data.hours_expected else math.nan
    return [
        ("Energy (AC)", number(f.get("energy_ac_kwh", math.nan)), "kWh"),
        ("Specific yield", number(f.get("final_yield_h", math.nan), 2), "kWh/kWp"),
        ("Insolation (POA)", number(f.get("insolation_poa_kwh_m2", math.nan), 2), "kWh/m2"),
        ("Performance ratio (raw)", number(pct["pr"]), "%"),
        ("PR at 25 C (IEC 61724-1)", number(pct["pr_temp_iec"]), "%"),
        ("PR weather-corrected (NREL)", number(pct["pr_temp_nrel"]), "%"),
        ("Availability, time-based", number(pct["availability_time"]), "%"),
        ("Availability, energy-based", number(pct["availability_energy"]), "%"),
        ("Expected energy", number(f.get("energy_expected_kwh", math.nan)), "kWh"),
        ("Actual vs expected", number(pct["expected_deviation"]), "%"),
        ("Energy lost to outages", number(f.get("energy_lost_kwh", math.nan)), "kWh"),
        (f"Target energy ({data.target_source})", number(data.target_kwh), "kWh"),
        ("Target achieved", number(data.achieved * 100.0), "%"),
        (
            "Data coverage",
            f"{data.hours_present} of {data.hours_expected}",
            f"h ({number(coverage)} %)",
        ),
    ]


def inverter_rows(data: ReportData) -> list[tuple[str, ...]]:
    """(inverter, energy kWh, specific yield, PR %, availability %) per inverter."""
    return [
        (r.device_id, number(r.energy_ac_kwh), number(r.final_yield_h, 2), number(r.pr * 100.0),
         number(r.availability_time * 100.0))
        for r in data.inverters.itertuples()
    ]  # fmt: skip


def alert_rows(data: ReportData) -> list[tuple[str, ...]]:
    """(opened, severity, rule, device, duration h, lost kWh, state) per alert, in site-local time."""
    rows = []
    for a in data.alerts.itertuples():
        opened = a.opened_at.tz_convert(data.timezone).strftime("%Y-%m-%d %H:%M")
        rows.append(
            (
                opened,
                a.severity,
                a.rule,
                a.device_id,
                number(a.duration_h, 2),
                number(a.lost_kwh),
                a.state,
            )
        )
    return rows


def coverage_text(data: ReportData) -> str:
    missing = ", ".join(m[:16].replace("T", " ") for m in data.missing_hours[:12])
    more = f" (+{len(data.missing_hours) - 12} more)" if len(data.missing_hours) > 12 else ""
    return f"Data coverage: {data.hours_present} of {data.hours_expected} hours with KPIs" + (
        f"; missing (UTC): {missing}{more}" if data.missing_hours else "; none missing"
    )


ALERT_HEAD = ("opened (local)", "severity", "rule", "device", "hours", "lost kWh", "state")
INVERTER_HEAD = ("inverter", "energy kWh", "kWh/kWp", "PR %", "avail. %")


def _table_lines(
    head: tuple[str, ...], rows: list[tuple[str, ...]], widths: list[int]
) -> list[str]:
    def line(cells):
        return "  ".join(
            str(c)[:w].ljust(w) if i < 4 else str(c)[:w].rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(head)] + [line(r) for r in rows]


def _summary_page(data: ReportData) -> Figure:
    fig = Figure(figsize=A4_IN)
    fig.text(0.06, 0.96, data.title, fontsize=14, weight="bold")
    fig.text(0.06, 0.94, f"{data.site_id} · local time {data.timezone} · {data.start:%Y-%m-%d %H:%M} to"
             f" {data.end:%Y-%m-%d %H:%M} UTC", fontsize=8)  # fmt: skip
    y = 0.91
    for label, value, unit in kpi_rows(data):
        fig.text(0.06, y, f"{label:<44}{value:>14} {unit}", fontdict=MONO)
        y -= 0.0175
    y -= 0.01
    head = _table_lines(INVERTER_HEAD, inverter_rows(data), [10, 12, 8, 7, 9])
    for text in head:
        fig.text(0.06, y, text, fontdict=MONO)
        y -= 0.0165
    chart = energy_chart(data)
    _paste(fig, chart, bottom=0.05, height=0.30)
    return fig


def _paste(page: Figure, chart: Figure, bottom: float, height: float) -> None:
    """Place a chart on the page as a 150-dpi image (the figures stay text; the chart is a picture)."""
    buf = io.BytesIO()
    chart.savefig(buf, format="png", dpi=150)
    buf.seek(0)
    image = matplotlib.image.imread(buf)
    ax = page.add_axes((0.04, bottom, 0.92, height))
    ax.imshow(image)
    ax.set_axis_off()


def _detail_pages(data: ReportData) -> list[Figure]:
    pages = []
    rows = alert_rows(data)
    chunks = [rows[i : i + ALERTS_PER_PAGE] for i in range(0, max(len(rows), 1), ALERTS_PER_PAGE)]
    for n, chunk in enumerate(chunks):
        fig = Figure(figsize=A4_IN)
        y = 0.96
        if n == 0:
            _paste(fig, pr_availability_chart(data), bottom=0.68, height=0.28)
            y = 0.65
            fig.text(0.06, y, coverage_text(data)[:110], fontsize=8)
            y -= 0.03
        fig.text(
            0.06,
            y,
            f"Alerts of the period ({len(rows)}); lost energy = expected - actual",
            fontsize=10,
            weight="bold",
        )
        y -= 0.02
        for text in (
            _table_lines(ALERT_HEAD, chunk, [16, 8, 18, 8, 7, 9, 12]) if chunk else ["none"]
        ):
            fig.text(0.06, y, text, fontdict=MONO)
            y -= 0.0155
        pages.append(fig)
    return pages


def _waterfall_page(data: ReportData) -> Figure:
    fig = Figure(figsize=A4_IN)
    if not data.waterfall:
        fig.text(0.06, 0.95, NO_WATERFALL, fontsize=9)
        return fig
    _paste(fig, waterfall_chart(data.waterfall), bottom=0.62, height=0.33)
    y = 0.58
    for label, kwh in data.waterfall:
        fig.text(0.06, y, f"{label:<40}{number(kwh):>14} kWh", fontdict=MONO)
        y -= 0.0175
    return fig


def render_pdf(data: ReportData) -> bytes:
    """The report as a PDF: summary and energy, PR/availability/coverage and alerts, loss waterfall."""
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": data.title}) as pdf:
        for page in [_summary_page(data), *_detail_pages(data), _waterfall_page(data)]:
            pdf.savefig(page)
    return buf.getvalue()


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _html_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def render_html(data: ReportData) -> str:
    """The same report as one self-contained HTML page (charts as inline SVG, no scripts)."""
    waterfall = (
        _svg(waterfall_chart(data.waterfall))
        + _html_table(("step", "kWh"), [(k, number(v)) for k, v in data.waterfall])
        if data.waterfall
        else f"<p>{html.escape(NO_WATERFALL)}</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
svg{{max-width:100%;height:auto}}</style></head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(data.site_id)} · local time {html.escape(data.timezone)} · {data.start:%Y-%m-%d %H:%M} to {data.end:%Y-%m-%d %H:%M} UTC</p>
<h2>Summary</h2>{_html_table(("figure", "value", "unit"), kpi_rows(data))}
<h2>Inverters</h2>{_html_table(INVERTER_HEAD, inverter_rows(data))}
<h2>Energy</h2>{_svg(energy_chart(data))}
<h2>Performance ratio and availability</h2>{_svg(pr_availability_chart(data))}
<p>{html.escape(coverage_text(data))}</p>
<h2>Alerts ({len(data.alerts)})</h2><p>Lost energy = expected − actual energy over the alert's window (hourly KPIs).</p>
{_html_table(ALERT_HEAD, alert_rows(data))}
<h2>Loss waterfall</h2>{waterfall}
</body></html>
"""
