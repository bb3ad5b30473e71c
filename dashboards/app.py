"""PV Platform operator dashboard: Live, History, Alerts and Devices pages in one `panel serve` app.

Live values come from the server-level MQTT live-bus subscriber and are pushed to each browser over
Panel's websocket (no database query for them); everything else reads the storage module through the
cached queries in `dashboards/data.py`.
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from dashboards import data
from dashboards.live import live_bus
from pv_platform.alerts.service import alert_engine
from pv_platform.export import frame_bytes
from pv_platform.kpi.periods import SITE_DEVICE, fleet_rows, total
from pv_platform.kpi.yields import performance_ratio
from pv_platform.settings import get_settings

pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
TITLE = "PV Platform"
ACCENT = "#1f4e79"
STATE_NAMES = {
    1: "off", 2: "sleeping", 3: "starting", 4: "producing", 5: "throttled", 6: "shutting down",
    7: "fault", 8: "standby",
}  # fmt: skip
STATE_COLOURS = {"producing": "#2e7d32", "fault": "#c62828", "throttled": "#ef6c00"}
SEVERITY_COLOURS = {
    "CRITICAL": "#b71c1c", "HIGH": "#e65100", "MEDIUM": "#f9a825", "LOW": "#1565c0", "INFO": "#546e7a",
}  # fmt: skip
PAGES = ["Live", "History", "Alerts", "Devices"]
FLEET = "All sites (fleet)"

settings = get_settings()
URL = settings.database_url
PLANT_FILE = str(settings.plant_file) if settings.plant_file else None
bus = live_bus()


MAX_LINK_DAYS = 3660  # a History deep link shows at most ten years


def link_days(text: str) -> tuple[int | None, str]:
    """The `days=` of a deep link as a day count in 1..MAX_LINK_DAYS and a note for the operator when
    it was not that (too large, zero, not a number): never an exception."""
    if not re.fullmatch(r"[0-9]+", text):
        return None, f"Ignored days={escape(text[:20])}: not a whole number of days."
    days = int(text) if len(text) <= 12 else MAX_LINK_DAYS + 1  # int() of 5000 digits raises
    if days < 1:
        return 1, f"days={days} shows at least 1 day."
    if days > MAX_LINK_DAYS:
        return MAX_LINK_DAYS, f"days={text[:12]} limited to {MAX_LINK_DAYS:,} days."
    return days, ""


def fmt_power(watts: float) -> str:
    return f"{watts / 1e6:,.2f} MW" if abs(watts) >= 1e6 else f"{watts / 1e3:,.1f} kW"


def fmt(value, spec: str, unit: str = "") -> str:
    """A number for an operator: '—' when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:{spec}}{unit}"


class Card:
    """A KPI card: title, big value, small note."""

    def __init__(self, title: str, name: str, value: str = "—", note: str = "") -> None:
        self.title, self.name = title, name
        self.pane = pn.pane.HTML("", name=name, min_width=170, sizing_mode="stretch_width")
        self.set(value, note)

    def set(self, value: str, note: str = "") -> None:
        self.pane.object = (
            f"<div class='pvp-card'><div class='pvp-card-title'>{escape(self.title)}</div>"
            f"<div class='pvp-card-value' data-kpi='{escape(self.name)}'>{escape(value)}</div>"
            f"<div class='pvp-card-note'>{escape(note)}</div></div>"
        )


def card(title: str, value: str, name: str, note: str = "") -> pn.pane.HTML:
    return Card(title, name, value, note).pane


CSS = """
.pvp-card {border: 1px solid #dde3ea; border-radius: 8px; padding: 10px 14px; background: #fff;}
.pvp-card-title {color: #5f6b7a; font-size: 13px;}
.pvp-card-value {font-size: 22px; white-space: nowrap; font-weight: 600; color: #1f2d3d; margin-top: 2px;}
.pvp-card-note {color: #8a96a3; font-size: 12px; min-height: 14px;}
.pvp-tile {border: 1px solid #dde3ea; border-radius: 8px; padding: 8px 12px; width: 180px; background: #fff;}
.pvp-tile b {font-size: 14px;} .pvp-tile .kw {font-size: 20px; font-weight: 600;}
.pvp-sev {color: #fff; border-radius: 4px; padding: 1px 6px; font-size: 12px;}
"""
pn.config.raw_css.append(CSS)


