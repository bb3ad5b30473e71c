"""One Modbus hub per bus (integrations/sunspec_modbus/hub.py), against the simulator's devices:
two units behind one Modbus TCP gateway and two on one RS-485 line (a socat pty pair). Both units'
readings are the simulator's, the devices never see two requests at once, and a unit that does not
answer fails only itself."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.framer import FramerRTU

from integrations.simulator.devices import SimulatedInverter
from integrations.simulator.modbus_server import serve_inverters
from integrations.simulator.scenarios import Fault
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from integrations.sunspec_modbus.hub import HubRegistry
from pv_platform.collector import Collector
from pv_platform.coordinator import UpdateFailed
from pv_platform.plant import PlantFileError, parse_plant
from pv_platform.services import free_port
from pv_platform.settings import Settings
from tests.conftest import demo_plant_dict

TURNAROUND_S = 0.03  # each simulated device takes this long to answer, as real inverters do


def plant_on_one_bus(configs: list[dict]) -> dict:
    """The test site with one inverter per config (ids inv1, inv2, ...) and nothing else."""
    spec = demo_plant_dict([free_port() for _ in configs])
    inverters = [d for d in spec["sites"][0]["devices"] if d["kind"] == "inverter"]
    for device, config in zip(inverters, configs, strict=True):
        device["config"] = config
    spec["sites"][0]["devices"] = inverters
    return spec


def simulated(plant, served_ids: set[str], faults=None) -> list[SimulatedInverter]:
    """The plant's inverters that the simulator serves (the others are absent from the bus);
    alternately SunSpec model 103 (integer + scale factors) and 113 (float)."""
    site = plant.sites[0]
    return [
        SimulatedInverter(site, d, seed=7, model_id=113 if i % 2 else 103,
                          faults=(faults or {}).get(d.id, []))
        for i, d in enumerate(site.devices) if d.id in served_ids
    ]  # fmt: skip


async def collect_for(plant, seconds: float, tmp_path) -> tuple[Collector, list]:
    """Run the collector (every coordinator in its own task, polling concurrently) for a while."""
    collector = Collector(plant, Settings(segment_max_age_s=0.5), tmp_path / "landing", None)
    readings: list = []
    collector.hooks.append(readings.extend)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return collector, readings


def assert_served(readings, inverters: list[SimulatedInverter]) -> None:
    """Every reading of a served inverter equals what the simulator serves (its image is frozen: the
    test never advances it)."""
    for inv in inverters:
        mine = [r for r in readings if r.entity.split(".")[1] == inv.device.id]
        assert len(mine) >= 2 * 13, (inv.device.id, len(mine))  # >= 2 polls of every entity
        for r in mine:
            metric = r.entity.split(".")[2]
            assert r.value == pytest.approx(inv.served[metric], rel=1e-6, abs=1e-6), (r.entity,)
        assert {r.entity.split(".")[2] for r in mine} >= {"ac_power", "ac_energy", "mppt2_dc_power"}


def test_two_units_behind_one_tcp_gateway_share_one_connection(tmp_path):
    """inv1 (unit 1, model 103) and inv2 (unit 2, model 113) behind one gateway, inv3 (unit 3)
    configured but absent: the gateway answers 'no response' for it."""
    port = free_port()
    tcp = {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.2, "timeout_s": 1, "retries": 0}
    plant = parse_plant(plant_on_one_bus([{**tcp, "unit_id": u} for u in (1, 2, 3)]))
    inverters = simulated(plant, {"inv1", "inv2"})

    async def go():
        servers, monitors = await serve_inverters(inverters, turnaround_s=TURNAROUND_S)
        try:
            collector, readings = await collect_for(plant, 3.0, tmp_path)
        finally:
            for server in servers:
                await server.shutdown()
        return collector, readings, monitors[("tcp", "127.0.0.1", port)]

    collector, readings, line = asyncio.run(go())
    coordinators = {c.device_id: c for c in collector.coordinators}
    hubs = collector.shared["sunspec_modbus.hubs"].hubs
    assert len(hubs) == 1 and len({id(c.hub) for c in coordinators.values()}) == 1
    assert_served(readings, inverters)
    assert line.requests[1] >= 6 and line.requests[2] >= 6  # scan + polls of each unit
    assert line.max_in_flight == 1 and line.overlaps == 0  # never two requests at once
    assert coordinators["inv1"].available and coordinators["inv2"].available
    inv3 = coordinators["inv3"]
    assert not inv3.available and inv3.failures_total >= 1
    assert "unit 3 on 127.0.0.1:" in inv3.last_error, inv3.last_error
    assert not any(r.entity.startswith("testsite.inv3.") for r in readings)
    assert next(iter(hubs.values())).users == 0  # every unit released the hub when it stopped


def test_without_a_shared_hub_the_gateway_sees_requests_at_once():
    """The check above can fail: two coordinators each on their own connection (as before the hub)
    make the gateway's devices answer two requests at the same time."""
    port = free_port()
    tcp = {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.2}
    plant = parse_plant(plant_on_one_bus([{**tcp, "unit_id": u} for u in (1, 2)]))
    inverters = simulated(plant, {"inv1", "inv2"})

    async def go():
        servers, monitors = await serve_inverters(inverters, turnaround_s=TURNAROUND_S)
        alone = [
            SunSpecCoordinator("testsite", d.id, SunSpecModbusConfig.model_validate(d.config))
            for d in plant.sites[0].devices
        ]
        for _ in range(5):
            await asyncio.gather(*(c.poll_once() for c in alone))
        for c in alone:
            await c.async_close()
        for server in servers:
            await server.shutdown()
        return monitors[("tcp", "127.0.0.1", port)]

    assert asyncio.run(go()).overlaps > 0


