"""Real-time alerting inside the collector: rules see every batch of readings; the engine's database work
runs in a worker thread every few seconds, so a slow or absent database never holds up collection."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import sqlalchemy as sa

from pv_platform import clock
from pv_platform.alerts.engine import AlertEngine
from pv_platform.alerts.kpi_rules import source_devices
from pv_platform.alerts.limits import fleet_from_settings
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.alerts.notifiers import notifiers_from_settings
from pv_platform.alerts.realtime import RealtimeRules
from pv_platform.integration import wait_or_stop
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore

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
) -> AlertEngine:
    """The alert engine with every notifier the settings configure: built here for the collector's
    real-time rules, the Dagster KPI rules and the dashboards alike."""
    engine = AlertEngine(AlertStore(db_engine))
    for notifier in notifiers_from_settings(settings, loop):
        engine.register_callback(notifier)
    return engine


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