def the_plant():
    return data.plant(PLANT_FILE) if PLANT_FILE else None


# -- Live ---------------------------------------------------------------------------------------------


class LivePage:
    """Plant power, irradiance, instantaneous PR, export, one tile per inverter, the last hour, new alerts."""

    def __init__(self) -> None:
        self.power = Card("Plant AC power", "live-power")
        self.poa = Card("POA irradiance", "live-poa")
        self.pr = Card("Instantaneous PR", "live-pr", note="AC / (P₀ · G/1000)")
        self.export = Card("Export to grid", "live-export", note="at the meter")
        self.status = pn.pane.Markdown("Waiting for the live bus…", name="live-status")
        self.tiles = pn.pane.HTML("", name="live-tiles")
        self.source = ColumnDataSource({"t": [], "kw": []})
        fig = figure(
            height=280, x_axis_type="datetime", title="Plant AC power, last hour [kW]",
            toolbar_location=None, sizing_mode="stretch_width",
        )  # fmt: skip
        fig.line("t", "kw", source=self.source, line_width=2, color=ACCENT)
        self.chart = pn.pane.Bokeh(fig)
        self.alerts = pn.pane.HTML("", name="live-alerts")
        self.seen_messages = -1
        self.layout = pn.Column(
            pn.Row(self.power.pane, self.poa.pane, self.pr.pane, self.export.pane),
            self.status,
            "### Inverters",
            self.tiles,
            self.chart,
            "### Newest alerts",
            self.alerts,
            name="Live",
        )

    def update(self) -> None:
        """Copy the live snapshot into the widgets when a message arrived (runs every 250 ms)."""
        if bus is None:
            self.status.object = "No MQTT broker configured (`PVP_MQTT_URL`): live values are off."
            return
        devices, history, messages = bus.state.snapshot()
        if messages == self.seen_messages:
            return
        self.seen_messages = messages
        plant = the_plant()
        inverters = {(s.id, d.id): d for s in plant.sites for d in s.inverters} if plant else {}
        meters = (
            {(s.id, d.id) for s in plant.sites for d in s.devices if d.kind == "meter"}
            if plant
            else set()
        )
        inv_values = {
            k: v["values"]
            for k, v in devices.items()
            if k in inverters or (not plant and "operating_state" in v["values"])
        }
        total_w = sum(v.get("ac_power", 0.0) for v in inv_values.values())
        poa = [
            d["values"]["poa_irradiance"]
            for d in devices.values()
            if "poa_irradiance" in d["values"]
        ]
        poa_wm2 = float(np.mean(poa)) if poa else float("nan")
        p_dc_kw = sum(d.p_dc_kw for k, d in inverters.items() if k in inv_values)
        pr = (
            float(performance_ratio(total_w / 1000.0, poa_wm2 / 1000.0, p_dc_kw))
            if p_dc_kw and poa and poa_wm2 > 50
            else float("nan")
        )  # an hour at this power and irradiance: E/(P0·H) with both in one hour
        export_w = sum(devices[k]["values"].get("ac_power", 0.0) for k in meters if k in devices)
        self.power.set(fmt_power(total_w), f"{len(inv_values)} inverters reporting")
        self.poa.set(fmt(poa_wm2, ",.0f", " W/m²"), f"{len(poa)} sensor(s)")
        self.pr.set(fmt(pr, ".1%"), "AC / (P₀ · G/1000)")
        self.export.set(fmt_power(export_w) if meters & devices.keys() else "—", "at the meter")
        tiles = []
        for (site_id, device_id), values in sorted(inv_values.items()):
            state = STATE_NAMES.get(int(values.get("operating_state", 0)), "unknown")
            colour = STATE_COLOURS.get(state, "#5f6b7a")
            site_id, device_id = escape(site_id), escape(device_id)  # from the topic: any text
            tiles.append(
                f"<div class='pvp-tile' data-device='{device_id}'><b>{device_id}</b> <small>{site_id}</small>"
                f"<div class='kw'>{fmt_power(values.get('ac_power', 0.0))}</div>"
                f"<span style='color:{colour}'>● {state}</span></div>"
            )
        self.tiles.object = (
            f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(tiles)}</div>"
        )
        if history:
            self.source.data = {
                "t": [datetime.fromtimestamp(t, UTC) for t, _ in history],
                "kw": [w / 1000.0 for _, w in history],
            }
        state = "connected" if bus.state.connected else "reconnecting"
        self.status.object = (
            f"Live bus {state} · {messages:,} messages · updated {datetime.now(UTC):%H:%M:%S} UTC"
        )

    def update_alerts(self) -> None:
        if not URL:
            return
        rows = data.alerts(URL, None, None, None)
        active = rows[rows["state"] != "resolved"].head(6) if not rows.empty else rows
        if active.empty:
            self.alerts.object = "<i>No active alert.</i>"
            return
        self.alerts.object = "<br>".join(
            f"<span class='pvp-sev' style='background:{SEVERITY_COLOURS.get(r.severity, '#555')}'>{escape(str(r.severity))}</span> "
            f"{pd.Timestamp(r.opened_at):%H:%M} {escape(str(r.message))}"
            for r in active.itertuples()
        )