def test_a_unit_timing_out_behind_a_gateway_does_not_fail_the_other(tmp_path):
    """inv1 answers 2 s late (its timeout: 0.5 s); inv2 on the same connection keeps its values.
    After inv1's timeout the hub opens a fresh connection, so the late answer is never taken for
    inv2's."""
    port = free_port()
    tcp = {
        "host": "127.0.0.1",
        "port": port,
        "poll_interval_s": 0.2,
        "timeout_s": 0.5,
        "retries": 0,
    }
    plant = parse_plant(plant_on_one_bus([{**tcp, "unit_id": u} for u in (1, 2)]))
    now = datetime.now(UTC)
    slow = Fault(kind="modbus_slow", device="inv1", start=now - timedelta(hours=1), delay_s=2.0)
    inverters = simulated(plant, {"inv1", "inv2"}, faults={"inv1": [slow]})

    async def go():
        servers, monitors = await serve_inverters(inverters)
        try:
            return (await collect_for(plant, 4.0, tmp_path)), monitors
        finally:
            for server in servers:
                await server.shutdown()

    (collector, readings), _ = asyncio.run(go())
    inv1, inv2 = collector.coordinators
    assert not inv1.available and inv1.failures_total >= 2 and inv1.polls_total >= 2
    assert "unit 1" in inv1.last_error
    assert inv2.available and inv2.failures_total == 0, inv2.last_error
    assert_served(readings, inverters[1:])
    assert not any(r.entity.startswith("testsite.inv1.") for r in readings)


def test_two_units_on_one_serial_line(serial_line, tmp_path):
    """RS-485 at 19200 8N1 over a pty pair: units 1 and 2 served, unit 3 absent (nobody answers: a
    timeout). Both served units read the simulator's values through one hub, one request at a time,
    and the silent unit 3 does not fail them."""
    served_end, client_end = serial_line
    rtu = {"baudrate": 19200, "poll_interval_s": 0.3, "timeout_s": 0.5, "retries": 0}
    client = parse_plant(
        plant_on_one_bus([{**rtu, "serial_port": client_end, "unit_id": u} for u in (1, 2, 3)])
    )
    server = parse_plant(
        plant_on_one_bus([{**rtu, "serial_port": served_end, "unit_id": u} for u in (1, 2, 3)])
    )
    inverters = simulated(server, {"inv1", "inv2"})

    async def go():
        servers, monitors = await serve_inverters(inverters, turnaround_s=TURNAROUND_S)
        try:
            collector, readings = await collect_for(client, 5.0, tmp_path)
        finally:
            for s in servers:
                await s.shutdown()
        (line,) = monitors.values()
        return collector, readings, line

    collector, readings, line = asyncio.run(go())
    coordinators = {c.device_id: c for c in collector.coordinators}
    assert len(collector.shared["sunspec_modbus.hubs"].hubs) == 1
    assert_served(readings, inverters)
    assert line.requests[1] >= 6 and line.requests[2] >= 6
    assert line.max_in_flight == 1 and line.overlaps == 0
    assert coordinators["inv1"].available and coordinators["inv2"].available
    assert coordinators["inv1"].failures_total == coordinators["inv2"].failures_total == 0
    inv3 = coordinators["inv3"]
    assert not inv3.available and inv3.failures_total >= 2
    assert f"unit 3 on {client_end}" in inv3.last_error, inv3.last_error


