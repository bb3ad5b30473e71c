"""Losses page: where the missing energy went. The loss waterfall of a site or inverter over a range
(reference energy P0·H/G_stc down to the measured energy, each cause in kWh and money), the causes per
day/month/year, the soiling ratio with its band and cleanings, the performance index with the
year-on-year degradation trend and its confidence band, and the clipped energy. Read from `loss_daily`
and `degradation` (the `loss_analytics` asset); deep links ?page=5&site=…&device=…&days=…&grain=…"""

from __future__ import annotations

from datetime import timedelta
from html import escape
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter
from bokeh.plotting import figure

from dashboards import data
from dashboards.common import ACCENT, AppContext, bar_figure, card, fmt, link_days, site_select
from dashboards.pages.history import local_midnight
from pv_platform.analytics.waterfall import CAUSES, roll_up
from pv_platform.kpi.periods import SITE_DEVICE

LABELS = {c: c.replace("_", " ") for c in CAUSES}
COLOURS = ("#ef6c00", "#ffa726", "#8d6e63", "#c62828", "#6a1b9a", "#1565c0", "#00838f", "#9e9d24",
           "#5d4037", "#78909c")  # fmt: skip
GRAINS = {"day": "daily", "month": "monthly", "year": "yearly"}


def waterfall_steps(totals: dict) -> pd.DataFrame:
    """The waterfall's bars: reference, one per cause (from the running level down by its loss; a
    negative loss is a gain and goes up), measured. Columns: step, bottom, top, colour, kwh."""
    level = float(totals.get("reference_kwh", 0.0))
    rows = [("reference", 0.0, level, ACCENT, level)]
    for cause, colour in zip(CAUSES, COLOURS, strict=True):
        loss = float(totals.get(f"{cause}_kwh", 0.0))
        rows.append((LABELS[cause], level - loss, level, colour if loss >= 0 else "#2e7d32", loss))
        level -= loss
    rows.append(
        (
            "measured",
            0.0,
            float(totals.get("measured_kwh", 0.0)),
            "#2e7d32",
            totals.get("measured_kwh", 0.0),
        )
    )
    frame = pd.DataFrame(rows, columns=["step", "a", "b", "colour", "kwh"])
    return frame.assign(bottom=frame[["a", "b"]].min(axis=1), top=frame[["a", "b"]].max(axis=1))


def trend_band(pi: pd.Series, rate: float, low: float, high: float) -> pd.DataFrame:
    """Performance-index trend of the year-on-year rate and its interval [−], from the first year's median."""
    if pi.empty or not np.isfinite(rate):
        return pd.DataFrame(columns=["t", "fit", "low", "high"])
    base = float(pi[: pi.index[0] + pd.Timedelta(days=364)].median())
    years = ((pi.index - pi.index[0]) / pd.Timedelta(days=365)).to_numpy()
    return pd.DataFrame({"t": pi.index.tz_localize(None), "fit": base * (1 + rate / 100 * years),
                         "low": base * (1 + low / 100 * years), "high": base * (1 + high / 100 * years)})  # fmt: skip