# -- History ------------------------------------------------------------------------------------------


def _bar_figure(title: str, y_label: str, height: int = 260):
    fig = figure(
        height=height, x_axis_type="datetime", title=title, toolbar_location="right",
        tools="pan,xwheel_zoom,box_zoom,reset,save", sizing_mode="stretch_width",
    )  # fmt: skip
    fig.yaxis.axis_label = y_label
    return fig


def _lines(fig, source: ColumnDataSource, series: tuple, legend_at: str) -> None:
    """One line per (column, colour, legend label[, dash]) of `source`, the legend placed at `legend_at`."""
    for column, colour, label, *dash in series:
        fig.line("t", column, source=source, color=colour, line_width=2, legend_label=label,
                 line_dash=dash[0] if dash else "solid")  # fmt: skip
    fig.legend.location = legend_at


def _heat(fig, long: pd.DataFrame, x: str, y: str, value: str, width: float, palette: str) -> None:
    """Heatmap cells of `long` (one row per cell), coloured by `value` from 0 to its maximum."""
    mapper = LinearColorMapper(palette=palette, low=0, high=float(long[value].max() or 1))
    fig.rect(x=x, y=y, width=width, height=1, source=ColumnDataSource(long),
             fill_color={"field": value, "transform": mapper}, line_color=None)  # fmt: skip


def local_midnight(day, tz: str) -> pd.Timestamp:
    """The first instant of a local calendar day: 00:00, or the first valid time after it where a DST
    change skips midnight (America/Santiago, Asia/Beirut and others change at 00:00)."""
    return pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)


def incomplete_note(rows: pd.DataFrame, tz: str, grain: str) -> str:
    """A badge for periods computed from fewer hours than they have: a closed period with missing hours is
    never shown as if it were complete."""
    if grain == "hour" or "hours_expected" not in rows or rows.empty:
        return ""
    short = rows[rows["hours_present"].fillna(0) < rows["hours_expected"].fillna(0)]
    if short.empty:
        return ""
    fmt_ = "%Y-%m-%d" if grain == "day" else "%Y-%m"
    items = [
        f"{pd.Timestamp(r.period_start).tz_convert(tz):{fmt_}} ({int(r.hours_present)} of {int(r.hours_expected)} h)"
        for r in short.itertuples()
    ]
    return " · **⚠ incomplete:** " + ", ".join(items[:8]) + (" …" if len(items) > 8 else "")


