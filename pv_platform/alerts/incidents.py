"""Incidents: alerts grouped by root cause. A site-level cause (a grid outage, a failed weather station)
absorbs the device symptoms it explains; a device fault absorbs its own availability, PR and string
symptoms. Pure functions: which incident explains an alert, and what an incident cost (lost energy and
revenue from the hourly KPIs)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pandas as pd

SITE = "*"  # an incident's scope: the whole site, else one device
# symptoms a cause on one device explains on that same device
DEVICE_EXPLAINS: dict[str, set[str]] = {
    "equipment_fault": {"availability_drop", "underperformance", "low_efficiency", "string_fault",
                        "string_outlier", "data_quality", "communication_lost", "over_temperature"},
    "communication_lost": {"availability_drop", "data_quality", "underperformance", "quarantine_flood"},
    "availability_drop": {"underperformance", "data_quality", "equipment_fault"},
    "string_fault": {"underperformance", "string_outlier", "hot_spot"},
    "hot_spot": {"underperformance", "string_outlier", "string_fault"},
    "low_efficiency": {"underperformance"},
    "over_temperature": {"underperformance", "low_efficiency"},
    "underperformance": {"low_efficiency", "string_outlier"},
}  # fmt: skip
# what a failed weather station explains on its site's inverters: the expected-power model and the
# daylight test run on its sun (not a string's share of its peers' current, nor a device's own data);
# and every site-level finding (an implausible site PR, every inverter short alike)
WEATHER_EXPLAINS = {"underperformance", "availability_drop"}
WEATHER_CAUSES = {"communication_lost", "data_quality", "quarantine_flood"}
# a symptom's evidence may start this long before its cause opened (a KPI hour starts before the trip)
LEAD = timedelta(hours=1)


def evidence_time(alert: Mapping) -> datetime:
    """When an alert's evidence starts: the judged hour of a KPI alert, else its opening time."""
    hour = (alert.get("context") or {}).get("hour")
    return pd.Timestamp(hour).to_pydatetime() if hour else alert["opened_at"]


def scope_of(alert: Mapping, kinds: Mapping[tuple[str, str], str]) -> str:
    """SITE for a site-level cause (a grid outage, any alert of a weather station or the site), else
    the alert's device."""
    device = alert["device_id"]
    if alert["rule"] == "grid_outage" or device == SITE:
        return SITE
    if (
        kinds.get((alert["site_id"], device)) == "weather_station"
        and alert["rule"] in WEATHER_CAUSES
    ):
        return SITE
    return device


def explains(incident: Mapping, alert: Mapping, kinds: Mapping[tuple[str, str], str]) -> bool:
    """Does the open (or recently closed) `incident` explain `alert` as a symptom of its cause?"""
    if incident["site_id"] != alert["site_id"]:
        return False
    ended = incident.get("resolved_at")
    t = evidence_time(alert)
    if t < incident["opened_at"] - LEAD or (ended is not None and t > ended):
        return False
    cause, rule = incident["cause_rule"], alert["rule"]
    if incident["scope"] == SITE:
        if cause == "grid_outage":
            return True  # no inverter produces into a dead grid; every symptom follows
        if kinds.get((incident["site_id"], incident["cause_device"])) == "weather_station":
            return rule in WEATHER_EXPLAINS or alert["device_id"] in (
                SITE,
                incident["cause_device"],
            )
        return alert["device_id"] == SITE  # a site-level finding explains only site-level ones
    return alert["device_id"] == incident["scope"] and rule in DEVICE_EXPLAINS.get(cause, set())


def pick_incident(
    alert: Mapping, incidents: list[Mapping], kinds: Mapping[tuple[str, str], str]
) -> Mapping | None:
    """The incident that absorbs `alert`: a grid outage first (nothing produces into a dead grid),
    then the device's own cause, then another site-level cause (a weather station: a trip during its
    failure is the trip's); None when the alert is a cause of its own."""

    def rank(incident: Mapping) -> tuple:
        grid = incident["scope"] == SITE and incident["cause_rule"] == "grid_outage"
        return (0 if grid else 1 if incident["scope"] != SITE else 2, incident["opened_at"])

    ranked = sorted(incidents, key=rank)
    return next((i for i in ranked if explains(i, alert, kinds)), None)


def lost_energy_kwh(
    hourly: pd.DataFrame, devices: list[str], start: datetime, end: datetime
) -> float:
    """Energy an incident cost: expected minus actual AC energy of its devices while it was open
    [kWh], each hour weighted by its overlap with [start, end) (never negative per hour).

    hourly : `kpi_hourly` rows (site_id, device_id, period_start, energy_expected_kwh, energy_ac_kwh)
    devices : the affected inverters
    """
    if hourly.empty or not devices:
        return 0.0
    rows = hourly[hourly["device_id"].isin(devices)]
    t0 = pd.to_datetime(rows["period_start"], utc=True)
    a, b = pd.Timestamp(start), pd.Timestamp(end)
    overlap_h = ((t0 + pd.Timedelta(hours=1)).clip(upper=b) - t0.clip(lower=a)).dt.total_seconds()
    weight = (overlap_h / 3600.0).clip(lower=0.0)
    lost = (rows["energy_expected_kwh"] - rows["energy_ac_kwh"]).clip(lower=0.0).fillna(0.0)
    return float((lost * weight).sum())


def incident_costs(
    incidents: pd.DataFrame, hourly: pd.DataFrame, plant, now: datetime
) -> pd.DataFrame:
    """The incidents with `lost_energy_kwh` (expected - actual of their inverters from opening to end,
    or to `now` while open; a site-wide incident: every inverter of the site) and, where the site has a
    tariff in the plant file, `lost_revenue` and `currency`."""
    sites = {s.id: s for s in plant.sites}
    energy, revenue, currency = [], [], []
    for i in incidents.itertuples():
        site = sites.get(i.site_id)
        inverters = [d.id for d in site.inverters] if site else []
        devices = inverters if i.scope == SITE else [d for d in i.devices if d in inverters]
        end = i.resolved_at if i.resolved_at is not None and i.resolved_at == i.resolved_at else now
        mine = hourly[hourly["site_id"] == i.site_id] if not hourly.empty else hourly
        kwh = lost_energy_kwh(mine, devices, i.opened_at, end)
        price = site.tariff_per_kwh if site else None
        energy.append(round(kwh, 3))
        revenue.append(round(kwh * price, 2) if price is not None else None)
        currency.append(site.currency if price is not None else None)
    return incidents.assign(lost_energy_kwh=energy, lost_revenue=revenue, currency=currency)