class LossesPage:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        sites, self.site = site_select(ctx.plant())
        self.device = pn.widgets.Select(
            name="Device", options=self._devices(self.site.value), width=180
        )
        self.days = pn.widgets.IntInput(name="Last days", value=365, start=1, end=3660, width=120)
        self.grain = pn.widgets.RadioButtonGroup(name="By", options=list(GRAINS), value="month",
                                                 button_type="primary", button_style="outline")  # fmt: skip
        self.summary, self.note = pn.Row(), pn.pane.Markdown("", name="losses-note")
        self.charts = pn.Column()
        self.table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=300,
                                          name="losses-table")  # fmt: skip
        self._apply_link_args(sites)
        self.site.param.watch(self._site_changed, "value")
        for w in (self.device, self.days, self.grain):
            w.param.watch(lambda *_: self.update(), "value")
        self.layout = pn.Column(
            pn.Row(self.site, self.device, self.days, pn.Column(pn.pane.Markdown("By", margin=(0, 5)), self.grain)),
            self.summary, self.note, self.charts, self.table, name="Losses",
        )  # fmt: skip

    def _devices(self, site_id: str | None) -> dict[str, str]:
        plant = self.ctx.plant()
        if not plant or not site_id:
            return {"Site total": SITE_DEVICE}
        return {"Site total": SITE_DEVICE, **{d.id: d.id for d in plant.site(site_id).inverters}}

    def _apply_link_args(self, sites: list[str]) -> None:
        args = {k: v[0].decode() for k, v in (pn.state.session_args or {}).items() if v}
        if args.get("site") in sites:
            self.site.value = args["site"]
            self.device.options = self._devices(self.site.value)
        if args.get("device") in self.device.options.values():
            self.device.value = args["device"]
        days, why = link_days(args["days"]) if "days" in args else (None, "")
        if days:
            self.days.value = days
        if why and pn.state.notifications is not None:
            pn.state.onload(lambda: pn.state.notifications.warning(why, duration=0))
        if args.get("grain") in GRAINS:
            self.grain.value = args["grain"]

    def _site_changed(self, *_):
        self.device.options = self._devices(self.site.value)
        self.device.value = SITE_DEVICE
        self.update()

    def update(self) -> None:
        plant = self.ctx.plant()
        if not (self.ctx.url and plant and self.site.value):
            self.note.object = "No database or plant file configured."
            return
        site = plant.site(self.site.value)
        today = data.platform_today(site.timezone)  # the last N local days, today included
        start = local_midnight(today - timedelta(days=int(self.days.value) - 1), site.timezone)
        end = local_midnight(today + timedelta(days=1), site.timezone)
        rows = data.losses(self.ctx.url, site.id, self.device.value, start, end)
        degradation = data.degradation(self.ctx.url, site.id)
        mine = (
            degradation[degradation["device_id"] == self.device.value]
            if not degradation.empty
            else degradation
        )
        if rows.empty:
            self.note.object = "No loss analytics yet for this selection (the `loss_analytics` asset writes them after the daily KPIs)."
            self.summary.objects, self.charts.objects, self.table.value = [], [], pd.DataFrame()
            return
        totals = rows[[c for c in rows.columns if c.endswith("_kwh")]].sum().to_dict()
        record = mine.iloc[0].to_dict() if not mine.empty else {}
        self.summary.objects = self._cards(totals, record, site)
        self.note.object = (f"{len(rows)} days of {escape(site.id)} / {escape(self.device.value)} · "
                            f"tariff {fmt(site.tariff_per_kwh, '.3f', ' ' + site.currency + '/kWh')}")  # fmt: skip
        periods = roll_up(rows.drop(columns=["performance_index", "soiling_ratio", "soiling_ratio_low", "soiling_ratio_high",
                                             "cleaning", "degradation_factor"]), {site.id: site.timezone}, GRAINS[self.grain.value])  # fmt: skip
        periods = periods[
            periods["device_id"] == ("*" if self.device.value == SITE_DEVICE else self.device.value)
        ]
        self.charts.objects = [
            pn.Row(pn.pane.Bokeh(self._waterfall(totals)), pn.pane.Bokeh(self._per_period(periods, site.timezone))),
            pn.Row(pn.pane.Bokeh(self._soiling(rows)), pn.pane.Bokeh(self._degradation(rows, record))),
        ]  # fmt: skip
        self.table.value = self._table(periods, site)

    def _cards(self, totals: dict, record: dict, site) -> list:
        tariff = site.tariff_per_kwh
        lost = totals.get("reference_kwh", 0.0) - totals.get("measured_kwh", 0.0)
        money = f"{lost * tariff:,.0f} {site.currency}" if tariff is not None else "no tariff set"
        rate = record.get("rate_pct_per_year", np.nan)
        band = f"{fmt(record.get('ci_low_pct_per_year'), '+.2f')} … {fmt(record.get('ci_high_pct_per_year'), '+.2f')} (68 %)"
        return [
            card("Reference − measured", fmt(lost, ",.0f", " kWh"), "loss-total", money),
            card("Soiling loss", fmt(totals.get("soiling_kwh"), ",.0f", " kWh"), "loss-soiling",
                 f"{fmt(record.get('soiling_loss_fraction'), '.1%')} of expected"),
            card("Degradation rate", fmt(rate, "+.2f", " %/y"), "loss-degradation",
                 band if np.isfinite(rate) else "needs 2 years of data"),
            card("Clipped energy", fmt(totals.get("clipping_kwh"), ",.0f", " kWh"), "loss-clipping"),
            card("Unexplained", fmt(totals.get("unexplained_kwh"), ",.0f", " kWh"), "loss-unexplained"),
        ]  # fmt: skip

    def _waterfall(self, totals: dict):
        steps = waterfall_steps(totals)
        fig = figure(x_range=FactorRange(*steps["step"]), height=300, title="Loss waterfall over the range [kWh]",
                     toolbar_location=None, sizing_mode="stretch_width")  # fmt: skip
        fig.vbar(
            x="step",
            bottom="bottom",
            top="top",
            width=0.8,
            color="colour",
            source=ColumnDataSource(steps),
        )
        fig.xaxis.major_label_orientation = 0.8
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        return fig

    def _per_period(self, periods: pd.DataFrame, tz: str):
        fig = bar_figure("Losses per period [kWh] (unexplained: dots)", "kWh", height=300)
        t = periods["period_start"].dt.tz_convert(tz).dt.tz_localize(None)
        shown = [c for c in CAUSES if c != "unexplained"]
        source = ColumnDataSource({"t": t, **{c: periods[f"{c}_kwh"].clip(lower=0).to_numpy() for c in shown},
                                   "unexplained": periods["unexplained_kwh"].to_numpy()})  # fmt: skip
        width = {"day": 6.5e7, "month": 2.0e9, "year": 2.5e10}[self.grain.value]
        fig.vbar_stack(shown, x="t", width=width, source=source, color=list(COLOURS[: len(shown)]),
                       legend_label=[LABELS[c] for c in shown])  # fmt: skip
        fig.scatter("t", "unexplained", source=source, color="#37474f", size=6)
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        fig.legend.label_text_font_size, fig.legend.spacing, fig.legend.padding = "8pt", 0, 2
        fig.add_layout(fig.legend[0], "right")
        return fig

    def _soiling(self, rows: pd.DataFrame):
        fig = bar_figure("Soiling ratio with its band; cleanings ▲", "soiling ratio", height=280)
        t = rows["period_start"].dt.tz_localize(None)
        src = ColumnDataSource({"t": t, "sr": rows["soiling_ratio"], "lo": rows["soiling_ratio_low"],
                                "hi": rows["soiling_ratio_high"], "pi": rows["performance_index"]})  # fmt: skip
        fig.varea("t", "lo", "hi", source=src, color="#ffcc80", alpha=0.6, legend_label="band")
        fig.line("t", "sr", source=src, color="#ef6c00", line_width=2, legend_label="soiling ratio")
        cleaned = rows[rows["cleaning"] == 1.0]
        fig.scatter(cleaned["period_start"].dt.tz_localize(None), [1.0] * len(cleaned), marker="triangle",
                    size=9, color="#1565c0", legend_label="cleaning")  # fmt: skip
        fig.legend.location = "bottom_left"
        return fig

    def _degradation(self, rows: pd.DataFrame, record: dict):
        fig = bar_figure(
            "Performance index and the year-on-year trend (68 % band)", "PI", height=280
        )
        pi = pd.Series(rows["performance_index"].to_numpy(), index=rows["period_start"]).dropna()
        fig.scatter(
            pi.index.tz_localize(None),
            pi.to_numpy(),
            size=3,
            color=ACCENT,
            alpha=0.5,
            legend_label="daily PI",
        )
        band = trend_band(pi, record.get("rate_pct_per_year", np.nan), record.get("ci_low_pct_per_year", np.nan),
                          record.get("ci_high_pct_per_year", np.nan))  # fmt: skip
        if not band.empty:
            src = ColumnDataSource(band)
            fig.varea("t", "low", "high", source=src, color="#b39ddb", alpha=0.5, legend_label="CI")
            fig.line("t", "fit", source=src, color="#6a1b9a", line_width=2, legend_label="trend")
        fig.legend.location = "bottom_left"
        return fig

    def _table(self, periods: pd.DataFrame, site) -> pd.DataFrame:
        tz = ZoneInfo(site.timezone)
        shown = pd.DataFrame(
            {"period": periods["period_start"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d")}
        )
        for column in ("reference", "measured", *CAUSES):
            shown[f"{LABELS.get(column, column)} [kWh]"] = (
                periods[f"{column}_kwh"].round(1).to_numpy()
            )
        if site.tariff_per_kwh is not None:
            lost = periods["reference_kwh"] - periods["measured_kwh"]
            shown[f"lost [{site.currency}]"] = (lost * site.tariff_per_kwh).round(2).to_numpy()
        return shown.reset_index(drop=True)