class HistoryPage:
    """KPIs of a site or inverter over a date range, by hour, day or month."""

    def __init__(self) -> None:
        plant = the_plant()
        sites = [s.id for s in plant.sites] if plant else []
        self.site = pn.widgets.Select(
            name="Site",
            options=sites + ([FLEET] if len(sites) > 1 else []),
            value=sites[0] if sites else None,
            width=180,
        )
        self.device = pn.widgets.Select(
            name="Device", options=self._devices(self.site.value), width=180
        )
        today = self._today(self.site.value)
        self.dates = pn.widgets.DateRangePicker(
            name="Dates", value=(today - timedelta(days=6), today), width=260
        )
        self.grain = pn.widgets.RadioButtonGroup(
            name="By",
            options=["hour", "day", "month"],
            value="day",
            button_type="primary",
            button_style="outline",
        )
        self.summary = pn.Row()
        self.note = pn.pane.Markdown("", name="history-note")
        self.sources = {
            k: ColumnDataSource({"t": [], "a": [], "b": [], "c": [], "w": []})
            for k in ("pr", "energy", "yield", "avail")
        }
        pr = _bar_figure("Performance ratio: raw, to 25 °C (IEC), weather-corrected (NREL)", "PR")
        _lines(pr, self.sources["pr"], (
            ("a", ACCENT, "PR"), ("b", "#ef6c00", "PR 25 °C"), ("c", "#6a1b9a", "PR NREL", "dashed"),
        ), "bottom_left")  # fmt: skip
        energy = _bar_figure("Energy: actual vs expected [kWh]", "kWh")
        energy.vbar(
            x="t",
            top="a",
            width="w",
            source=self.sources["energy"],
            color=ACCENT,
            alpha=0.85,
            legend_label="actual",
        )
        energy.scatter(
            "t",
            "b",
            source=self.sources["energy"],
            color="#ef6c00",
            size=7,
            legend_label="expected",
        )
        energy.legend.location = "top_left"
        sy = _bar_figure("Specific yield [kWh/kWp]", "kWh/kWp")
        sy.vbar(x="t", top="a", width="w", source=self.sources["yield"], color="#2e7d32")
        avail = _bar_figure("Availability and capacity factor", "fraction")
        _lines(avail, self.sources["avail"], (
            ("a", "#2e7d32", "availability (time)"), ("b", "#1565c0", "availability (energy)"),
            ("c", "#8d6e63", "capacity factor AC"),
        ), "bottom_left")  # fmt: skip
        self.heatmap = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.strings = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            pagination="local",
            page_size=24,
            height=360,
            name="history-table",
        )
        self.shown = pd.DataFrame()  # the table's rows at full precision: what the downloads hold
        self.downloads = pn.Row(*(
            pn.widgets.FileDownload(
                callback=lambda fmt=fmt: io.BytesIO(frame_bytes(self.shown, fmt)), filename=f"history.{fmt}",
                label=f"Download {fmt.upper() if fmt == 'csv' else 'Parquet'}", name=f"history-{fmt}",
                button_type="default", width=170, sizing_mode="fixed",
            ) for fmt in ("csv", "parquet")
        ))  # fmt: skip
        self._apply_link_args(sites)
        self.site.param.watch(self._site_changed, "value")
        for w in (self.device, self.dates, self.grain):
            w.param.watch(lambda *_: self.update(), "value")
        self.layout = pn.Column(
            pn.Row(self.site, self.device, self.dates, pn.Column(pn.pane.Markdown("By", margin=(0, 5)), self.grain)),
            self.summary,
            self.note,
            pn.Row(pn.pane.Bokeh(pr), pn.pane.Bokeh(energy)),
            pn.Row(pn.pane.Bokeh(sy), pn.pane.Bokeh(avail)),
            pn.Row(self.heatmap, self.strings),
            self.table,
            self.downloads,
            name="History",
        )  # fmt: skip

    def _apply_link_args(self, sites: list[str]) -> None:
        """Deep links: ?page=1&site=<id or fleet>&days=<n>&grain=hour|day|month."""
        args = {k: v[0].decode() for k, v in (pn.state.session_args or {}).items() if v}
        if args.get("site") == "fleet" and FLEET in self.site.options:
            self.site.value = FLEET
        elif args.get("site") in sites:
            self.site.value = args["site"]
            self.device.options = self._devices(self.site.value)
        days, why = link_days(args["days"]) if "days" in args else (None, "")
        if days:
            today = self._today(self.site.value)
            self.dates.value = (today - timedelta(days=days - 1), today)
        if why and pn.state.notifications is not None:
            pn.state.onload(lambda: pn.state.notifications.warning(why, duration=0))
        if args.get("grain") in self.grain.options:
            self.grain.value = args["grain"]

    @staticmethod
    def _today(site_id: str | None):
        """Today's date in the site's own time zone (a site ahead of UTC is already in tomorrow)."""
        plant = the_plant()
        site = None
        if plant and plant.sites:
            site = plant.sites[0] if site_id in (None, FLEET) else plant.site(site_id)
        return datetime.now(ZoneInfo(site.timezone) if site else UTC).date()

    def _devices(self, site_id: str | None) -> dict[str, str]:
        plant = the_plant()
        if not plant or not site_id or site_id == FLEET:
            return {"Site total": SITE_DEVICE}
        return {"Site total": SITE_DEVICE, **{d.id: d.id for d in plant.site(site_id).inverters}}

    def _site_changed(self, *_):
        self.device.options = self._devices(self.site.value)
        self.device.value = SITE_DEVICE
        self.update()

    def window(self) -> tuple[datetime, datetime, str]:
        """[start, end) in UTC for the picked local dates (end date included)."""
        plant = the_plant()
        site = plant.sites[0] if plant and self.site.value == FLEET else None
        site = site or (plant.site(self.site.value) if plant and self.site.value else None)
        tz = site.timezone if site else "UTC"  # the fleet view uses the first site's calendar
        first, last = self.dates.value
        start = local_midnight(first, tz)
        end = local_midnight(last + timedelta(days=1), tz)
        if self.grain.value == "month":
            start = start.replace(day=1)
        return start.tz_convert(UTC).to_pydatetime(), end.tz_convert(UTC).to_pydatetime(), tz

    def update(self) -> None:
        if not URL or not self.site.value:
            self.note.object = "No database or plant file configured."
            return
        start, end, tz = self.window()
        grain = self.grain.value
        t0 = time.perf_counter()
        if (
            self.site.value == FLEET
        ):  # every site's own rows, summed per period; hours are too many here
            grain = "day" if grain == "hour" else grain
            per_site = data.fleet(URL, grain, start, end)
            rows = fleet_rows(per_site)
            totals = data.period_total(rows)
        else:
            per_site = None
            device = self.device.value or SITE_DEVICE
            rows = data.with_coverage(
                data.kpis(URL, grain, self.site.value, device, start, end),
                data.coverage(URL, grain, self.site.value, start, end),
            )
            hours = (
                rows
                if grain == "hour"
                else data.kpis(URL, "hour", self.site.value, device, start, end)
            )
            totals = data.period_total(hours)
        self.query_s = time.perf_counter() - t0
        self.summary.objects = [
            card("Energy", fmt(totals.get("energy_ac_kwh"), ",.1f", " kWh"), "hist-energy"),
            card("Specific yield", fmt(totals.get("final_yield_h"), ",.2f", " kWh/kWp"), "hist-yield"),
            card("Performance ratio", fmt(totals.get("pr"), ".1%"), "hist-pr", f"25 °C: {fmt(totals.get('pr_temp_iec'), '.1%')}"),
            card("Availability", fmt(totals.get("availability_time"), ".1%"), "hist-availability", f"energy-based {fmt(totals.get('availability_energy'), '.1%')}"),
            card("Capacity factor", fmt(totals.get("capacity_factor_ac"), ".1%"), "hist-cf", "AC nameplate"),
            card("Expected energy", fmt(totals.get("energy_expected_kwh"), ",.1f", " kWh"), "hist-expected", f"deviation {fmt(totals.get('expected_deviation'), '+.1%')}"),
        ]  # fmt: skip
        label = {"hour": "hourly", "day": "daily", "month": "monthly"}[grain]
        if rows.empty:
            self.note.object = (
                f"No {label} KPIs for {escape(str(self.site.value))} in this range yet."
            )
            for source in self.sources.values():
                source.data = {"t": [], "a": [], "b": [], "c": [], "w": []}
            self.table.value = self.shown = pd.DataFrame()
            return
        sites = f" of {per_site['site_id'].nunique()} sites" if per_site is not None else ""
        self.note.object = (
            f"{len(rows):,} {label} rows{sites} · times in {tz} · read in {self.query_s * 1000:.0f} ms"
            + incomplete_note(rows, tz, grain)
        )
        t = list(rows["period_start"].dt.tz_convert(tz).dt.tz_localize(None))
        width = {"hour": 3.0e6, "day": 6.5e7, "month": 2.0e9}[grain]
        col = lambda c: rows[c].astype(float).tolist()  # noqa: E731
        self.sources["pr"].data = {
            "t": t,
            "a": col("pr"),
            "b": col("pr_temp_iec"),
            "c": col("pr_temp_nrel"),
            "w": [width] * len(t),
        }
        self.sources["energy"].data = {
            "t": t,
            "a": col("energy_ac_kwh"),
            "b": col("energy_expected_kwh"),
            "c": [0] * len(t),
            "w": [width] * len(t),
        }
        self.sources["yield"].data = {
            "t": t,
            "a": col("final_yield_h"),
            "b": [0] * len(t),
            "c": [0] * len(t),
            "w": [width] * len(t),
        }
        self.sources["avail"].data = {
            "t": t,
            "a": col("availability_time"),
            "b": col("availability_energy"),
            "c": col("capacity_factor_ac"),
            "w": [width] * len(t),
        }
        if per_site is not None:  # fleet: one table row per site instead of heatmaps
            self.heatmap.visible = self.strings.visible = False
            rows = total(per_site).assign(period_start=rows["period_start"].min())
        else:
            self.heatmap.visible = self.strings.visible = True
            self.heatmap.object = self._energy_heatmap(start, end, tz)
            self.strings.object = self._string_heatmap(start, end)
        shown = rows.assign(period=rows["period_start"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M"))[
            ["site_id", "period", "energy_ac_kwh", "energy_expected_kwh", "final_yield_h", "pr", "pr_temp_iec", "availability_time", "capacity_factor_ac", "insolation_poa_kwh_m2"]
        ].rename(columns={
            "energy_ac_kwh": "energy [kWh]", "energy_expected_kwh": "expected [kWh]", "final_yield_h": "yield [kWh/kWp]",
            "pr": "PR [fraction]", "pr_temp_iec": "PR 25 °C [fraction]", "availability_time": "availability [fraction]",
            "capacity_factor_ac": "capacity factor [fraction]", "insolation_poa_kwh_m2": "insolation [kWh/m²]",
            "site_id": "site", "period": f"period ({tz})",
        })  # fmt: skip
        self.table.formatters = {c: {"type": "money", "precision": 3} for c in shown.columns[2:]}
        self.shown = shown.reset_index(drop=True)
        self.table.value = shown.round(3)
        stem = f"pvp-history-{self.site.value}-{self.device.value or SITE_DEVICE}-{grain}-{self.dates.value[0]}-{self.dates.value[1]}"
        for kind, button in zip(("csv", "parquet"), self.downloads, strict=True):
            button.filename = (
                re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("*", "site")) + f".{kind}"
            )
        self.note.object += f" · page built in {(time.perf_counter() - t0) * 1000:.0f} ms"

    def _energy_heatmap(self, start, end, tz):
        grid = data.energy_heatmap(
            URL, self.site.value, self.device.value or SITE_DEVICE, start, end, tz
        )
        fig = figure(height=300, title="Energy by local day × hour [kWh]", toolbar_location=None, sizing_mode="stretch_width",
                     x_range=(-0.5, 23.5), y_range=list(grid.index) if not grid.empty else ["—"])  # fmt: skip
        if grid.empty:
            return fig
        _heat(fig, grid.stack().reset_index(name="kwh"), "hour", "day", "kwh", 1, "Viridis256")
        fig.xaxis.axis_label = "hour"
        return fig

    def _string_heatmap(self, start, end):
        grid = data.string_heatmap(URL, self.site.value, start, end)
        fig = figure(height=300, title="String current by hour [A]", toolbar_location=None, sizing_mode="stretch_width",
                     x_axis_type="datetime", y_range=list(grid.index) if not grid.empty else ["no string data"])  # fmt: skip
        if grid.empty:
            return fig
        long = grid.stack().reset_index(name="amps")
        long["bucket"] = pd.to_datetime(long["bucket"]).dt.tz_localize(None)
        _heat(fig, long, "bucket", "string", "amps", 3.6e6, "Inferno256")
        return fig