def test_the_last_unit_to_stop_closes_the_connection():
    port = free_port()
    tcp = {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.2}
    plant = parse_plant(plant_on_one_bus([{**tcp, "unit_id": u} for u in (1, 2)]))
    inverters = simulated(plant, {"inv1", "inv2"})

    async def go():
        servers, _ = await serve_inverters(inverters)
        registry = HubRegistry()
        one, two = (
            SunSpecCoordinator(
                "testsite", d.id, SunSpecModbusConfig.model_validate(d.config),
                hub=registry.hub_for(f"testsite.{d.id}", SunSpecModbusConfig.model_validate(d.config)),
            )
            for d in plant.sites[0].devices
        )  # fmt: skip
        await asyncio.gather(one.poll_once(), two.poll_once())
        hub = one.hub
        seen = [(hub.users, hub.connected)]
        await one.async_close()
        seen.append((hub.users, hub.connected))
        assert await two.poll_once()  # still reads on the connection it shares
        await two.async_close()
        seen.append((hub.users, hub.connected))
        for server in servers:
            await server.shutdown()
        return seen

    assert asyncio.run(go()) == [(2, True), (1, True), (0, False)]


def test_conflicting_line_settings_on_one_serial_port_name_both_devices():
    rtu = {"serial_port": "/dev/ttyUSB0", "unit_id": 1}
    spec = plant_on_one_bus([{**rtu, "baudrate": 9600}, {**rtu, "unit_id": 2, "baudrate": 19200}])
    with pytest.raises(PlantFileError) as err:
        parse_plant(spec, "plant.yaml")
    message = str(err.value)
    assert message.startswith("plant.yaml: serial line /dev/ttyUSB0:")
    assert "testsite.inv1 is set to /dev/ttyUSB0 (RTU 9600 8N1)" in message
    assert "testsite.inv2 to /dev/ttyUSB0 (RTU 19200 8N1)" in message
    same_unit = plant_on_one_bus([{"host": "10.0.0.9", "port": 502, "unit_id": 4}] * 2)
    with pytest.raises(PlantFileError, match=r"10.0.0.9:502: testsite.inv1 and testsite.inv2 both"):
        parse_plant(same_unit, "plant.yaml")
    # other ports, other lines: no conflict
    parse_plant(
        plant_on_one_bus([{**rtu, "baudrate": 9600}, {**rtu, "serial_port": "/dev/ttyUSB1"}])
    )


