"""Register images of real SunSpec devices, made from their makers' published register maps
(tests/fixtures/sunspec/*.json: layout, lengths and quirks as documented, values illustrative; encoded
by pysunspec2 from its own model definitions): served over Modbus TCP, read by our coordinator with
hand-worked expectations, and cross-checked point by point against pysunspec2 reading the same device.

Quirks they carry: a common model of 65 registers (no pad) in both; NaN for the DC values and
temperatures Fronius does not support in its float model, DC per MPPT in model 160 instead; a
second common model (the meter's) after SolarEdge's inverter model, and a meter model (203) we do
not decode and must skip by its length; power factor in percent, as the SunSpec models define it (the
platform keeps a fraction)."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from pathlib import Path

import pytest
import sunspec2.modbus.client as pysunspec
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from integrations.sunspec_modbus.check import model_chain
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from integrations.sunspec_modbus.models import MODELS, decode_model
from pv_platform.coordinator import DeviceInfo
from pv_platform.services import free_port, port_is_open

FIXTURES = Path(__file__).parent / "fixtures" / "sunspec"


def registers(name: str) -> tuple[dict, list[int]]:
    description = json.loads((FIXTURES / name).read_text())
    words = [int(w, 16) for block in description["registers"] for w in block.split()]
    return description, words


class ServedImage:
    """A register image served from address 40000 by a pymodbus server in a background thread."""

    def __init__(self, name: str) -> None:
        self.description, self.words = registers(name)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main():
            device = SimDevice(
                id=self.description["unit_id"],
                simdata=[SimData(40000, values=self.words + [0] * 8, datatype=DataType.REGISTERS)],
            )
            self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self.server.serve_forever()

        self._loop.run_until_complete(main())

    def __enter__(self) -> ServedImage:
        self._thread.start()
        for _ in range(200):
            if port_is_open("127.0.0.1", self.port, 0.05):
                return self
            time.sleep(0.05)
        raise AssertionError("the image server did not start")

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self._loop).result(10)
        self._thread.join(10)


def ours(served: ServedImage) -> tuple[SunSpecCoordinator, dict, dict]:
    """Our coordinator's identity and values, and every model we decode, decoded."""

    async def go():
        config = SunSpecModbusConfig(host="127.0.0.1", port=served.port, unit_id=1)
        coordinator = SunSpecCoordinator("site", "inv", config)
        values = await coordinator._async_update()
        decoded = {
            m: decode_model(MODELS[m], await coordinator._read(address, length))
            for m, (address, length) in coordinator.models.items()
            if m in MODELS
        }
        await coordinator.async_close()
        return coordinator, values, decoded

    return asyncio.run(go())


def theirs(served: ServedImage) -> dict[int, dict]:
    """pysunspec2's reading of the first instance of each model (the device's own)."""
    device = pysunspec.SunSpecModbusClientDeviceTCP(
        slave_id=1, ipaddr="127.0.0.1", ipport=served.port
    )
    try:
        device.scan()
        out = {}
        for model_id, instances in device.models.items():
            if isinstance(model_id, int) and model_id in MODELS:
                model = instances[0]
                model.read()
                out[model_id] = {
                    n: p.cvalue for n, p in model.points.items() if n not in ("ID", "L")
                }
                for group in getattr(model, "groups", {}).values():
                    out[model_id]["repeats"] = [
                        {n: p.cvalue for n, p in g.points.items()}
                        for g in (group if isinstance(group, list) else [group])
                    ]
        return out
    finally:
        device.close()


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def assert_agree(mine: dict[int, dict], reference: dict[int, dict]) -> int:
    """Every point of every model both decode is equal (scale factors applied, sentinels None);
    returns how many points were compared."""
    compared = 0
    assert set(mine) == set(reference)
    for model_id, values in reference.items():
        kinds = {p.name: p.type for p in (*MODELS[model_id].points, *MODELS[model_id].repeating)}
        for name, value in values.items():
            if name == "repeats":
                for i, block in enumerate(value):
                    for point, v in block.items():
                        assert same(mine[model_id]["repeats"][i].get(point), v), (
                            model_id,
                            i,
                            point,
                        )
                        compared += 1
            elif kinds.get(name) not in (None, "sunssf", "pad"):
                assert same(mine[model_id].get(name), value), (
                    model_id,
                    name,
                    mine[model_id].get(name),
                    value,
                )
                compared += 1
    return compared