# -- Alerts -------------------------------------------------------------------------------------------


class AlertsPage:
    """Filter alerts; acknowledge or resolve the selected ones with a name and a comment."""

    def __init__(self) -> None:
        plant = the_plant()
        self.site = pn.widgets.Select(
            name="Site", options=["All"] + ([s.id for s in plant.sites] if plant else []), width=160
        )
        self.severity = pn.widgets.Select(
            name="Severity", options=["All", *SEVERITY_COLOURS], width=140
        )
        self.state = pn.widgets.Select(
            name="State", options=["active", "open", "acknowledged", "resolved", "all"], width=150
        )
        # signed in: sign-offs carry the login name, not whatever is typed
        self.signer = pn.state.user or None
        self.who = pn.widgets.TextInput(
            name="Signed in as" if self.signer else "Your name", value=self.signer or "",
            width=160, placeholder="who acts", disabled=self.signer is not None,
        )  # fmt: skip
        self.comment = pn.widgets.TextInput(name="Comment", placeholder="what was done", width=320)
        self.ack = pn.widgets.Button(name="Acknowledge", button_type="warning", width=130)
        self.resolve = pn.widgets.Button(name="Resolve", button_type="success", width=110)
        self.message = pn.pane.Markdown("", name="alerts-message")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), selectable="checkbox", disabled=True, pagination="local", page_size=20,
            height=520, name="alerts-table", show_index=False,
        )  # fmt: skip
        for w in (self.site, self.severity, self.state):
            w.param.watch(lambda *_: self.update(), "value")
        self.ack.on_click(lambda _: self.act("acknowledge"))
        self.resolve.on_click(lambda _: self.act("resolve"))
        self.layout = pn.Column(
            pn.Row(self.site, self.severity, self.state),
            self.table,
            pn.Row(
                self.who,
                self.comment,
                pn.Column(pn.Spacer(height=18), pn.Row(self.ack, self.resolve)),
            ),
            self.message,
            name="Alerts",
        )

    def rows(self) -> pd.DataFrame:
        state = self.state.value
        rows = data.alerts(
            URL, state if state in ("open", "acknowledged", "resolved") else None,
            None if self.site.value == "All" else self.site.value,
            None if self.severity.value == "All" else self.severity.value,
        )  # fmt: skip
        if state == "active" and not rows.empty:
            rows = rows[rows["state"] != "resolved"]
        return rows

    def update(self) -> None:
        if not URL:
            return
        rows = self.rows()
        columns = [
            "id",
            "severity",
            "state",
            "site_id",
            "device_id",
            "rule",
            "message",
            "opened_at",
            "count",
            "acknowledged_by",
            "ack_comment",
            "resolved_by",
        ]
        shown = rows.reindex(columns=columns) if not rows.empty else pd.DataFrame(columns=columns)
        for c in ("opened_at",):
            shown[c] = pd.to_datetime(shown[c], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
        self.table.value = shown.fillna("")

    def act(self, action: str) -> None:
        selected = self.table.selected_dataframe
        who = self.signer or (self.who.value or "").strip()
        if selected.empty:
            self.message.object = "Select one or more alerts first."
            return
        if not who:
            self.message.object = "Enter your name: acknowledgements and resolutions are signed."
            return
        engine = alert_engine(data.database(URL).engine, settings)
        done = [
            int(i)
            for i in selected["id"]
            if getattr(engine, action)(int(i), who, self.comment.value or "")
        ]
        data.alerts.clear()
        verb = "acknowledged" if action == "acknowledge" else "resolved"
        self.message.object = f"{len(done)} alert(s) {verb} by {escape(who)}: {', '.join(f'#{i}' for i in done) or 'none (already in that state)'}"
        self.comment.value = ""
        self.update()


# -- Devices ------------------------------------------------------------------------------------------


class DevicesPage:
    def __init__(self) -> None:
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, name="devices-table", height=420,
            formatters={"availability 24 h": {"type": "progress", "max": 1, "legend": True}},
        )  # fmt: skip
        self.note = pn.pane.Markdown("", name="devices-note")
        self.layout = pn.Column("### Devices", self.note, self.table, name="Devices")

    def update(self) -> None:
        if not (URL and PLANT_FILE):
            self.note.object = "No database or plant file configured."
            return
        live_seen = {}
        if bus is not None:
            for key, d in bus.state.snapshot()[0].items():
                try:
                    live_seen[key] = datetime.fromisoformat(d["ts"])
                except (TypeError, ValueError):
                    continue
        rows = data.devices(URL, PLANT_FILE, live_seen, datetime.now(UTC))
        online = int((rows["communication"] == "online").sum()) if not rows.empty else 0
        self.note.object = f"{online} of {len(rows)} devices online · newest reading from the live bus or the database · availability over the last 24 h"
        self.table.value = rows.assign(**{"availability 24 h": rows["availability 24 h"].round(3)})


