"""What the dashboard reads, through the storage module only, cached per server process (`pn.cache`):
one query serves every session and widget until its time-to-live passes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import panel as pn

from pv_platform.alerts.kpi_rules import STRING_CURRENT_LIKE
from pv_platform.alerts.limits import fleet_from_settings, realtime_thresholds
from pv_platform.alerts.realtime import communication_status
from pv_platform.kpi.periods import SITE_DEVICE, total
from pv_platform.plant import Plant, load_plant
from pv_platform.settings import get_settings
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore

GRAIN_TABLE = {
    "hour": "kpi_hourly",
    "day": "kpi_daily",
    "month": "kpi_monthly",
    "year": "kpi_yearly",
}


@pn.cache
def database(url: str) -> Database:
    return Database(url, pool_size=3)


@pn.cache(ttl=60)
def plant(path: str) -> Plant:
    return load_plant(path)


@pn.cache(ttl=30, max_items=256)
def kpis(
    url: str, grain: str, site_id: str, device_id: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """KPI rows of one site (device '*') or inverter at an hour/day/month/year grain in [start, end)."""
    return database(url).kpis.read(
        GRAIN_TABLE[grain], start, end, site_id=site_id, device_id=device_id
    )


@pn.cache(ttl=30, max_items=64)
def fleet(url: str, grain: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Site rows of every site at a grain in [start, end) (the fleet view)."""
    return database(url).kpis.read(GRAIN_TABLE[grain], start, end, device_id=SITE_DEVICE)


COVERAGE_GRAIN = {"day": "daily", "month": "monthly", "year": "yearly"}


