"""Devices page: every device of the plant file, what it says it is (make, model, serial, firmware),
online or silent, its newest reading and availability."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import panel as pn

from dashboards import data
from dashboards.common import AppContext


class DevicesPage:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, name="devices-table", height=420,
            formatters={"availability 24 h": {"type": "progress", "max": 1, "legend": True}},
        )  # fmt: skip
        self.note = pn.pane.Markdown("", name="devices-note")
        self.layout = pn.Column("### Devices", self.note, self.table, name="Devices")

    def _live_seen(self) -> dict[tuple[str, str], datetime]:
        """When the live bus last heard from each device (the database lags one ingest cycle)."""
        seen = {}
        if self.ctx.bus is not None:
            for key, d in self.ctx.bus.state.snapshot()[0].items():
                try:
                    seen[key] = datetime.fromisoformat(d["ts"])
                except (TypeError, ValueError):
                    continue
        return seen

    def update(self) -> None:
        if not (self.ctx.url and self.ctx.plant_file):
            self.note.object = "No database or plant file configured."
            return
        identities = self.ctx.bus.state.identities() if self.ctx.bus is not None else {}
        rows = data.devices(
            self.ctx.url, self.ctx.plant_file, self._live_seen(), data.platform_now(), identities
        )
        online = int((rows["communication"] == "online").sum()) if not rows.empty else 0
        self.note.object = f"{online} of {len(rows)} devices online · newest reading from the live bus or the database · availability over the last 24 h"
        self.table.value = rows.assign(**{"availability 24 h": rows["availability 24 h"].round(3)})
