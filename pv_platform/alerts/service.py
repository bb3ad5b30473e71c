"""Real-time alerting inside the collector: rules see every batch of readings; the engine's database work
runs in a worker thread every few seconds, so a slow or absent database never holds up collection."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from pv_platform import clock
from pv_platform.alerts.engine import AlertLifecycle, EnginePolicy
from pv_platform.alerts.incidents import incident_costs
from pv_platform.alerts.kpi_rules import source_devices
from pv_platform.alerts.limits import fleet_from_settings
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.alerts.notifiers import notifiers_from_settings
from pv_platform.alerts.realtime import RealtimeRules
from pv_platform.coordinator import wait_or_stop
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from pv_platform.storage.incidents import IncidentStore

log = logging.getLogger(__name__)
REALTIME_RULES = {
    "communication_lost",
    "equipment_fault",
    "over_temperature",
    "grid_outage",
    "string_fault",
    "hot_spot",
    "low_efficiency",
    "quarantine_flood",
}
EVALUATE_EVERY_S = 2.0  # platform seconds between evaluations ...
MIN_EVALUATE_WALL_S = 0.25  # ... but not more often than this in an accelerated run (database work)


def alert_engine(
    db_engine: sa.Engine, settings, loop: asyncio.AbstractEventLoop | None = None
) -> AlertLifecycle:
    """The alert engine with every notifier the settings configure: built here for the collector's
    real-time rules, the Dagster KPI rules and the dashboards alike."""
    policy = EnginePolicy(escalate_after_s=settings.alert_escalate_after_s)
    engine = AlertLifecycle(AlertStore(db_engine), policy, device_kinds(settings))
    for notifier in notifiers_from_settings(settings, loop):
        engine.register_callback(notifier)
    return engine


def incident_report(
    db: Database,
    plant,
    now: datetime,
    state: str | None = None,
    site_id: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """The newest `limit` incidents, newest first, with their affected devices, their symptoms ("rule
    device" of each alert), lost energy [kWh] and, with a tariff, lost revenue: what the Alerts page,
    `GET /incidents` and `pvp alerts incidents` show."""
    store = IncidentStore(db.engine)
    incidents = store.list(state=state, site_id=site_id, limit=limit)
    if incidents.empty:
        return incidents.assign(symptoms=[], lost_energy_kwh=[], lost_revenue=[], currency=[])
    members = store.symptoms(incidents["id"].tolist())
    symptoms = {  # a dict: no incident of the page with alerts left is an empty mapping, not an error
        incident_id: "; ".join(f"{r.rule} {r.device_id} ({r.state})" for r in m.itertuples())
        for incident_id, m in members.groupby("incident_id")
    }
    incidents["symptoms"] = incidents["id"].map(symptoms).fillna("")
    start = pd.to_datetime(incidents["opened_at"], utc=True).min() - pd.Timedelta(hours=1)
    hourly = db.kpis.read("kpi_hourly", start.to_pydatetime(), now)
    return incident_costs(incidents, hourly, plant, now)


def device_kinds(settings) -> dict[tuple[str, str], str]:
    """(site, device) -> kind from the plant file (which alerts are a weather station's: incidents);
    empty when there is no readable plant file."""
    from pv_platform.plant import load_plant

    try:
        plant = load_plant(settings.resolved_plant_file)
    except (OSError, ValueError):
        return {}
    return {(s.id, d.id): d.kind for s in plant.sites for d in s.devices}


def quarantine_candidates(flooding: dict[str, int], plant, now: datetime) -> list[AlertCandidate]:
    """One `quarantine_flood` candidate per source whose rejected inputs are being dropped by the
    quarantine rate limit (a device or gateway sending garbage in bulk): open once, resolved when it stops."""
    devices = source_devices(plant)
    return [
        AlertCandidate(
            "quarantine_flood",
            Severity.MEDIUM,
            *devices.get(source, ("*", "*")),
            f"{dropped} rejected inputs from {source} dropped by the quarantine rate limit"
            " (the rest of the device's readings still land)",
            now,
            key="" if source in devices else source,
            context={"source": source, "dropped": dropped},
        )  # fmt: skip
        for source, dropped in sorted(flooding.items())
    ]


async def run_realtime_alerts(collector, plant, settings, stop: asyncio.Event) -> None:
    rules = RealtimeRules(plant, fleet_from_settings(settings), speed=clock.speed())
    collector.hooks.append(rules.feed)
    db = Database(settings.database_url, pool_size=1)
    engine = alert_engine(db.engine, settings, asyncio.get_running_loop())
    migrated = False
    every_s = max(MIN_EVALUATE_WALL_S, clock.wall_s(EVALUATE_EVERY_S))
    while not await wait_or_stop(stop, every_s):
        now = clock.now()  # the readings' clock: simulated time in an accelerated run
        try:
            if not migrated:
                await asyncio.to_thread(db.migrations.migrate)
                migrated = True
            candidates = rules.evaluate(now) + quarantine_candidates(
                collector.writer.flooding(), plant, now
            )
            await asyncio.to_thread(engine.process, candidates, now, REALTIME_RULES)
        except Exception as exc:  # the database is down: alerts wait, readings keep landing
            log.warning(
                "alert evaluation skipped (%s: %s); retrying in %.0f s",
                type(exc).__name__,
                exc,
                EVALUATE_EVERY_S,
            )
    db.dispose()
