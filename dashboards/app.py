"""PV Platform operator dashboard: live plant power (MQTT live bus, pushed over the websocket) and hourly PR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from dashboards.live import live_bus
from pv_platform.settings import get_settings
from pv_platform.storage import Database

pn.extension(sizing_mode="stretch_width")
TITLE = "PV Platform"
STATE_NAMES = {
    1: "off",
    2: "sleeping",
    3: "starting",
    4: "producing",
    5: "throttled",
    6: "shutting down",
    7: "fault",
    8: "standby",
}


@pn.cache
def _database(url: str) -> Database:
    return Database(url, pool_size=2)


@pn.cache(ttl=60)
def hourly_pr(url: str, hours: int = 48) -> pd.DataFrame:
    """Site-level hourly KPIs of the last `hours` (cached a minute for every session)."""
    end = datetime.now(UTC)
    return _database(url).query_df(
        "SELECT site_id, period_start, energy_ac_kwh, insolation_poa_kwh_m2, pr FROM kpi_hourly"
        " WHERE device_id = '*' AND period_start >= :start ORDER BY period_start",
        {"start": end - timedelta(hours=hours)},
    )


def fmt_power(watts: float) -> str:
    return f"{watts / 1e6:.2f} MW" if abs(watts) >= 1e6 else f"{watts / 1e3:.1f} kW"


settings = get_settings()
bus = live_bus()

plant_power = pn.indicators.Number(
    name="Plant AC power", value=0, format="{value:,.1f} kW", font_size="36pt"
)
poa = pn.indicators.Number(
    name="POA irradiance", value=0, format="{value:,.0f} W/m²", font_size="36pt"
)
live_status = pn.pane.Markdown("Waiting for the live bus…")
tiles = pn.FlexBox()

source = ColumnDataSource({"t": [], "kw": []})
power_fig = figure(
    height=260,
    sizing_mode="stretch_width",
    x_axis_type="datetime",
    title="Plant AC power, last hour [kW]",
    toolbar_location=None,
)
power_fig.line("t", "kw", source=source, line_width=2)

pr_source = ColumnDataSource({"t": [], "pr": [], "width": []})
pr_fig = figure(
    height=260,
    sizing_mode="stretch_width",
    x_axis_type="datetime",
    title="Hourly performance ratio (site)",
    toolbar_location=None,
    y_range=(0, 1.1),
)
pr_fig.vbar(x="t", top="pr", width="width", source=pr_source)
pr_table = pn.pane.Markdown("")


def update_live() -> None:
    """Copy the server-level live snapshot into this session's widgets (no database query)."""
    if bus is None:
        live_status.object = "No MQTT broker configured (PVP_MQTT_URL): live values are off."
        return
    devices, history, messages = bus.state.snapshot()
    total_w = sum(d["values"].get("ac_power", 0.0) for d in devices.values())
    plant_power.value = total_w / 1000.0
    poa_values = [
        d["values"]["poa_irradiance"] for d in devices.values() if "poa_irradiance" in d["values"]
    ]
    poa.value = float(np.mean(poa_values)) if poa_values else 0.0
    cards = []
    for (site_id, device_id), d in sorted(devices.items()):
        v = d["values"]
        if "ac_power" not in v:
            continue
        state = STATE_NAMES.get(int(v.get("operating_state", 0)), "unknown")
        cards.append(
            pn.pane.Markdown(
                f"**{site_id} / {device_id}**  \n{fmt_power(v['ac_power'])}  \n{state}",
                styles={"border": "1px solid #ddd", "border-radius": "6px", "padding": "4px 12px"},
                width=170,
                name=f"tile-{device_id}",
            )
        )
    tiles.objects = cards
    if history:
        source.data = {
            "t": [datetime.fromtimestamp(t, UTC) for t, _ in history],
            "kw": [w / 1000.0 for _, w in history],
        }
    connected = "connected" if bus.state.connected else "reconnecting"
    live_status.object = (
        f"Live bus {connected} · {messages} messages · updated {datetime.now(UTC):%H:%M:%S} UTC"
    )


def update_pr() -> None:
    if not settings.database_url:
        pr_table.object = "No database configured (PVP_DATABASE_URL)."
        return
    df = hourly_pr(settings.database_url)
    df = df[np.isfinite(df["pr"].astype(float))] if not df.empty else df
    if df.empty:
        pr_table.object = "No hourly KPIs yet: Dagster materializes them as telemetry arrives."
        pr_source.data = {"t": [], "pr": [], "width": []}
        return
    pr_source.data = {
        "t": list(pd.to_datetime(df["period_start"], utc=True)),
        "pr": df["pr"].astype(float).tolist(),
        "width": [3_000_000] * len(df),
    }
    last = df.iloc[-1]
    pr_table.object = (
        f"Latest hour {pd.Timestamp(last['period_start']):%Y-%m-%d %H:%M} UTC: PR **{float(last['pr']):.3f}**, "
        f"energy {float(last['energy_ac_kwh']):,.1f} kWh, POA insolation {float(last['insolation_poa_kwh_m2']):.3f} kWh/m²"
    )


update_live()
update_pr()
live_cb = pn.state.add_periodic_callback(update_live, period=1000)
pr_cb = pn.state.add_periodic_callback(update_pr, period=60_000)


def _stop_callbacks(session_context) -> None:
    live_cb.stop()
    pr_cb.stop()


pn.state.on_session_destroyed(_stop_callbacks)

template = pn.template.FastListTemplate(
    title=TITLE,
    main=[
        pn.Row(plant_power, poa),
        live_status,
        tiles,
        pn.pane.Bokeh(power_fig),
        pn.pane.Markdown("### Hourly performance ratio"),
        pr_table,
        pn.pane.Bokeh(pr_fig),
    ],
    header_background="#1f4e79",
)
template.servable(title=TITLE)
