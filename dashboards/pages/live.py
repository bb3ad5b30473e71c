"""Live page: plant power, irradiance, instantaneous PR, export, one tile per inverter, the last hour,
the newest alerts — pushed from the MQTT live bus, no database query for the live values."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from html import escape

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from dashboards import data
from dashboards.common import ACCENT, AppContext, Card, fmt, fmt_power, severity_badge
from pv_platform.kpi.yields import performance_ratio
from pv_platform.plant import Plant
from pv_platform.vocabulary import Metric, OperatingState

# SunSpec operating states (model 1xx `St`) in an operator's words
STATE_WORDS = {"MPPT": "producing", "SHUTTING_DOWN": "shutting down"}
STATE_COLOURS = {"producing": "#2e7d32", "fault": "#c62828", "throttled": "#ef6c00"}


def state_word(code: float) -> str:
    name = OperatingState.name_of(code)
    return STATE_WORDS.get(name, name.lower()) if name else "unknown"


@dataclass(frozen=True)
class PlantNow:
    """The plant this instant, from the newest live value of each device."""

    inverters: dict[tuple[str, str], dict]  # (site, device) -> its newest values
    power_w: float
    poa_wm2: float
    poa_sensors: int
    pr: float
    export_w: float | None  # None: no meter reporting


def plant_now(devices: dict, plant: Plant | None) -> PlantNow:
    """Sum the inverters' AC power, average the POA sensors, the instantaneous PR E/(P₀·H) of an hour
    at this power and irradiance (IEC 61724-1), and the meter's export."""
    rated = {(s.id, d.id): d for s in plant.sites for d in s.inverters} if plant else {}
    meters = (
        {(s.id, d.id) for s in plant.sites for d in s.devices if d.kind == "meter"}
        if plant
        else set()
    )
    inverters = {
        k: v["values"]
        for k, v in devices.items()
        if k in rated or (not plant and Metric.OPERATING_STATE in v["values"])
    }
    power_w = sum(v.get(Metric.AC_POWER, 0.0) for v in inverters.values())
    poa = [
        d["values"][Metric.POA_IRRADIANCE]
        for d in devices.values()
        if Metric.POA_IRRADIANCE in d["values"]
    ]
    poa_wm2 = float(np.mean(poa)) if poa else float("nan")
    p_dc_kw = sum(d.p_dc_kw for k, d in rated.items() if k in inverters)
    pr = (
        float(performance_ratio(power_w / 1000.0, poa_wm2 / 1000.0, p_dc_kw))
        if p_dc_kw and poa and poa_wm2 > 50
        else float("nan")
    )
    reporting = meters & devices.keys()
    export_w = (
        sum(devices[k]["values"].get(Metric.AC_POWER, 0.0) for k in reporting)
        if reporting
        else None
    )
    return PlantNow(inverters, power_w, poa_wm2, len(poa), pr, export_w)


def inverter_tiles(inverters: dict[tuple[str, str], dict]) -> str:
    tiles = []
    for (site_id, device_id), values in sorted(inverters.items()):
        state = state_word(values.get(Metric.OPERATING_STATE, 0))
        colour = STATE_COLOURS.get(state, "#5f6b7a")
        site_id, device_id = escape(site_id), escape(device_id)  # from the topic: any text
        tiles.append(
            f"<div class='pvp-tile' data-device='{device_id}'><b>{device_id}</b> <small>{site_id}</small>"
            f"<div class='kw'>{fmt_power(values.get('ac_power', 0.0))}</div>"
            f"<span style='color:{colour}'>● {state}</span></div>"
        )
    return f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(tiles)}</div>"


class LivePage:
    """Plant power, irradiance, instantaneous PR, export, one tile per inverter, the last hour, new alerts."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
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
        bus = self.ctx.bus
        if bus is None:
            self.status.object = "No MQTT broker configured (`PVP_MQTT_URL`): live values are off."
            return
        devices, history, messages = bus.state.snapshot()
        if messages == self.seen_messages:
            return
        self.seen_messages = messages
        now = plant_now(devices, self.ctx.plant())
        self.power.set(fmt_power(now.power_w), f"{len(now.inverters)} inverters reporting")
        self.poa.set(fmt(now.poa_wm2, ",.0f", " W/m²"), f"{now.poa_sensors} sensor(s)")
        self.pr.set(fmt(now.pr, ".1%"), "AC / (P₀ · G/1000)")
        self.export.set("—" if now.export_w is None else fmt_power(now.export_w), "at the meter")
        self.tiles.object = inverter_tiles(now.inverters)
        clock, wall_now = data.platform_clock(), time.time()
        now = clock.now()
        if history:  # received at wall times: shown on the platform clock (an accelerated demo too)
            self.source.data = {
                "t": [now - timedelta(seconds=(wall_now - t) * clock.speed) for t, _ in history],
                "kw": [w / 1000.0 for _, w in history],
            }
        state = "connected" if bus.state.connected else "reconnecting"
        self.status.object = (
            f"Live bus {state} · {messages:,} messages · updated {now:%H:%M:%S} UTC"
        )

    def update_alerts(self) -> None:
        if not self.ctx.url:
            return
        rows = data.alerts(self.ctx.url, None, None, None)
        active = rows[rows["state"] != "resolved"].head(6) if not rows.empty else rows
        if active.empty:
            self.alerts.object = "<i>No active alert.</i>"
            return
        now = pd.Timestamp(data.platform_now())
        self.alerts.object = "<br>".join(
            f"{severity_badge(r.severity)} {pd.Timestamp(r.opened_at):%H:%M}"
            f" ({data.age((now - pd.Timestamp(r.opened_at)).total_seconds())} ago)"
            f" {escape(str(r.message))}"
            for r in active.itertuples()
        )
