"""History page: KPIs of a site, an inverter or the fleet over a date range, by hour, day or month —
cards, charts, heatmaps, the table and its downloads. Every figure is read from the KPI tables (the
ratios of a range come from `data.period_total`, the KPI layer's own sums); the page only draws."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta
from html import escape

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from dashboards import data
from dashboards.common import (
    ACCENT,
    FLEET,
    AppContext,
    bar_figure,
    card,
    fmt,
    heat,
    lines,
    link_days,
)
from pv_platform.export import frame_bytes
from pv_platform.kpi.periods import SITE_DEVICE, fleet_rows, total

EMPTY = {"t": [], "a": [], "b": [], "c": [], "w": []}
NO_BANDS = {"left": [], "right": [], "top": [], "colour": [], "mask": []}
MASK_COLOURS = {  # a shaded span per period and detector family
    "stale": "#c62828", "interpolated": "#6a1b9a", "clipping": "#8d6e63", "incomplete": "#90a4ae",
    "other": "#546e7a",
}  # fmt: skip
MASK_OF = {"stale_values": "stale", "frozen_values": "stale", "interpolated_values": "interpolated",
           "clipping": "clipping", "completeness": "incomplete"}  # fmt: skip
PERIOD_FREQ = {"hour": "h", "day": "D", "month": "M"}
BAR_WIDTH_MS = {"hour": 3.0e6, "day": 6.5e7, "month": 2.0e9}
TABLE_COLUMNS = {  # KPI column -> header with its unit (what the table and the downloads show)
    "energy_ac_kwh": "energy [kWh]", "energy_expected_kwh": "expected [kWh]",
    "final_yield_h": "yield [kWh/kWp]", "pr": "PR [fraction]", "pr_temp_iec": "PR 25 °C [fraction]",
    "availability_time": "availability [fraction]", "capacity_factor_ac": "capacity factor [fraction]",
    "insolation_poa_kwh_m2": "insolation [kWh/m²]",
}  # fmt: skip


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


def pending_rollups_note(rows: pd.DataFrame, hours: pd.DataFrame, tz: str, grain: str) -> str:
    """A badge for local days/months whose hours are computed but whose roll-up is not (yet): the cards
    sum the hours, so without it they disagree with the bars while Dagster catches up."""
    if grain == "hour" or hours.empty:
        return ""
    freq = {"day": "D", "month": "M"}[grain]
    fmt_ = "%Y-%m-%d" if grain == "day" else "%Y-%m"

    def periods(frame: pd.DataFrame) -> set[str]:
        local = pd.to_datetime(frame["period_start"], utc=True).dt.tz_convert(tz)
        return set(local.dt.tz_localize(None).dt.to_period(freq).dt.strftime(fmt_))

    pending = sorted(periods(hours) - (periods(rows) if not rows.empty else set()))
    if not pending:
        return ""
    shown = ", ".join(pending[:6]) + (" …" if len(pending) > 6 else "")
    return (
        f" · **⏳ {len(pending)} {grain}(s) not rolled up yet** ({shown}): the cards sum their hours,"
        " the charts and table show them once Dagster has computed them"
    )


def summary_cards(totals: dict) -> list:
    return [
        card("Energy", fmt(totals.get("energy_ac_kwh"), ",.1f", " kWh"), "hist-energy"),
        card("Specific yield", fmt(totals.get("final_yield_h"), ",.2f", " kWh/kWp"), "hist-yield"),
        card("Performance ratio", fmt(totals.get("pr"), ".1%"), "hist-pr", f"25 °C: {fmt(totals.get('pr_temp_iec'), '.1%')}"),
        card("Availability", fmt(totals.get("availability_time"), ".1%"), "hist-availability", f"energy-based {fmt(totals.get('availability_energy'), '.1%')}"),
        card("Capacity factor", fmt(totals.get("capacity_factor_ac"), ".1%"), "hist-cf", "AC nameplate"),
        card("Expected energy", fmt(totals.get("energy_expected_kwh"), ",.1f", " kWh"), "hist-expected", f"deviation {fmt(totals.get('expected_deviation'), '+.1%')}"),
    ]  # fmt: skip


def chart_data(rows: pd.DataFrame, tz: str, grain: str) -> dict[str, dict]:
    """The four charts' columns (t, a, b, c, bar width w) from KPI rows, times in the site's zone."""
    t = list(rows["period_start"].dt.tz_convert(tz).dt.tz_localize(None))
    w, zeros = [BAR_WIDTH_MS[grain]] * len(t), [0] * len(t)

    def col(c: str) -> list[float]:
        return rows[c].astype(float).tolist()

    return {
        "pr": {"t": t, "a": col("pr"), "b": col("pr_temp_iec"), "c": col("pr_temp_nrel"), "w": w},
        "energy": {"t": t, "a": col("energy_ac_kwh"), "b": col("energy_expected_kwh"), "c": zeros, "w": w},
        "yield": {"t": t, "a": col("final_yield_h"), "b": zeros, "c": zeros, "w": w},
        "avail": {"t": t, "a": col("availability_time"), "b": col("availability_energy"), "c": col("capacity_factor_ac"), "w": w},
    }  # fmt: skip


def quality_bands(failures: pd.DataFrame, tz: str, grain: str, top: float) -> tuple[dict, str]:
    """Shaded spans over the periods holding a failed data-quality check (the detectors' masks, per hour
    in `kpi_quality`), one per period and detector family (stale, interpolated, clipping, incomplete,
    other) in its colour, as quad columns in the site's local time; and a note counting flagged hours
    per check."""
    if failures.empty:
        return dict(NO_BANDS), ""
    local = failures["period_start"].dt.tz_convert(tz).dt.tz_localize(None)
    periods = pd.DataFrame({
        "start": local.dt.to_period(PERIOD_FREQ[grain]).dt.start_time,
        "mask": failures["check_name"].map(MASK_OF).fillna("other"),
    }).drop_duplicates().sort_values(["start", "mask"])  # fmt: skip
    ends = (periods["start"].dt.to_period(PERIOD_FREQ[grain]) + 1).dt.start_time
    half = (ends.to_numpy() - periods["start"].to_numpy()) / 2  # bars are centred on their period
    hours = failures.drop_duplicates(["period_start", "check_name"])["check_name"].value_counts()
    note = " · **data-quality flags:** " + ", ".join(f"{name} {n} h" for name, n in hours.items())
    bands = {"left": list(periods["start"] - half), "right": list(periods["start"] + half),
             "top": [top] * len(periods), "colour": list(periods["mask"].map(MASK_COLOURS)),
             "mask": list(periods["mask"])}  # fmt: skip
    return bands, note


def table_rows(rows: pd.DataFrame, tz: str) -> pd.DataFrame:
    """The table's rows: site, local period, the KPI columns with units in their headers."""
    shown = rows.assign(period=rows["period_start"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M"))
    shown = shown[["site_id", "period", *TABLE_COLUMNS]]
    return shown.rename(columns={**TABLE_COLUMNS, "site_id": "site", "period": f"period ({tz})"})


def _charts(sources: dict[str, ColumnDataSource]) -> list:
    pr = bar_figure("Performance ratio: raw, to 25 °C (IEC), weather-corrected (NREL)", "PR")
    lines(pr, sources["pr"], (
        ("a", ACCENT, "PR"), ("b", "#ef6c00", "PR 25 °C"), ("c", "#6a1b9a", "PR NREL", "dashed"),
    ), "bottom_left")  # fmt: skip
    energy = bar_figure("Energy: actual vs expected [kWh]; shaded: data-quality masks", "kWh")
    energy.quad(left="left", right="right", bottom=0, top="top", source=sources["quality"],
                color="colour", alpha=0.25, legend_field="mask")  # fmt: skip
    energy.vbar(x="t", top="a", width="w", source=sources["energy"], color=ACCENT, alpha=0.85,
                legend_label="actual")  # fmt: skip
    energy.scatter("t", "b", source=sources["energy"], color="#ef6c00", size=7,
                   legend_label="expected")  # fmt: skip
    energy.legend.location = "top_left"
    sy = bar_figure("Specific yield [kWh/kWp]", "kWh/kWp")
    sy.vbar(x="t", top="a", width="w", source=sources["yield"], color="#2e7d32")
    avail = bar_figure("Availability and capacity factor", "fraction")
    lines(avail, sources["avail"], (
        ("a", "#2e7d32", "availability (time)"), ("b", "#1565c0", "availability (energy)"),
        ("c", "#8d6e63", "capacity factor AC"),
    ), "bottom_left")  # fmt: skip
    return [pr, energy, sy, avail]


class HistoryPage:
    """KPIs of a site or inverter over a date range, by hour, day or month."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        plant = ctx.plant()
        sites = [s.id for s in plant.sites] if plant else []
        self._widgets(sites)
        self.summary = pn.Row()
        self.note = pn.pane.Markdown("", name="history-note")
        self.sources = {
            k: ColumnDataSource(dict(EMPTY)) for k in ("pr", "energy", "yield", "avail")
        }
        self.sources["quality"] = ColumnDataSource(dict(NO_BANDS))
        pr, energy, sy, avail = _charts(self.sources)
        self.heatmap = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.strings = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, pagination="local", page_size=24, height=360,
            name="history-table",
        )  # fmt: skip
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

    def _widgets(self, sites: list[str]) -> None:
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
            name="By", options=["hour", "day", "month"], value="day", button_type="primary",
            button_style="outline",
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

    def _site(self, site_id: str | None):
        """The picked site (the fleet view uses the first site's calendar), or None."""
        plant = self.ctx.plant()
        if not plant or not plant.sites:
            return None
        return plant.sites[0] if site_id in (None, FLEET) else plant.site(site_id)

    def _today(self, site_id: str | None):
        """Today's date in the site's own time zone on the platform clock (a site ahead of UTC is
        already in tomorrow)."""
        site = self._site(site_id)
        return data.platform_today(site.timezone if site else "UTC")

    def _devices(self, site_id: str | None) -> dict[str, str]:
        plant = self.ctx.plant()
        if not plant or not site_id or site_id == FLEET:
            return {"Site total": SITE_DEVICE}
        return {"Site total": SITE_DEVICE, **{d.id: d.id for d in plant.site(site_id).inverters}}

    def _site_changed(self, *_):
        self.device.options = self._devices(self.site.value)
        self.device.value = SITE_DEVICE
        self.update()

    def window(self) -> tuple[datetime, datetime, str]:
        """[start, end) in UTC for the picked local dates (end date included)."""
        site = self._site(self.site.value) if self.site.value else None
        tz = site.timezone if site else "UTC"
        first, last = self.dates.value
        start = local_midnight(first, tz)
        end = local_midnight(last + timedelta(days=1), tz)
        if self.grain.value == "month":
            start = start.replace(day=1)
        return start.tz_convert(UTC).to_pydatetime(), end.tz_convert(UTC).to_pydatetime(), tz

    def _read(self, grain: str, start: datetime, end: datetime):
        """(rows, per-site rows for the fleet or None, range totals, grain shown, hourly rows or None)."""
        url = self.ctx.url
        if self.site.value == FLEET:  # every site's own rows, summed per period; hours are too many
            grain = "day" if grain == "hour" else grain
            per_site = data.fleet(url, grain, start, end)
            rows = fleet_rows(per_site)
            return rows, per_site, data.period_total(rows), grain, None
        device = self.device.value or SITE_DEVICE
        rows = data.with_coverage(
            data.kpis(url, grain, self.site.value, device, start, end),
            data.coverage(url, grain, self.site.value, start, end),
        )
        hours = (
            rows if grain == "hour" else data.kpis(url, "hour", self.site.value, device, start, end)
        )
        return rows, None, data.period_total(hours), grain, hours

    def update(self) -> None:
        if not self.ctx.url or not self.site.value:
            self.note.object = "No database or plant file configured."
            return
        start, end, tz = self.window()
        t0 = time.perf_counter()
        rows, per_site, totals, grain, hours = self._read(self.grain.value, start, end)
        self.query_s = time.perf_counter() - t0
        self.summary.objects = summary_cards(totals)
        label = {"hour": "hourly", "day": "daily", "month": "monthly"}[grain]
        pending = "" if hours is None else pending_rollups_note(rows, hours, tz, grain)
        if rows.empty:
            self.note.object = (
                f"No {label} KPIs for {escape(str(self.site.value))} in this range yet." + pending
            )
            for key, source in self.sources.items():
                source.data = dict(NO_BANDS if key == "quality" else EMPTY)
            self.table.value = self.shown = pd.DataFrame()
            return
        sites = f" of {per_site['site_id'].nunique()} sites" if per_site is not None else ""
        self.note.object = (
            f"{len(rows):,} {label} rows{sites} · times in {tz} · read in {self.query_s * 1000:.0f} ms"
            + incomplete_note(rows, tz, grain)
            + pending
        )
        for key, columns in chart_data(rows, tz, grain).items():
            self.sources[key].data = columns
        self.note.object += self._quality(rows, start, end, tz, grain, per_site is not None)
        if per_site is not None:  # fleet: one table row per site instead of heatmaps
            self.heatmap.visible = self.strings.visible = False
            rows = total(per_site).assign(period_start=rows["period_start"].min())
        else:
            self.heatmap.visible = self.strings.visible = True
            self.heatmap.object = self._energy_heatmap(start, end, tz)
            self.strings.object = self._string_heatmap(start, end)
        self._show_table(table_rows(rows, tz), grain)
        self.note.object += f" · page built in {(time.perf_counter() - t0) * 1000:.0f} ms"

    def _quality(self, rows, start, end, tz: str, grain: str, fleet: bool) -> str:
        """Mark the periods with failed data-quality checks on the energy chart (a site, not the fleet)."""
        failures = (
            pd.DataFrame()
            if fleet
            else data.quality_failures(self.ctx.url, self.site.value, start, end)
        )
        top = float(rows[["energy_ac_kwh", "energy_expected_kwh"]].max().max() or 1.0) * 1.05
        self.sources["quality"].data, note = quality_bands(failures, tz, grain, top)
        return note

    def _show_table(self, shown: pd.DataFrame, grain: str) -> None:
        self.table.formatters = {c: {"type": "money", "precision": 3} for c in shown.columns[2:]}
        self.shown = shown.reset_index(drop=True)
        self.table.value = shown.round(3)
        stem = f"pvp-history-{self.site.value}-{self.device.value or SITE_DEVICE}-{grain}-{self.dates.value[0]}-{self.dates.value[1]}"
        for kind, button in zip(("csv", "parquet"), self.downloads, strict=True):
            button.filename = (
                re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("*", "site")) + f".{kind}"
            )

    def _energy_heatmap(self, start, end, tz):
        grid = data.energy_heatmap(
            self.ctx.url, self.site.value, self.device.value or SITE_DEVICE, start, end, tz
        )
        fig = figure(height=300, title="Energy by local day × hour [kWh]", toolbar_location=None, sizing_mode="stretch_width",
                     x_range=(-0.5, 23.5), y_range=list(grid.index) if not grid.empty else ["—"])  # fmt: skip
        if grid.empty:
            return fig
        heat(fig, grid.stack().reset_index(name="kwh"), "hour", "day", "kwh", 1, "Viridis256")
        fig.xaxis.axis_label = "hour"
        return fig

    def _string_heatmap(self, start, end):
        grid = data.string_heatmap(self.ctx.url, self.site.value, start, end)
        fig = figure(height=300, title="String current by hour [A]", toolbar_location=None, sizing_mode="stretch_width",
                     x_axis_type="datetime", y_range=list(grid.index) if not grid.empty else ["no string data"])  # fmt: skip
        if grid.empty:
            return fig
        long = grid.stack().reset_index(name="amps")
        long["bucket"] = pd.to_datetime(long["bucket"]).dt.tz_localize(None)
        heat(fig, long, "bucket", "string", "amps", 3.6e6, "Inferno256")
        return fig