@pn.cache(ttl=30, max_items=64)
def coverage(url: str, grain: str, site_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """How many hours each day/month of a site was computed from (`kpi_coverage`)."""
    if grain not in COVERAGE_GRAIN:
        return pd.DataFrame(columns=["period_start", "hours_expected", "hours_present"])
    return database(url).kpis.coverage(COVERAGE_GRAIN[grain], start, end, site_id)


def with_coverage(rows: pd.DataFrame, cover: pd.DataFrame) -> pd.DataFrame:
    """KPI rows with hours_expected / hours_present of their period (NaN where none was recorded)."""
    if rows.empty or cover.empty:
        return rows
    return rows.merge(
        cover[["period_start", "hours_expected", "hours_present"]], on="period_start", how="left"
    )


def period_total(rows: pd.DataFrame) -> dict:
    """One row of KPIs over all the given rows (ratios from summed parts)."""
    return {} if rows.empty else total(rows).iloc[0].to_dict()


@pn.cache(ttl=60, max_items=64)
def energy_heatmap(
    url: str, site_id: str, device_id: str, start: datetime, end: datetime, tz: str
) -> pd.DataFrame:
    """Energy [kWh] per local day (rows) and local hour (columns)."""
    rows = kpis(url, "hour", site_id, device_id, start, end)
    if rows.empty:
        return pd.DataFrame()
    local = rows["period_start"].dt.tz_convert(tz)
    frame = pd.DataFrame(
        {"day": local.dt.strftime("%Y-%m-%d"), "hour": local.dt.hour, "kwh": rows["energy_ac_kwh"]}
    )
    return frame.pivot_table(index="day", columns="hour", values="kwh", aggfunc="sum")


@pn.cache(ttl=60, max_items=64)
def string_heatmap(url: str, site_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Mean string current [A] per string (rows, 'inverter / mpptN') and UTC hour (columns)."""
    rows = database(url).telemetry.hourly_rollup(
        start, end, site_id=site_id, metric_like=STRING_CURRENT_LIKE
    )
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(
        string=rows["device_id"] + " / " + rows["metric"].str.removesuffix("_dc_current")
    )
    return rows.pivot_table(index="string", columns="bucket", values="avg_value", aggfunc="mean")


@pn.cache(ttl=10, max_items=64)
def alerts(url: str, state: str | None, site_id: str | None, severity: str | None) -> pd.DataFrame:
    return AlertStore(database(url).engine).list(
        state=state or None, site_id=site_id or None, severity=severity or None, limit=500
    )


def platform_clock():
    """The platform clock the running simulator, collector and Dagster share (`<landing>/clock.json`
    while they run accelerated), else the wall clock: every "now" and age the pages show."""
    from pv_platform import clock

    return clock.shared_clock(get_settings().resolved_landing_dir)


def platform_now() -> datetime:
    return platform_clock().now()


def platform_today(timezone: str) -> date:
    """Today's date in `timezone` (an IANA name) on the platform clock: the last day of the pages'
    default ranges (a site ahead of UTC is already in tomorrow)."""
    return platform_now().astimezone(ZoneInfo(timezone)).date()


@pn.cache(ttl=10, max_items=64)
def incidents(url: str, plant_file: str, site_id: str | None) -> pd.DataFrame:
    """Incidents with their symptoms, lost energy and revenue (`incident_report`), and how long each
    has been open (or was) on the platform clock: `open_for`."""
    from pv_platform.alerts.service import incident_report

    now = platform_now()
    rows = incident_report(database(url), plant(plant_file), now, None, site_id or None)
    if rows.empty:
        return rows.assign(open_for=[])
    end = pd.to_datetime(rows["resolved_at"], utc=True).fillna(pd.Timestamp(now))
    seconds = (end - pd.to_datetime(rows["opened_at"], utc=True)).dt.total_seconds()
    return rows.assign(open_for=seconds.map(age))


@pn.cache(ttl=15)
def device_history(url: str, plant_file: str) -> dict[tuple[str, str], dict]:
    """Per configured device: its newest stored reading and its time-based availability over 24 h."""
    db, the_plant = database(url), plant(plant_file)
    last = db.telemetry.last_reading_per_device()
    now = platform_now()
    day = db.kpis.read("kpi_hourly", now - timedelta(hours=24), now)
    out = {}
    for site in the_plant.sites:
        for d in site.devices:
            mine = (
                day[(day["site_id"] == site.id) & (day["device_id"] == d.id)]
                if not day.empty
                else day
            )
            out[(site.id, d.id)] = {
                "stored": last.get((site.id, d.id)),
                "availability": period_total(mine).get("availability_time", np.nan)
                if not mine.empty
                else np.nan,
            }
    return out


def devices(
    url: str,
    plant_file: str,
    live_seen: dict[tuple[str, str], datetime],
    now: datetime,
    identities: dict[tuple[str, str], dict[str, str]] | None = None,
) -> pd.DataFrame:
    """Each device's identity as it told the collector (manufacturer and model, serial, firmware:
    SunSpec Mn/Md/SN/Vr), newest reading (stored, or seen on the live bus, whichever is newer: the
    database lags by an ingest cycle), communication status against the alert rule's limit, and
    availability."""
    identities = identities or {}
    history, the_plant = device_history(url, plant_file), plant(plant_file)
    fleet = fleet_from_settings(get_settings())
    rows = []
    for site in the_plant.sites:
        thresholds = realtime_thresholds(site, fleet)
        for d in site.devices:
            h = history.get((site.id, d.id), {"stored": None, "availability": np.nan})
            seen, online = communication_status(
                thresholds, d, now, h["stored"], live_seen.get((site.id, d.id))
            )
            age_s = (now - seen).total_seconds() if seen else None
            status = "never seen" if seen is None else ("online" if online else "silent")
            rows.append(
                {
                    "site": site.id, "device": d.id, "kind": d.kind, "integration": d.integration,
                    **identity_columns(identities.get((site.id, d.id), {})),
                    "last reading (UTC)": seen.strftime("%Y-%m-%d %H:%M:%S") if seen else "—",
                    "age": age(age_s), "communication": status,
                    "availability 24 h": h["availability"],
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def identity_columns(info: dict[str, str]) -> dict[str, str]:
    """A device's identity as table cells: `manufacturer model`, serial, firmware (unknown: —)."""
    make = " ".join(v for v in (info.get("manufacturer"), info.get("model")) if v)
    return {
        "make / model": make or "—",
        "serial": info.get("serial_number") or "—",
        "firmware": info.get("sw_version") or "—",
    }


def age(seconds: float | None) -> str:
    """A duration as the pages show it: s, min or h."""
    if seconds is None or seconds != seconds:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@pn.cache(ttl=30, max_items=64)
def reports(url: str, site_id: str) -> pd.DataFrame:
    """The site's stored monthly and yearly reports (no documents), newest period first."""
    return database(url).reports.list([site_id])


def report_document(url: str, site_id: str, grain: str, period: str, fmt: str) -> bytes:
    """One stored report as PDF or HTML bytes (read when downloaded, not cached: large, rarely asked)."""
    document = database(url).reports.document(site_id, grain, period, fmt)
    if document is None:
        raise LookupError(f"no {grain} report of {site_id} for {period}")
    return document


@pn.cache(ttl=60, max_items=64)
def losses(url: str, site_id: str, device_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Daily loss analytics of one site (device '*') or inverter in [start, end) (`loss_daily`)."""
    return database(url).losses.read_daily(start, end, site_id, device_id)


@pn.cache(ttl=60, max_items=64)
def degradation(url: str, site_id: str) -> pd.DataFrame:
    """The year-on-year degradation rows of a site's devices (`degradation`)."""
    return database(url).losses.read_degradation(site_id)


@pn.cache(ttl=30, max_items=64)
def quality_failures(url: str, site_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The failed data-quality checks of a site's hours in [start, end) (`kpi_quality`)."""
    return database(url).kpis.quality_failures(start, end, site_id)


@pn.cache(ttl=30, max_items=64)
def quality_outcomes(url: str, site_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Every data-quality outcome of a site's hours in [start, end) (`kpi_quality`)."""
    return database(url).kpis.quality_outcomes(start, end, site_id)


@pn.cache(ttl=30, max_items=64)
def quality_findings(url: str, site_id: str) -> pd.DataFrame:
    """The site-level detectors' latest findings per device (`quality_findings`)."""
    return database(url).losses.read_findings(site_id)
