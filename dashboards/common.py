"""What every dashboard page shares: the session's context (database, plant file, live bus), number
formats, KPI cards and chart helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from dashboards import data
from dashboards.live import LiveBus
from pv_platform.plant import Plant

TITLE = "PV Platform"
ACCENT = "#1f4e79"
SEVERITY_COLOURS = {
    "CRITICAL": "#b71c1c", "HIGH": "#e65100", "MEDIUM": "#f9a825", "LOW": "#1565c0", "INFO": "#546e7a",
}  # fmt: skip
FLEET = "All sites (fleet)"
MAX_LINK_DAYS = 3660  # a History deep link shows at most ten years
CSS = """
.pvp-card {border: 1px solid #dde3ea; border-radius: 8px; padding: 10px 14px; background: #fff;}
.pvp-card-title {color: #5f6b7a; font-size: 13px;}
.pvp-card-value {font-size: 22px; white-space: nowrap; font-weight: 600; color: #1f2d3d; margin-top: 2px;}
.pvp-card-note {color: #8a96a3; font-size: 12px; min-height: 14px;}
.pvp-tile {border: 1px solid #dde3ea; border-radius: 8px; padding: 8px 12px; width: 180px; background: #fff;}
.pvp-tile b {font-size: 14px;} .pvp-tile .kw {font-size: 20px; font-weight: 600;}
.pvp-sev {color: #fff; border-radius: 4px; padding: 1px 6px; font-size: 12px;}
"""


@dataclass(frozen=True)
class AppContext:
    """The database URL, plant file, settings and live bus one dashboard session reads."""

    url: str | None
    plant_file: str | None
    settings: object
    bus: LiveBus | None

    def plant(self) -> Plant | None:
        return data.plant(self.plant_file) if self.plant_file else None


def site_select(plant: Plant | None) -> tuple[list[str], pn.widgets.Select]:
    """(the plant's site ids, a site picker showing the first): the pages' common first widget."""
    sites = [s.id for s in plant.sites] if plant else []
    return sites, pn.widgets.Select(
        name="Site", options=sites, value=sites[0] if sites else None, width=180
    )


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


def bar_figure(title: str, y_label: str, height: int = 260):
    fig = figure(
        height=height, x_axis_type="datetime", title=title, toolbar_location="right",
        tools="pan,xwheel_zoom,box_zoom,reset,save", sizing_mode="stretch_width",
    )  # fmt: skip
    fig.yaxis.axis_label = y_label
    return fig


def lines(fig, source: ColumnDataSource, series: tuple, legend_at: str) -> None:
    """One line per (column, colour, legend label[, dash]) of `source`, the legend placed at `legend_at`."""
    for column, colour, label, *dash in series:
        fig.line("t", column, source=source, color=colour, line_width=2, legend_label=label,
                 line_dash=dash[0] if dash else "solid")  # fmt: skip
    fig.legend.location = legend_at


def heat(fig, long: pd.DataFrame, x: str, y: str, value: str, width: float, palette: str) -> None:
    """Heatmap cells of `long` (one row per cell), coloured by `value` from 0 to its maximum."""
    mapper = LinearColorMapper(palette=palette, low=0, high=float(long[value].max() or 1))
    fig.rect(x=x, y=y, width=width, height=1, source=ColumnDataSource(long),
             fill_color={"field": value, "transform": mapper}, line_color=None)  # fmt: skip


def severity_badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#555")
    return f"<span class='pvp-sev' style='background:{colour}'>{escape(str(severity))}</span>"