# -- the app ------------------------------------------------------------------------------------------

live, history, alerts_page, devices_page = LivePage(), HistoryPage(), AlertsPage(), DevicesPage()
tabs = pn.Tabs(
    *(p.layout for p in (live, history, alerts_page, devices_page)), dynamic=False, name="pages"
)
if pn.state.location:
    pn.state.location.sync(tabs, {"active": "page"})
for refresh in (
    live.update,
    live.update_alerts,
    history.update,
    alerts_page.update,
    devices_page.update,
):
    refresh()
callbacks = [
    pn.state.add_periodic_callback(live.update, period=250),
    pn.state.add_periodic_callback(live.update_alerts, period=10_000),
    pn.state.add_periodic_callback(alerts_page.update, period=15_000),
    pn.state.add_periodic_callback(devices_page.update, period=15_000),
]
pn.state.on_session_destroyed(lambda _ctx: [cb.stop() for cb in callbacks])

access = (
    f"Signed in as **{escape(pn.state.user)}** · [log out](./logout)"
    if pn.state.user
    else "Open access (demo mode: no login configured)"
)
sidebar = [
    pn.pane.Markdown(
        f"**Plant file**  \n<code>{escape(PLANT_FILE or '—')}</code>\n\n{access}\n\n"
        "Live values arrive over the MQTT live bus; KPIs come from the hourly/daily/monthly tables "
        "Dagster keeps up to date.",
    )
]
template = pn.template.FastListTemplate(
    title=TITLE, main=[tabs], sidebar=sidebar, header_background=ACCENT, accent_base_color=ACCENT,
    sidebar_width=260,
)  # fmt: skip
template.servable(title=TITLE)
