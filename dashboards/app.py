"""PV Platform operator dashboard: Live, History, Alerts, Devices, Reports, Losses and Quality pages in one
`panel serve` app.

Live values come from the server-level MQTT live-bus subscriber and are pushed to each browser over
Panel's websocket (no database query for them); everything else reads the storage module through the
cached queries in `dashboards/data.py`. Each page is a module of `dashboards/pages/`; this file only
assembles them for one browser session (`panel serve` runs it once per session).
"""

from __future__ import annotations

from html import escape

import panel as pn

from dashboards.common import ACCENT, CSS, TITLE, AppContext
from dashboards.live import live_bus
from dashboards.pages.alerts import AlertsPage
from dashboards.pages.devices import DevicesPage
from dashboards.pages.history import HistoryPage
from dashboards.pages.live import LivePage
from dashboards.pages.losses import LossesPage
from dashboards.pages.quality import QualityPage
from dashboards.pages.reports import ReportsPage
from dashboards.sessions import add_session_timers
from pv_platform.settings import get_settings

PAGES = ["Live", "History", "Alerts", "Devices", "Reports", "Losses", "Quality"]


def context() -> AppContext:
    settings = get_settings()
    return AppContext(
        url=settings.database_url,
        plant_file=str(settings.plant_file) if settings.plant_file else None,
        settings=settings,
        bus=live_bus(),
    )


SYSTEM_FONTS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


# Panel's Fast design links Open Sans from fonts.googleapis.com on every page (panel 1.9 keeps it in
# the class's private `_resources`; a subclass cannot replace it, as resources resolve by class name).
# Plant networks are often offline and a dashboard must not call out: the font entry is emptied and the
# template uses the system fonts (tests/test_dashboard_browser.py asserts no request leaves 127.0.0.1).
pn.theme.Fast._resources = {**pn.theme.Fast._resources, "font": {}}


def build(ctx: AppContext) -> pn.template.FastListTemplate:
    """The app of one session: the seven pages as tabs (the tab in the URL's `page=`), refreshed on timers."""
    pages = (
        LivePage(ctx), HistoryPage(ctx), AlertsPage(ctx), DevicesPage(ctx), ReportsPage(ctx),
        LossesPage(ctx), QualityPage(ctx),
    )  # fmt: skip
    live, history, alerts, devices, reports, losses, quality = pages
    tabs = pn.Tabs(*(p.layout for p in pages), dynamic=False, name="pages")
    if pn.state.location:
        pn.state.location.sync(tabs, {"active": "page"})
    for refresh in (
        live.update, live.update_alerts, history.update, alerts.update, devices.update,
        reports.update, losses.update, quality.update,
    ):  # fmt: skip
        refresh()
    add_session_timers([
        (live.update, 250), (live.update_alerts, 10_000), (alerts.update, 15_000),
        (devices.update, 15_000), (reports.update, 60_000), (quality.update, 60_000),
    ])  # fmt: skip
    access = (
        f"Signed in as **{escape(pn.state.user)}** · [log out](./logout)"
        if pn.state.user
        else "Open access (demo mode: no login configured)"
    )
    sidebar = [
        pn.pane.Markdown(
            f"**Plant file**  \n<code>{escape(ctx.plant_file or '—')}</code>\n\n{access}\n\n"
            "Live values arrive over the MQTT live bus; KPIs come from the hourly/daily/monthly tables "
            "Dagster keeps up to date.",
        )
    ]
    return pn.template.FastListTemplate(
        title=TITLE, main=[tabs], sidebar=sidebar, header_background=ACCENT,
        accent_base_color=ACCENT, sidebar_width=260,
        font=SYSTEM_FONTS, font_url="",  # nothing from the internet (see the Fast design above)
    )  # fmt: skip


pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
if CSS not in pn.config.raw_css:
    pn.config.raw_css.append(CSS)
if __name__.startswith("bokeh_app"):  # `panel serve dashboards/app.py`: one app per session
    build(context()).servable(title=TITLE)
