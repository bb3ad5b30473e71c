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


async def _run(plant, landing, mqtt_url, seconds: float, update_interval_s: float = 3600):
    """Simulator and collector side by side for `seconds`; the simulator's update loop is slowed to once
    an hour by default, so the served image stays constant."""
    settings = Settings(mqtt_url=mqtt_url, segment_max_age_s=0.5)
    broker = parse_mqtt_url(mqtt_url)
    stop_sim, stop_col, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sim = asyncio.create_task(
        run_simulator(
            plant,
            broker,
            stop_sim,
            weather_interval_s=0.5,
            update_interval_s=update_interval_s,
            ready=ready,
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


def test_accelerated_time_runs_a_simulated_morning_in_seconds(plant, landing, mqtt_url):
    """The simulator and the collector share an accelerated clock (2880x: a day in 30 s): ten real
    seconds land about eight simulated hours of a June day, with the sun rising in the readings and the
    energy counter following the power."""
    from datetime import UTC, datetime, timedelta

    from pv_platform.clock import set_clock

    june = datetime(2026, 6, 21, 3, 0, tzinfo=UTC)  # 05:00 in Zurich
    assert june < datetime.now(UTC) - timedelta(days=1)  # simulated time stays in the past
    set_clock(june, 2880.0)
    try:
        asyncio.run(_run(plant, landing, mqtt_url, seconds=10.0, update_interval_s=0.2))
    finally:
        set_clock()
    landed = _landed(landing)
    power = sorted(landed["testsite.inv1.ac_power"])
    stamps = [datetime.fromisoformat(ts) for ts, _ in power]
    span_h = (stamps[-1] - stamps[0]).total_seconds() / 3600
    assert 6.0 <= span_h <= 9.0, span_h
    assert all(june <= t <= june + timedelta(hours=9) for t in stamps)
    poa = sorted(landed["testsite.wx1.poa_irradiance"])
    early = [v for ts, v in poa if datetime.fromisoformat(ts) < june + timedelta(hours=1)]
    late = [v for ts, v in poa if datetime.fromisoformat(ts) > june + timedelta(hours=6)]
    assert max(early) < 300 < max(late)  # the sun rose during the run
    energy = sorted(landed["testsite.inv1.ac_energy"])
    delta_wh = energy[-1][1] - energy[0][1]
    hours = [(t - stamps[0]).total_seconds() / 3600 for t in stamps]
    integral_wh = sum(0.5 * (a + b) * (h2 - h1) for (a, b, h1, h2) in zip(
        [v for _, v in power][:-1], [v for _, v in power][1:], hours[:-1], hours[1:], strict=True))  # fmt: skip
    assert delta_wh > 50_000 and abs(delta_wh - integral_wh) / integral_wh < 0.15