def test_a_solaredge_inverter_with_its_meter_behind_it():
    with ServedImage("solaredge_three_phase_with_meter.json") as served:
        coordinator, values, decoded = ours(served)
        reference = theirs(served)
    # its own identity, not the meter's (a second common model further down the chain)
    assert coordinator.device_info == DeviceInfo(
        manufacturer="SolarEdge", model="SE10K-RW0TEBNN4", serial_number="7E1234AB",
        sw_version="0004.0017.0037",
    )  # fmt: skip
    assert model_chain(coordinator.models) == (
        "1 common (65 regs @40004), 103 inverter_three_phase (50 regs @40071),"
        " 203 not decoded by PV Platform (105 regs @40190)"
    )
    # hand-worked: value x 10^SF
    assert values["ac_power"] == 9978.0  # 9978 x 10^0 W
    assert values["ac_current"] == pytest.approx(43.08)  # 4308 x 10^-2 A
    assert values["ac_voltage_an"] == pytest.approx(231.6)  # 2316 x 10^-1 V
    assert values["ac_frequency"] == pytest.approx(50.012)  # 50012 x 10^-3 Hz
    assert values["ac_reactive_power"] == -512.0  # int16 0xFE00
    # SunSpec's power factor is in percent (9977 x 10^-2 = 99.77 %); the platform's is a fraction
    assert decoded[103]["PF"] == pytest.approx(99.77) and values["power_factor"] == pytest.approx(
        0.9977
    )
    assert values["ac_energy"] == 123456789.0  # acc32 [Wh]
    assert (values["dc_current"], values["dc_voltage"], values["dc_power"]) == pytest.approx(
        (22.51, 452.3, 10181.0)
    )
    assert values["cabinet_temperature"] is None  # 0x8000: SolarEdge fills only the heat sink
    assert decoded[103]["TmpSnk"] == pytest.approx(45.12)
    assert values["operating_state"] == 4.0 and coordinator.operating_state == "MPPT"
    assert "active_power_limit_pct" not in values  # no model 123: no limit is known, none reported
    assert assert_agree(decoded, reference) == 6 + 31  # common; 103 less its scale factors


def test_a_fronius_symo_in_float_mode():
    with ServedImage("fronius_symo_float.json") as served:
        coordinator, values, decoded = ours(served)
        reference = theirs(served)
    assert coordinator.device_info == DeviceInfo(
        manufacturer="Fronius", model="Symo 10.0-3-M", serial_number="28136344",
        sw_version="0.3.30.2",
    )  # fmt: skip
    assert decoded[1]["Opt"] == "3.14.1-10"  # Fronius puts the Datamanager's firmware here
    assert [int(m) for m in coordinator.models] == [1, 113, 120, 121, 122, 123, 160]
    assert coordinator.models[113] == (40071, 60)  # register 40072 in Fronius' 1-based numbering
    assert coordinator.models[160] == (40265, 48)  # 8 + 2 MPPT x 20
    assert values["ac_power"] == pytest.approx(3358.0)
    assert values["ac_frequency"] == pytest.approx(49.99, abs=1e-5)  # float32
    assert values["dc_power"] == pytest.approx(3446.5)
    assert values["power_factor"] == pytest.approx(0.9991)  # 99.91 % in the float model
    # not supported by Fronius in the float model (NaN): missing, never 0
    assert values["dc_current"] is None and values["dc_voltage"] is None
    assert values["cabinet_temperature"] is None
    # per MPPT from model 160 (DCA_SF -2, DCV_SF -1, DCW_SF 0)
    assert (values["mppt1_dc_current"], values["mppt1_dc_voltage"], values["mppt1_dc_power"]) == (
        pytest.approx((5.31, 421.5, 2238.0))
    )
    assert (values["mppt2_dc_current"], values["mppt2_dc_voltage"], values["mppt2_dc_power"]) == (
        pytest.approx((2.72, 438.0, 1191.0))
    )
    assert decoded[120]["WRtg"] == 10000.0 and decoded[120]["ARtg"] == pytest.approx(16.04)
    # immediate controls (123): WMaxLimPct 6000 x 10^-2 = 60.00 % of WMax, enabled (WMaxLim_Ena 1): the
    # active-power limit in force, which the loss waterfall uses to price curtailment
    assert decoded[123]["WMaxLimPct"] == pytest.approx(60.0) and decoded[123]["WMaxLim_Ena"] == 1
    assert values["active_power_limit_pct"] == pytest.approx(60.0)
    assert coordinator.descriptions["active_power_limit_pct"].unit == "%"
    # points less scale factors and pads: common 6, 113: 31, 120: 16, 123: 21, 160: 3 + 2 MPPT x 10
    assert assert_agree(decoded, reference) == 6 + 31 + 16 + 21 + 3 + 2 * 10
