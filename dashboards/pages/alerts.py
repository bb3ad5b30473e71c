"""Alerts page: incidents (alerts grouped by root cause, with their symptoms and lost energy); filter
alerts; acknowledge or resolve the selected ones, signed with the login name."""

from __future__ import annotations

from html import escape

import pandas as pd
import panel as pn

from dashboards import data
from dashboards.common import SEVERITY_COLOURS, AppContext
from pv_platform.alerts.service import alert_engine

COLUMNS = [
    "id", "severity", "state", "site_id", "device_id", "rule", "message", "opened_at", "count",
    "acknowledged_by", "ack_comment", "resolved_by", "incident_id",
]  # fmt: skip
INCIDENT_COLUMNS = {
    "id": "incident", "severity": "severity", "state": "state", "site_id": "site", "scope": "scope",
    "title": "cause", "opened_at": "start", "resolved_at": "end", "open_for": "open for", "devices": "devices",
    "lost_energy_kwh": "lost energy (kWh)", "lost_revenue": "lost revenue", "currency": "currency",
    "symptoms": "symptoms",
}  # fmt: skip


class AlertsPage:
    """Filter alerts; acknowledge or resolve the selected ones with a name and a comment."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        plant = ctx.plant()
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
        self.incidents = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, pagination="local", page_size=10, height=300,
            name="incidents-table", show_index=False,
        )  # fmt: skip
        for w in (self.site, self.severity, self.state):
            w.param.watch(lambda *_: self.update(), "value")
        self.ack.on_click(lambda _: self.act("acknowledge"))
        self.resolve.on_click(lambda _: self.act("resolve"))
        self.layout = pn.Column(
            pn.Row(self.site, self.severity, self.state),
            pn.pane.Markdown("### Incidents (one per root cause)"),
            self.incidents,
            pn.pane.Markdown("### Alerts"),
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
            self.ctx.url, state if state in ("open", "acknowledged", "resolved") else None,
            None if self.site.value == "All" else self.site.value,
            None if self.severity.value == "All" else self.severity.value,
        )  # fmt: skip
        if state == "active" and not rows.empty:
            rows = rows[rows["state"] != "resolved"]
        return rows

    def update(self) -> None:
        if not self.ctx.url:
            return
        rows = self.rows()
        shown = rows.reindex(columns=COLUMNS) if not rows.empty else pd.DataFrame(columns=COLUMNS)
        shown["opened_at"] = pd.to_datetime(shown["opened_at"], utc=True).dt.strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        self.table.value = shown.fillna("")
        self.incidents.value = self.incident_rows()

    def incident_rows(self) -> pd.DataFrame:
        if not self.ctx.plant_file:
            return pd.DataFrame(columns=list(INCIDENT_COLUMNS.values()))
        site = None if self.site.value == "All" else self.site.value
        rows = data.incidents(self.ctx.url, str(self.ctx.plant_file), site)
        if self.state.value in ("open", "resolved") and not rows.empty:
            rows = rows[rows["state"] == self.state.value]
        elif self.state.value == "active" and not rows.empty:
            rows = rows[rows["state"] == "open"]
        shown = rows.reindex(columns=list(INCIDENT_COLUMNS)).rename(columns=INCIDENT_COLUMNS)
        for column in ("start", "end"):
            shown[column] = pd.to_datetime(shown[column], utc=True).dt.strftime("%Y-%m-%d %H:%M")
        shown["devices"] = shown["devices"].map(
            lambda d: ", ".join(sorted(d)) if isinstance(d, list) else ""
        )
        return shown.astype(object).fillna("")

    def act(self, action: str) -> None:
        selected = self.table.selected_dataframe
        who = self.signer or (self.who.value or "").strip()
        if selected.empty:
            self.message.object = "Select one or more alerts first."
            return
        if not who:
            self.message.object = "Enter your name: acknowledgements and resolutions are signed."
            return
        engine = alert_engine(data.database(self.ctx.url).engine, self.ctx.settings)
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
