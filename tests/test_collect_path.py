"""Simulator → Modbus TCP / MQTT → collector → landing, on real sockets and a real broker."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from pymodbus.client import AsyncModbusTcpClient

from integrations.simulator.runner import run_simulator
from pv_platform.bus import parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.settings import Settings


def test_pymodbus_unit_keyword_is_device_id():
    # pymodbus 3.16 renamed slave= to device_id=; our coordinator depends on it.
    params = inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    assert "device_id" in params and "slave" not in params


def _landed(landing) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for sid in list_closed(landing):
        for line in read_segment(segment_path(landing, sid)).csv_body.splitlines():
            key, ts, value = line.split(",")
            out.setdefault(key, []).append((ts, float(value)))
    return out


async def _run(plant, landing, mqtt_url, seconds: float):
    settings = Settings(mqtt_url=mqtt_url, segment_max_age_s=0.5)
    broker = parse_mqtt_url(mqtt_url)
    stop_sim, stop_col, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sim = asyncio.create_task(
        run_simulator(
            plant, broker, stop_sim, weather_interval_s=0.5, update_interval_s=3600, ready=ready
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    collector = Collector(plant, settings, landing, broker)
    col = asyncio.create_task(collector.run(stop_col))
    await asyncio.sleep(seconds)
    stop_col.set()
    await col
    stop_sim.set()
    inverters = await sim
    return collector, inverters


def test_collector_lands_what_the_simulator_serves(plant, landing, mqtt_url):
    # The simulator's update loop is slowed to once an hour, so the served image stays constant.
    collector, inverters = asyncio.run(_run(plant, landing, mqtt_url, seconds=4.0))
    landed = _landed(landing)
    assert all(c.available for c in collector.coordinators if c.device_id.startswith("inv"))
    for inv in inverters:
        prefix = f"testsite.{inv.device.id}."
        for metric, served in inv.served.items():
            values = landed.get(prefix + metric)
            assert values, f"{prefix + metric} never landed"
            assert len(values) >= 4  # polled every 0.5 s for 4 s
            assert [v for _, v in values] == pytest.approx([served] * len(values))
        assert inv.served["ac_energy"] > 100_000  # the lifetime counter, not 0
    # weather over MQTT: POA and module temperature arrive as readings
    poa = landed.get("testsite.wx1.poa_irradiance")
    assert poa and len(poa) >= 3
    assert all(0.0 <= v <= 1400.0 for _, v in poa)
    assert "testsite.wx1.module_temperature" in landed


def test_unreachable_inverter_is_unavailable_not_a_crash(plant, landing, mqtt_url):
    # No simulator: both inverters refuse connections; the collector keeps running and backs off.
    async def go():
        settings = Settings(mqtt_url=mqtt_url, segment_max_age_s=0.5)
        collector = Collector(plant, settings, landing, parse_mqtt_url(mqtt_url))
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(2.0)
        stop.set()
        await task
        return collector

    collector = asyncio.run(go())
    inverters = [c for c in collector.coordinators if c.device_id.startswith("inv")]
    assert all(not c.available and c.consecutive_failures >= 1 for c in inverters)
    assert all("connect" in (c.last_error or "") for c in inverters)
    assert inverters[0].next_delay_s() > inverters[0].poll_interval_s  # backing off
