"""`AlertEngine`: the Python face of the alert lifecycle (same rules, store and notifiers as the services)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from pv_platform import clock
from pv_platform.alerts.engine import AlertLifecycle as _Engine
from pv_platform.alerts.kpi_rules import kpi_candidates
from pv_platform.alerts.limits import fleet_from_settings, kpi_thresholds
from pv_platform.alerts.model import AlertCandidate
from pv_platform.alerts.realtime import (
    RealtimeRules,
)
from pv_platform.api.common import database_from_settings, plant_from_settings
from pv_platform.api.records import (
    INVERTER_FIELDS,
    InverterRecord,
)
from pv_platform.readings import Reading
from pv_platform.settings import Settings, get_settings
from pv_platform.storage.alerts import AlertStore
from pv_platform.vocabulary import Metric, event_bits


class AlertEngine:
    """The platform's alert engine (same rules, thresholds, cooldown and `alerts` table) for scripts:
    each detector returns the alert it opened or updated, or None."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.plant = plant_from_settings(self.settings)
        self._db = database_from_settings(self.settings)
        self.engine = _Engine(AlertStore(self._db.engine))
        self.rules = RealtimeRules(self.plant, fleet_from_settings(self.settings))

    def register_callback(self, fn: Callable) -> None:
        """fn(event, alert) — sync or async; event is opened/updated/acknowledged/resolved."""
        self.engine.register_callback(fn)

    def _apply(self, candidates: list[AlertCandidate], now: datetime) -> dict | None:
        if not candidates:
            return None
        result = self.engine.process(
            candidates, now, rules=set()
        )  # open/update only; clear nothing
        active = self.engine.store.active()
        return active.get(candidates[0].fingerprint) or (
            result.opened[0] if result.opened else None
        )

    def underperformance_detection(
        self,
        pr: float,
        *,
        site: str,
        device: str,
        expected_deviation: float,
        insolation_kwh_m2: float = 1.0,
        at: datetime | None = None,
    ) -> dict | None:
        """An hour's PR [1] and deviation from expected energy [1, negative = below]: the KPI rule."""
        now = at or clock.now()
        row = {
            "site_id": site, "device_id": device, "period_start": now - timedelta(hours=1), "pr": pr,
            "expected_deviation": expected_deviation, "insolation_poa_kwh_m2": insolation_kwh_m2,
            "availability_time": 1.0, "time_forced_outage_s": 0.0, "time_no_data_s": 0.0,
            "time_grid_outage_s": 0.0, "time_planned_s": 0.0,
        }  # fmt: skip
        limits = {site: kpi_thresholds(self.plant.site(site), fleet_from_settings(self.settings))}
        found = [
            c
            for c in kpi_candidates(pd.DataFrame([row]), pd.DataFrame(), now, limits)
            if c.rule == "underperformance"
        ]
        return self._apply(found, now)

    def _realtime(
        self, readings: list[Reading], now: datetime, rules: set[str], site: str
    ) -> dict | None:
        self.rules.feed(readings, now)  # judged at the records' own time
        found = [c for c in self.rules.evaluate(now) if c.rule in rules and c.site_id == site]
        return self._apply(found, now)

    def equipment_fault_alerts(self, record: InverterRecord) -> dict | None:
        """An inverter record through the equipment rules (FAULT state held, cabinet over-temperature,
        low conversion efficiency)."""
        values = {
            m: getattr(record, f)
            for m, f in INVERTER_FIELDS.items()
            if getattr(record, f) is not None
        }
        if record.operating_state is not None:
            values[Metric.OPERATING_STATE] = record.operating_state
        values[Metric.EVENTS] = event_bits(record.events)
        readings = [
            Reading(entity=f"{record.site_id}.{record.device_id}.{m}", ts=record.ts, value=float(v))
            for m, v in values.items()
        ]
        rules = {"equipment_fault", "over_temperature", "low_efficiency"}
        return self._realtime(readings, record.ts, rules, record.site_id)

    def grid_outage_detection(self, grid: dict) -> dict | None:
        """A meter reading {"site", "device", "ts", "frequency_hz", "voltage_v"} through the grid rule
        (out of the site's band for the hold time)."""
        site, device, ts = grid["site"], grid["device"], grid.get("ts") or clock.now()
        readings = [
            Reading(entity=f"{site}.{device}.{metric}", ts=ts, value=float(grid[key]))
            for key, metric in (
                ("frequency_hz", Metric.GRID_FREQUENCY),
                ("voltage_v", Metric.GRID_VOLTAGE),
            )
            if grid.get(key) is not None
        ]
        return self._realtime(readings, ts, {"grid_outage"}, site)

    def acknowledge(self, alert_id: int, by: str, comment: str = "") -> bool:
        return self.engine.acknowledge(alert_id, by, comment)

    def resolve(self, alert_id: int, by: str, comment: str = "") -> bool:
        return self.engine.resolve(alert_id, by, comment)

    def list(self, state: str | None = None, site: str | None = None) -> pd.DataFrame:
        return self.engine.store.list(state=state, site_id=site)

    def close(self) -> None:
        self._db.dispose()
