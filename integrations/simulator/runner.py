"""Run the simulated plant: back-fill history into the landing, serve inverters, publish weather."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from integrations.mqtt.entities import MQTT_ENTITIES
from integrations.simulator.devices import (
    SimulatedInverter,
    SimulatedMeter,
    backfill_frames,
    initial_energy_wh,
    json_payload,
    publish_json,
)
from integrations.simulator.modbus_server import serve_inverters
from integrations.simulator.physics import weather
from integrations.simulator.registers import as_served, inverter_models
from integrations.simulator.scenarios import Fault, Scenario
from integrations.sunspec_modbus.entities import INVERTER_ENTITIES
from pv_platform import clock
from pv_platform.bus import BrokerAddress
from pv_platform.coordinator import wait_or_stop
from pv_platform.landing import SegmentWriter
from pv_platform.plant import Plant
from pv_platform.readings import entity_key
from pv_platform.vocabulary import Metric

log = logging.getLogger(__name__)
UNITS = {d.key: (d.unit, str(d.device_class)) for d in (*INVERTER_ENTITIES, *MQTT_ENTITIES)}
UNITS.update(
    {
        f"mppt{i}_{k}": u
        for i in range(1, 9)
        for k, u in (
            (Metric.DC_CURRENT, ("A", "current")),
            (Metric.DC_VOLTAGE, ("V", "voltage")),
            (Metric.DC_POWER, ("W", "power")),
            ("temperature", ("°C", "temperature")),
        )
    }
)


COUNTERS = (Metric.AC_ENERGY, Metric.EXPORT_ENERGY, Metric.IMPORT_ENERGY)  # lifetime counters [Wh]


def backfill_landing(
    plant: Plant,
    landing_dir: Path,
    seed: int,
    start: datetime,
    end: datetime,
    step_s: int = 60,
    scenario: Scenario | None = None,
    counters_end_at_start: bool = False,
    counters_end_at: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Write history [start, end) straight into landing segments; returns each inverter's final counter [Wh].

    Rows are written as CSV directly (no per-row validation): the values come from the model, not a device.
    `counters_end_at_start`: lifetime counters are shifted to end where a history written from `end`
    starts (older history added before newer, e.g. the demo's month: no counter goes backwards).
    `counters_end_at`: entity key -> the value [Wh] a counter's history ends at (where the live
    readings of a simulator that ran before anyone read it start).
    """
    writer = SegmentWriter(landing_dir, writer_name="backfill", max_rows=50_000, max_age_s=1e9)
    counters: dict[str, float] = {}
    rows, models = 0, inverter_models(plant)
    for site in plant.sites:
        for device_id, frame in backfill_frames(site, seed, start, end, step_s, scenario).items():
            if counters_end_at_start or counters_end_at:
                frame = frame.copy()
                for counter in COUNTERS:
                    if counter in frame and len(frame):
                        end_wh = (counters_end_at or {}).get(
                            entity_key(site.id, device_id, counter), frame[counter].iloc[0]
                        )
                        frame[counter] += end_wh - frame[counter].iloc[-1]
            if (site.id, device_id) in models:  # read over Modbus when live: at its resolution
                frame = as_served(frame, models[(site.id, device_id)])
            iso = [ts.isoformat() for ts in frame.index]
            for metric in frame.columns:
                key = entity_key(site.id, device_id, metric)
                unit, device_class = UNITS.get(metric, ("", ""))
                lines = [
                    f"{key},{t},{v!r}\n" for t, v in zip(iso, frame[metric].tolist(), strict=True)
                ]
                writer.add_rows(lines, {key: {"unit": unit, "device_class": device_class}})
                rows += len(lines)
            for counter in COUNTERS:
                if counter in frame:
                    counters[entity_key(site.id, device_id, counter)] = float(
                        frame[counter].iloc[-1]
                    )
    writer.close()
    log.info("back-filled %d readings from %s to %s", rows, start.isoformat(), end.isoformat())
    return counters


def _weather_values(site, seed: int, ts: datetime) -> dict[str, float]:
    row = weather(site, pd.DatetimeIndex([pd.Timestamp(ts)]), seed).iloc[0]
    return {k: float(v) for k, v in row.items()}


