"""Quality page: the data-quality masks of a site's hours — which hours each detector flagged (stale and
interpolated values, clipping, completeness, the physical and plausibility checks), for which device and
metric, and the site-level sensor checks (POA against the clear sky, the clock against the sun). Read from
`kpi_quality` (the hourly asset's checks) and `quality_findings` (the loss analytics' detectors); deep
links ?page=6&site=…&device=…&days=…"""

from __future__ import annotations

import json
from datetime import timedelta
from html import escape

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from dashboards import data
from dashboards.common import AppContext, card, link_days, site_select
from dashboards.pages.history import local_midnight
from pv_platform.analytics.hour_checks import MASK_CHECK_NAMES
from pv_platform.kpi.quality import CHECK_NAMES

ALL_DEVICES = "All devices"
CHECK_ORDER = (*MASK_CHECK_NAMES, *CHECK_NAMES)  # the detectors' masks first
STATE_COLOURS = {"passed": "#c8e6c9", "WARN": "#ef6c00", "ERROR": "#c62828"}
SENSOR_CHECKS = {"irradiance_clearsky": "POA vs clear sky", "clock_shift": "clock vs sun"}


def _keys(metadata) -> list[str]:
    """The failed entities (`site.device.metric`) an outcome's metadata names."""
    meta = json.loads(metadata) if isinstance(metadata, str) else (metadata or {})
    return list(meta.get("entity_keys", []))