class LateRtuPeer:
    """The far end of an RS-485 line (the served end of a pty pair), answering Modbus RTU reads of
    holding registers (function 3) from each unit's register image, one request at a time; no mock of
    the client. The `late` unit answers on purpose after the client gave up: its answer is held back
    and goes out on the line with the next answer of another unit, in the same write (two frames
    that close together reach the master in one read, as a USB RS-485 adapter's latency timer
    delivers them), or with `alone=True` on its own as soon as the next request arrives. Deterministic:
    what the client reads depends on the order of requests, not on timing."""

    def __init__(self, port: str, images: dict[int, list[int]], late: int, alone: bool = False):
        import serial  # pyserial, as pymodbus uses

        self.line = serial.Serial(port, 19200, timeout=0.01)
        self.images, self.late, self.alone = images, late, alone
        self.held: list[bytes] = []
        self.requests: list[tuple[int, int, int]] = []  # (unit, address, count) as received
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def frame(body: bytes) -> bytes:
        return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")

    def _answer(self, unit: int, address: int, count: int) -> bytes:
        image = self.images[unit]
        if not 40000 <= address <= address + count <= 40000 + len(image):
            return self.frame(bytes([unit, 0x83, 0x02]))  # exception: illegal data address
        regs = image[address - 40000 : address - 40000 + count]
        body = bytes([unit, 3, 2 * count]) + b"".join(r.to_bytes(2, "big") for r in regs)
        return self.frame(body)

    def _serve(self) -> None:
        buffer = b""
        while not self.stop.is_set():
            buffer += self.line.read(64)
            while len(buffer) >= 8:  # a read request: unit, 3, address, count, CRC
                request, buffer = buffer[:8], buffer[8:]
                assert self.frame(request[:6]) == request, request.hex()
                unit, address, count = request[0], *struct.unpack(">HH", request[2:6])
                self.requests.append((unit, address, count))
                if self.alone and self.held:
                    self.line.write(self.held.pop(0))
                    time.sleep(0.005)
                if unit not in self.images:
                    continue  # nobody at this address: the client times out
                answer = self._answer(unit, address, count)
                time.sleep(TURNAROUND_S)
                if unit == self.late:
                    self.held.append(answer)
                    continue
                late, self.held = b"".join(self.held), []
                self.line.write(late + answer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.line.close()


def test_a_unit_answering_late_on_a_serial_line_does_not_fail_the_other(serial_line, tmp_path):
    """Unit 1 always answers after its 0.5 s timeout, its late answer arriving in one read with unit 2's
    answer: unit 2's answer was thrown away with it (pymodbus 3.16's RTU framer consumes the whole
    read after the first frame) and unit 2 timed out. Now the hub's framer takes one frame at a time
    and drops the stranger's; unit 2 reads every value, unit 1 fails alone."""
    served_end, client_end = serial_line
    rtu = {"baudrate": 19200, "poll_interval_s": 0.3, "timeout_s": 0.5, "retries": 0}
    client = parse_plant(
        plant_on_one_bus([{**rtu, "serial_port": client_end, "unit_id": u} for u in (1, 2)])
    )
    inverters = simulated(client, {"inv1", "inv2"})
    images = {inv.config.unit_id: [*inv.modbus_device().simdata[0].values] for inv in inverters}
    peer = LateRtuPeer(served_end, images, late=1)
    try:
        collector, readings = asyncio.run(collect_for(client, 5.0, tmp_path))
    finally:
        peer.close()
    inv1, inv2 = collector.coordinators
    assert not inv1.available and inv1.failures_total >= 2 and "unit 1" in inv1.last_error
    assert inv2.available and inv2.failures_total == 0, inv2.last_error
    assert_served(readings, inverters[1:])
    assert not any(r.entity.startswith("testsite.inv1.") for r in readings)
    units = [u for u, _, _ in peer.requests]
    assert units.count(1) >= 2 and units.count(2) >= 6, units


def test_a_late_answer_to_another_request_of_the_same_unit_is_dropped(serial_line):
    """Unit 1's late answer to a read of 2 registers arrives while the hub waits for its answer to a
    read of 4 elsewhere: same unit, same function, but not this request's answer. It was returned as
    the 4 registers (2 values, of the wrong address); now it is dropped and the read fails."""
    served_end, client_end = serial_line
    image = [0x5375, 0x6E53, *range(100, 200)]
    peer = LateRtuPeer(served_end, {1: image}, late=1, alone=True)
    config = SunSpecModbusConfig(serial_port=client_end, baudrate=19200, unit_id=1)

    async def go():
        hub = HubRegistry().hub_for("testsite.inv1", config)
        hub.acquire()
        outcomes = []
        for address, count in ((40000, 2), (40010, 4)):
            try:
                outcomes.append(await hub.read(1, address, count, timeout_s=0.4, retries=0))
            except UpdateFailed as exc:
                outcomes.append(str(exc))
        await hub.release()
        return outcomes

    try:
        first, second = asyncio.run(go())
    finally:
        peer.close()
    assert peer.requests == [(1, 40000, 2), (1, 40010, 4)]
    assert first.startswith(f"unit 1 on {client_end}"), first  # its answer came too late
    assert isinstance(second, str) and second.startswith(f"unit 1 on {client_end}"), second


def test_each_unit_keeps_its_own_timeout_on_a_shared_hub():
    """pymodbus keeps one timeout per client; the hub applies each unit's own to its requests (through
    the client's transaction manager: this test breaks if a pymodbus upgrade moves it)."""
    port = free_port()
    tcp = {"host": "127.0.0.1", "port": port}
    plant = parse_plant(plant_on_one_bus([{**tcp, "unit_id": u} for u in (1, 2)]))
    now = datetime.now(UTC)
    slow = Fault(kind="modbus_slow", device="inv1", start=now - timedelta(hours=1), delay_s=3.0)
    inverters = simulated(plant, {"inv1", "inv2"}, faults={"inv1": [slow]})

    async def failed_after(hub, timeout_s: float) -> float:
        started = time.monotonic()
        with pytest.raises(UpdateFailed, match="unit 1 on 127.0.0.1"):
            await hub.read(1, 40000, 2, timeout_s=timeout_s, retries=0)
        return time.monotonic() - started

    async def go():
        servers, _ = await serve_inverters(inverters)
        hub = HubRegistry().hub_for("testsite.inv1", SunSpecModbusConfig(**tcp, unit_id=1))
        hub.acquire()
        elapsed = [await failed_after(hub, 0.3), await failed_after(hub, 1.2)]
        assert await hub.read(2, 40000, 2, timeout_s=0.3, retries=0) == [0x5375, 0x6E53]
        await hub.release()
        for server in servers:
            await server.shutdown()
        return elapsed

    short, longer = asyncio.run(go())
    assert 0.25 <= short < 0.9 and 1.15 <= longer < 2.0, (short, longer)