class LivePayload:
    """A device's next MQTT message with its live faults applied: silent (nothing), frozen sensor (the
    value held from the fault's start), malformed (every k-th message garbage), grid outage (meter)."""

    def __init__(self, values, fields: dict[str, str], faults: list[Fault]) -> None:
        self.values, self.fields, self.faults = values, fields, faults
        self.frozen: dict[str, float] = {}
        self.sent = 0

    def __call__(self, ts: datetime) -> bytes | None:
        active = [f for f in self.faults if f.active(ts)]
        if any(f.kind == "device_silent" for f in active):
            return None
        self.sent += 1
        for fault in active:
            if fault.kind == "malformed_payloads" and self.sent % fault.every == 0:
                return b'{"ts": "garbage", "poa": [1, 2'  # truncated JSON, as a flaky gateway sends
        values = dict(self.values(ts))
        for fault in active:
            if fault.kind == "frozen_sensor" and fault.metric in values:
                values[fault.metric] = self.frozen.setdefault(fault.metric, values[fault.metric])
            if fault.kind == "grid_outage":
                values.update(grid_voltage=0.0, grid_frequency=0.0, power_factor=0.0)
        for metric in list(self.frozen):
            if not any(f.kind == "frozen_sensor" and f.metric == metric for f in active):
                del self.frozen[metric]
        return json.dumps(json_payload(values, self.fields, ts)).encode()


def _inverters(
    plant: Plant, seed: int, counters: dict, scenario: Scenario | None
) -> list[SimulatedInverter]:
    """The plant's SunSpec inverters, simulated; a mixed fleet, as in real plants: every second
    inverter speaks the float model 113 instead of 103."""
    models = inverter_models(plant)
    return [
        SimulatedInverter(
            site, dev, seed, counters.get(entity_key(site.id, dev.id, Metric.AC_ENERGY), initial_energy_wh(dev)),
            model_id=models[(site.id, dev.id)],
            faults=scenario.for_device(site.id, dev.id) if scenario else [],
        )
        for site in plant.sites for dev in site.devices if (site.id, dev.id) in models
    ]  # fmt: skip


def _publishers(plant, inverters, seed, counters, scenario, broker, interval_s, stop) -> list:
    """One publishing task per MQTT weather station and meter of the plant."""
    tasks = []
    for site in plant.sites:
        site_inverters = [inv for inv in inverters if inv.site.id == site.id]
        for dev in site.devices:
            if dev.integration != "mqtt" or dev.kind not in ("weather_station", "meter"):
                continue
            faults = scenario.for_device(site.id, dev.id) if scenario else []
            if dev.kind == "weather_station":
                values = functools.partial(_weather_values, site, seed)
            else:
                values = SimulatedMeter(
                    site, dev, site_inverters,
                    counters.get(entity_key(site.id, dev.id, Metric.EXPORT_ENERGY), 5e7),
                    counters.get(entity_key(site.id, dev.id, Metric.IMPORT_ENERGY), 5e5),
                ).values  # fmt: skip
            make = LivePayload(values, dev.config["fields"], faults)
            label = f"{site.id}.{dev.id}"
            tasks.append(
                asyncio.create_task(
                    publish_json(label, dev.config["topic"], make, broker, interval_s, stop)
                )
            )
    return tasks


async def run_simulator(
    plant: Plant,
    broker: BrokerAddress | None,
    stop: asyncio.Event,
    *,
    seed: int = 42,
    landing_dir: Path | None = None,
    backfill_hours: float = 0.0,
    weather_interval_s: float = 5.0,
    update_interval_s: float = 1.0,
    ready: asyncio.Event | None = None,
    scenario: Scenario | None = None,
    backfill_end: datetime | None = None,
) -> list[SimulatedInverter]:
    """Serve the plant until `stop` is set. History is back-filled first when asked, up to `backfill_end`
    (default: now, to the minute)."""
    counters: dict[str, float] = {}
    if backfill_hours > 0 and landing_dir is not None:
        end = backfill_end or clock.now().replace(second=0, microsecond=0)
        # from a whole hour: a partial first hour would fail its completeness check for nothing
        start = (end - timedelta(hours=backfill_hours)).replace(minute=0)
        counters = await asyncio.to_thread(
            backfill_landing, plant, landing_dir, seed, start, end, 60, scenario
        )
    inverters = _inverters(plant, seed, counters, scenario)
    servers, _ = await serve_inverters(inverters)
    tasks = []
    if broker is not None:
        tasks = _publishers(
            plant, inverters, seed, counters, scenario, broker, weather_interval_s, stop
        )
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            now = clock.now()
            site_weather = {
                site.id: weather(site, pd.DatetimeIndex([pd.Timestamp(now)]), seed)
                for site in plant.sites
            }
            for inv in inverters:
                inv.update(now, site_weather[inv.site.id])
                await asyncio.sleep(
                    0
                )  # keep the Modbus servers answering while a large fleet updates
            await wait_or_stop(stop, update_interval_s)
    finally:
        for task in tasks:
            task.cancel()
        for server in servers:
            await server.shutdown()
    return inverters
