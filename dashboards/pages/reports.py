"""Reports page: each site's monthly and yearly owner reports (made by Dagster after the period closes),
listed with their headline figures and downloadable as PDF or HTML."""

from __future__ import annotations

import io

import pandas as pd
import panel as pn

from dashboards import data
from dashboards.common import AppContext, site_select
from pv_platform.reports.publish import report_filename


def report_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The list as shown: one row per report with its figures in operator units."""

    def figure(summary, key: str, scale: float = 1.0):
        value = (summary or {}).get(key)
        return None if value is None else round(float(value) * scale, 1)

    return pd.DataFrame(
        {
            "period": rows["period"],
            "kind": rows["grain"],
            "energy [kWh]": [figure(s, "energy_ac_kwh") for s in rows["summary"]],
            "PR [%]": [figure(s, "pr", 100) for s in rows["summary"]],
            "target achieved [%]": [figure(s, "achieved", 100) for s in rows["summary"]],
            "generated (UTC)": pd.to_datetime(rows["generated_at"], utc=True).dt.strftime(
                "%Y-%m-%d %H:%M"
            ),
            "e-mailed": ["yes" if pd.notna(t) else "no" for t in rows["emailed_at"]],
        }
    )


class ReportsPage:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        sites, self.site = site_select(ctx.plant())
        self.report = pn.widgets.Select(name="Report", options={}, width=220)
        self.note = pn.pane.Markdown("", name="reports-note")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, name="reports-table", height=320,
        )  # fmt: skip
        self.downloads = {
            f: pn.widgets.FileDownload(
                callback=lambda f=f: io.BytesIO(self._document(f)), filename=f"report.{f}",
                label=f"Download {f.upper()}", name=f"reports-{f}", button_type="primary",
                width=170, sizing_mode="fixed", disabled=True,
            )
            for f in ("pdf", "html")
        }  # fmt: skip
        args = {k: v[0].decode() for k, v in (pn.state.session_args or {}).items() if v}
        if args.get("site") in sites:  # deep link: ?page=4&site=<id>
            self.site.value = args["site"]
        self.site.param.watch(lambda *_: self.update(), "value")
        self.report.param.watch(lambda *_: self._chosen(), "value")
        self.layout = pn.Column(
            "### Reports",
            pn.Row(self.site, self.report, *self.downloads.values()),
            self.note,
            self.table,
            name="Reports",
        )

    def _document(self, fmt_: str) -> bytes:
        site_id, (grain, period) = self.site.value, self.report.value
        return data.report_document(self.ctx.url, site_id, grain, period, fmt_)

    def _chosen(self) -> None:
        chosen = self.report.value
        for f, button in self.downloads.items():
            button.disabled = chosen is None
            if chosen is not None:
                button.filename = report_filename(self.site.value, chosen[0], chosen[1], f)

    def update(self) -> None:
        if not (self.ctx.url and self.site.value):
            self.note.object = "No database or plant file configured."
            return
        rows = data.reports(self.ctx.url, self.site.value)
        self.table.value = report_table(rows) if not rows.empty else pd.DataFrame()
        options = {f"{r.period} ({r.grain})": (r.grain, r.period) for r in rows.itertuples()}
        self.report.options = options
        if self.report.value not in options.values():  # keep the reader's choice across refreshes
            self.report.value = next(iter(options.values()), None)
        self._chosen()
        self.note.object = (
            f"{len(rows)} report(s) of {self.site.value}; Dagster makes each month's and year's report"
            " after the period closes (and again if late data changes its KPIs)."
            if len(rows)
            else f"No report of {self.site.value} yet: the first comes after its first month closes."
        )
