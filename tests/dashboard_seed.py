"""Seed a database for the dashboard's browser tests and benchmark: three days of simulated history up to
the last whole hour (with an inverter trip), its hourly and daily KPIs, and a few alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from integrations.simulator.runner import backfill_landing
from integrations.simulator.scenarios import Scenario
from pv_platform.alerts import AlertCandidate, AlertLifecycle, Severity
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import aggregate
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import Plant
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore


def seed(db: Database, plant: Plant, landing: Path, days: int = 3) -> tuple[datetime, datetime]:
    """History [end - days, end) with end the last whole hour; returns (start, end)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    trip = (end - timedelta(days=1)).replace(hour=11)  # near noon in Europe
    scenario = Scenario.model_validate(
        {"faults": [{"kind": "inverter_trip", "device": "inv2", "start": trip, "end": trip + timedelta(minutes=45)}]}
    )  # fmt: skip
    db.plant.sync(plant)
    backfill_landing(plant, landing, 4, start - timedelta(minutes=15), end, 60, scenario)
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    samples = db.telemetry.sample_set(
        start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS
    ).to_frame()
    hourly = hourly_kpis_range(samples, plant, start, end)
    db.kpis.replace("kpi_hourly", start, end, hourly)
    zones = {s.id: s.timezone for s in plant.sites}
    db.kpis.replace(
        "kpi_daily",
        start - timedelta(days=1),
        end + timedelta(days=1),
        aggregate(hourly, zones, "daily"),
    )
    engine = AlertLifecycle(AlertStore(db.engine))
    site = plant.sites[0].id
    engine.process(
        [
            AlertCandidate("equipment_fault", Severity.CRITICAL, site, "inv2", "inv2 in FAULT: GROUND_FAULT", trip),
            AlertCandidate("string_fault", Severity.HIGH, site, "inv1", "inv1 mppt2: 1.2 A against a median of 8.4 A", trip, key="mppt2"),
            AlertCandidate("communication_lost", Severity.HIGH, site, "meter1", "no reading from meter1 for 75 s", trip),
        ],
        trip,
    )  # fmt: skip
    return start, end