def flagged_entities(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per failed outcome and entity it names: period_start, check_name, severity, device_id,
    metric, detail (an outcome naming no entity — a whole-site check — gets device '*', metric '')."""
    columns = ["period_start", "check_name", "severity", "device_id", "metric", "detail"]
    failed = outcomes[~outcomes["passed"].astype(bool)] if not outcomes.empty else outcomes
    rows = []
    for r in failed.itertuples():
        keys = _keys(r.metadata) or ["*.*."]
        for key in keys:
            _, device, metric = (key.split(".", 2) + ["", ""])[:3]
            rows.append((r.period_start, r.check_name, r.severity, device, metric, r.detail))
    return pd.DataFrame(rows, columns=columns)


def hour_states(outcomes: pd.DataFrame, flagged: pd.DataFrame) -> pd.DataFrame:
    """Per judged hour and check: 'passed', or the severity of the failure (of the selected device's
    entities only, when `flagged` is filtered to one device). Columns: period_start, check_name, state."""
    if outcomes.empty:
        return pd.DataFrame(columns=["period_start", "check_name", "state"])
    states = outcomes[["period_start", "check_name"]].drop_duplicates().assign(state="passed")
    worst = (
        flagged.assign(rank=flagged["severity"].map({"WARN": 1, "ERROR": 2}).fillna(1))
        .sort_values("rank")
        .drop_duplicates(["period_start", "check_name"], keep="last")
    )
    merged = states.merge(worst[["period_start", "check_name", "severity"]], how="left")
    merged["state"] = merged["severity"].fillna("passed")
    return merged.drop(columns="severity")


class QualityPage:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        sites, self.site = site_select(ctx.plant())
        self.device = pn.widgets.Select(
            name="Device", options=self._devices(self.site.value), width=180
        )
        self.days = pn.widgets.IntInput(name="Last days", value=7, start=1, end=366, width=120)
        self.summary, self.note = pn.Row(), pn.pane.Markdown("", name="quality-note")
        self.chart = pn.pane.Bokeh(self._chart(hour_states(pd.DataFrame(), pd.DataFrame()), "UTC"))
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, height=320, name="quality-table"
        )
        self.findings = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, name="quality-findings"
        )
        self._apply_link_args(sites)
        self.site.param.watch(self._site_changed, "value")
        for w in (self.device, self.days):
            w.param.watch(lambda *_: self.update(), "value")
        self.layout = pn.Column(
            pn.Row(self.site, self.device, self.days), self.summary, self.note, self.chart,
            pn.pane.Markdown("**Flagged hours, by device and metric**"), self.table,
            pn.pane.Markdown("**Sensor checks** (the loss analytics, over its last 14 days)"),
            self.findings, name="Quality",
        )  # fmt: skip

    def _devices(self, site_id: str | None) -> list[str]:
        plant = self.ctx.plant()
        if not plant or not site_id:
            return [ALL_DEVICES]
        return [ALL_DEVICES, *(d.id for d in plant.site(site_id).devices)]

    def _apply_link_args(self, sites: list[str]) -> None:
        args = {k: v[0].decode() for k, v in (pn.state.session_args or {}).items() if v}
        if args.get("site") in sites:
            self.site.value = args["site"]
            self.device.options = self._devices(self.site.value)
        if args.get("device") in self.device.options:
            self.device.value = args["device"]
        days, why = link_days(args["days"]) if "days" in args else (None, "")
        if days:
            self.days.value = min(days, 366)
        if why and pn.state.notifications is not None:
            pn.state.onload(lambda: pn.state.notifications.warning(why, duration=0))

    def _site_changed(self, *_):
        self.device.options = self._devices(self.site.value)
        self.device.value = ALL_DEVICES
        self.update()

    def update(self) -> None:
        plant = self.ctx.plant()
        if not (self.ctx.url and plant and self.site.value):
            self.note.object = "No database or plant file configured."
            return
        site = plant.site(self.site.value)
        today = data.platform_today(site.timezone)
        start = local_midnight(today - timedelta(days=int(self.days.value) - 1), site.timezone)
        end = local_midnight(today + timedelta(days=1), site.timezone)
        outcomes = data.quality_outcomes(self.ctx.url, site.id, start, end)
        flagged = flagged_entities(outcomes)
        if self.device.value != ALL_DEVICES:
            flagged = flagged[flagged["device_id"].isin([self.device.value, "*"])]
        states = hour_states(outcomes, flagged)
        self.summary.objects = self._cards(states, site.id)
        judged = states["period_start"].nunique()
        self.note.object = (
            f"{judged} hours of {escape(site.id)} / {escape(self.device.value)} judged in the last "
            f"{int(self.days.value)} days · times in {site.timezone}"
            if judged
            else "No data-quality outcomes yet for this selection (the hourly KPI runs store them)."
        )
        self.chart.object = self._chart(states, site.timezone)
        self.table.value = self._table(flagged, site.timezone)
        self.findings.value = self._findings(site.id)

    def _cards(self, states: pd.DataFrame, site_id: str) -> list:
        bad = states[states["state"] != "passed"]
        hours = lambda check: bad.loc[bad["check_name"] == check, "period_start"].nunique()  # noqa: E731
        findings = data.quality_findings(self.ctx.url, site_id)
        failing = int((~findings["passed"].astype(bool)).sum()) if not findings.empty else 0
        return [
            card("Hours judged", f"{states['period_start'].nunique():,}", "q-judged"),
            card("Hours flagged", f"{bad['period_start'].nunique():,}", "q-flagged", "any check failed"),
            card("Stale values", f"{hours('stale_values') + hours('frozen_values')} h", "q-stale"),
            card("Interpolated", f"{hours('interpolated_values')} h", "q-interpolated"),
            card("Clipping", f"{hours('clipping')} h", "q-clipping"),
            card("Incomplete", f"{hours('completeness')} h", "q-completeness"),
            card("Sensor checks failing", f"{failing}", "q-sensors", "POA vs clear sky, clock"),
        ]  # fmt: skip

    def _chart(self, states: pd.DataFrame, tz: str):
        present = set(states["check_name"])
        checks = [c for c in CHECK_ORDER if c in present] + sorted(present - set(CHECK_ORDER))
        fig = figure(
            height=60 + 28 * max(len(checks), 1), x_axis_type="datetime", y_range=checks or ["—"],
            title="Hours flagged by each check (green: passed, orange: WARN, red: ERROR)",
            toolbar_location="right", tools="pan,xwheel_zoom,box_zoom,reset,save",
            sizing_mode="stretch_width",
        )  # fmt: skip
        if states.empty:
            return fig
        src = ColumnDataSource({
            "t": states["period_start"].dt.tz_convert(tz).dt.tz_localize(None) + pd.Timedelta(minutes=30),
            "check": states["check_name"], "state": states["state"],
            "colour": states["state"].map(STATE_COLOURS),
        })  # fmt: skip
        fig.rect(x="t", y="check", width=3.3e6, height=0.8, color="colour", source=src)
        fig.add_tools(HoverTool(tooltips=[("hour", "@t{%F %H:00}"), ("check", "@check"),
                                          ("state", "@state")], formatters={"@t": "datetime"}))  # fmt: skip
        return fig

    @staticmethod
    def _table(flagged: pd.DataFrame, tz: str) -> pd.DataFrame:
        if flagged.empty:
            return pd.DataFrame(columns=["hour", "check", "severity", "device", "metric", "detail"])
        hour = flagged["period_start"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:00")
        shown = flagged.assign(hour=hour).rename(
            columns={"check_name": "check", "device_id": "device"}
        )
        shown = shown[["hour", "check", "severity", "device", "metric", "detail"]]
        return shown.sort_values(["hour", "check", "device"], ascending=[False, True, True])

    def _findings(self, site_id: str) -> pd.DataFrame:
        found = data.quality_findings(self.ctx.url, site_id)
        if found.empty:
            return pd.DataFrame(columns=["check", "device", "result", "detail"])
        return pd.DataFrame({
            "check": found["check_name"].map(SENSOR_CHECKS).fillna(found["check_name"]),
            "device": found["device_id"],
            "result": found["passed"].map({True: "passed", False: "FAILED"}),
            "detail": found["detail"],
        }).reset_index(drop=True)  # fmt: skip
