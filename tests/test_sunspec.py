"""Our SunSpec client against an independent implementation (pysunspec2) on the simulator's devices,
and the decoder's sentinels and scale factors on hand-made registers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from datetime import timedelta

import pytest
import sunspec2.modbus.client as pysunspec

from integrations.simulator.runner import run_simulator
from integrations.simulator.scenarios import Fault, Scenario
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from integrations.sunspec_modbus.models import (
    INVERTER_THREE_PHASE,
    MODELS,
    decode_model,
    encode_model,
)
from pv_platform import clock
from pv_platform.plant import parse_plant
from pv_platform.services import free_port
from pv_platform.vocabulary import event_names
from tests.conftest import demo_plant_dict


@contextlib.contextmanager
def simulator_in_thread(plant, scenario=None):
    """The plant's simulated devices served from an event loop in a background thread, for the
    synchronous clients under test (the served image stays constant: one update an hour)."""
    loop, ready, holder = asyncio.new_event_loop(), threading.Event(), {}

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def main():
            holder["stop"] = asyncio.Event()
            started = asyncio.Event()
            task = asyncio.create_task(
                run_simulator(
                    plant,
                    None,
                    holder["stop"],
                    update_interval_s=3600,
                    ready=started,
                    scenario=scenario,
                )  # fmt: skip
            )
            await started.wait()
            ready.set()
            await task

        loop.run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(15)
        yield plant
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


@pytest.fixture
def served_plant():
    """Two simulated inverters (model 103 and model 113), served in a background thread."""
    with simulator_in_thread(parse_plant(demo_plant_dict([free_port(), free_port()]))) as plant:
        yield plant


def _ours(device) -> dict:
    async def go():
        coordinator = SunSpecCoordinator(
            "testsite", device.id, SunSpecModbusConfig.model_validate(device.config)
        )
        await coordinator.scan()
        out = {}
        for model_id, (address, length) in coordinator.models.items():
            out[model_id] = decode_model(MODELS[model_id], await coordinator._read(address, length))
        await coordinator.async_close()
        return out

    return asyncio.run(go())


def _theirs(device) -> dict:
    d = pysunspec.SunSpecModbusClientDeviceTCP(
        slave_id=1, ipaddr="127.0.0.1", ipport=device.config["port"]
    )
    try:
        d.scan()
        out = {}
        for model_id, models in d.models.items():
            if not isinstance(model_id, int):
                continue
            model = models[0]
            model.read()
            values = {
                name: point.cvalue
                for name, point in model.points.items()
                if name not in ("ID", "L")
            }
            groups = getattr(model, "groups", {})
            for group in groups.values():
                values["repeats"] = [
                    {n: p.cvalue for n, p in g.points.items()}
                    for g in (group if isinstance(group, list) else [group])
                ]
            out[model_id] = values
        return out
    finally:
        d.close()


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            a is not None
            and b is not None
            and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
        )
    return a == b


def test_pysunspec2_and_our_client_read_the_same_values(served_plant):
    inverters = [d for d in served_plant.sites[0].devices if d.kind == "inverter"]
    seen_models, repeats_compared = set(), 0
    for device in inverters:
        ours, theirs = _ours(device), _theirs(device)
        assert set(ours) == set(theirs)
        seen_models |= set(ours)
        for model_id, values in theirs.items():
            for name, value in values.items():
                if name == "repeats" or MODELS[model_id].offsets().get(name, (0, None))[1] is None:
                    continue
                point = MODELS[model_id].offsets()[name][1]
                if point.type in ("sunssf", "pad"):
                    continue
                assert _same(ours[model_id].get(name), value), (
                    device.id,
                    model_id,
                    name,
                    ours[model_id].get(name),
                    value,
                )
            repeats_compared += len(values.get("repeats", []))
            for i, block in enumerate(values.get("repeats", [])):
                for name, value in block.items():
                    assert _same(ours[model_id]["repeats"][i].get(name), value), (
                        device.id,
                        model_id,
                        i,
                        name,
                    )
    assert {1, 120, 103, 113, 160} <= seen_models
    assert repeats_compared == 2 * 2  # two MPPT blocks of model 160 on each inverter


def test_a_plant_controllers_limit_is_served_as_model_123_and_read_by_both_clients():
    """A curtailment episode (a plant controller's export limit of 5 % of the 100 kW rating, around now):
    the simulator serves immediate controls (123) with WMaxLimPct 50 × 10^-1 = 5.0 % enabled and holds
    AC power at or below 5 kW; pysunspec2 and our decoder agree on every point of 123, and our
    coordinator reports the limit as `active_power_limit_pct`."""
    now = clock.now()
    scenario = Scenario(
        faults=[Fault(kind="curtailment", limit_pct=5.0, start=now - timedelta(hours=1),
                      end=now + timedelta(hours=1))]
    )  # fmt: skip
    with simulator_in_thread(parse_plant(demo_plant_dict([free_port()])), scenario) as plant:
        device = plant.sites[0].inverters[0]
        ours, theirs = _ours(device), _theirs(device)
        coordinator = SunSpecCoordinator(
            "testsite", device.id, SunSpecModbusConfig.model_validate(device.config)
        )

        async def poll():
            try:
                return await coordinator._async_update()
            finally:
                await coordinator.async_close()

        values = asyncio.run(poll())
    assert ours[123]["WMaxLimPct"] == pytest.approx(5.0) and ours[123]["WMaxLim_Ena"] == 1
    for name, value in theirs[123].items():
        if MODELS[123].offsets()[name][1].type != "sunssf":
            assert _same(ours[123].get(name), value), (name, ours[123].get(name), value)
    assert values["active_power_limit_pct"] == pytest.approx(5.0)
    assert (
        0.0 <= values["ac_power"] <= 5000.0
    )  # W in 10 W steps (W_SF 1): held at the limit or below


def test_sentinels_are_missing_not_zero_and_scale_factors_apply():
    raw = {
        "W": 12345,
        "W_SF": 1,
        "A": 1500,
        "A_SF": -1,
        "Hz": 5001,
        "Hz_SF": -2,
        "WH": 0,
        "WH_SF": 0,
        "St": 4,
        "Evt1": (1 << 0) | (1 << 7),
    }
    regs = encode_model(
        INVERTER_THREE_PHASE, raw
    )  # every other point is encoded as "not implemented"
    decoded = decode_model(INVERTER_THREE_PHASE, regs)
    assert (
        decoded["W"] == pytest.approx(123450.0)
        and decoded["A"] == pytest.approx(150.0)
        and decoded["Hz"] == pytest.approx(50.01)
    )
    assert decoded["WH"] is None  # an accumulator of 0 is "not implemented", never a 0 reading
    assert decoded["VA"] is None and decoded["DCV"] is None  # 0x8000 / 0xFFFF sentinels
    assert event_names(decoded["Evt1"]) == ["GROUND_FAULT", "OVER_TEMP"]
    # a value whose scale factor is not implemented is missing too (never off by powers of ten)
    regs = encode_model(INVERTER_THREE_PHASE, {"W": 12345})
    assert decode_model(INVERTER_THREE_PHASE, regs)["W"] is None


def test_modbus_rtu_over_a_serial_line_reads_what_the_simulator_serves(serial_line):
    """One inverter served over RTU (19200 8N1) on a pty; our client and pysunspec2 read it at the
    other end and agree, and the values are the simulator's."""
    served_end, client_end = serial_line
    rtu = {
        "serial_port": served_end,
        "baudrate": 19200,
        "unit_id": 1,
        "timeout_s": 2,
    }
    spec = demo_plant_dict([free_port()])
    spec["sites"][0]["devices"][0]["config"] = rtu
    plant = parse_plant(spec)
    with simulator_in_thread(plant):
        device = (
            plant.sites[0]
            .devices[0]
            .model_copy(update={"config": {**rtu, "serial_port": client_end}})
        )
        ours = _ours(device)
        assert {1, 103, 120, 160} <= set(ours)
        assert ours[1]["Mn"] and ours[103]["W"] is not None and ours[103]["Hz"] > 45
        theirs = pysunspec.SunSpecModbusClientDeviceRTU(
            slave_id=1, name=client_end, baudrate=19200, parity="N", timeout=2
        )
        try:
            theirs.scan()
            model = theirs.models[103][0]
            model.read()
            for point in ("W", "Hz", "PhVphA", "DCW", "St"):
                assert _same(ours[103][point], model.points[point].cvalue), point
        finally:
            theirs.close()
