"""Device identity: the SunSpec common model (Mn, Md, SN, Vr) becomes the coordinator's DeviceInfo,
which the collector publishes retained on the live bus (read by the Devices page, see
tests/test_dashboard_browser.py) and puts in the `device` block of its Home Assistant discovery
configs. The simulator's devices and the machine's MQTT broker, no stand-ins."""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from integrations.simulator.devices import SimulatedInverter
from integrations.simulator.modbus_server import serve_inverters
from integrations.sunspec_modbus.coordinator import device_info
from pv_platform.bus import parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.coordinator import DeviceInfo
from pv_platform.plant import parse_plant
from pv_platform.services import free_port
from pv_platform.settings import Settings
from tests.conftest import demo_plant_dict


def test_identity_from_the_common_model_not_implemented_points_are_none():
    common = {"Mn": "SunSpecTest", "Md": "TestInverter-1", "SN": "sn-123-456789", "Vr": "", "DA": 1}
    assert device_info(common) == DeviceInfo(
        manufacturer="SunSpecTest", model="TestInverter-1", serial_number="sn-123-456789"
    )
    assert device_info(common).as_dict() == {
        "manufacturer": "SunSpecTest",
        "model": "TestInverter-1",
        "serial_number": "sn-123-456789",
    }


async def _retained(broker, topics: list[str], quiet_s: float = 1.5) -> dict[str, dict]:
    """What a late subscriber gets: the retained messages, until none came for quiet_s (then cleared,
    to leave the broker clean)."""
    got: dict[str, dict] = {}
    async with aiomqtt.Client(**broker.client_kwargs()) as client:
        for topic in topics:
            await client.subscribe(topic)
        while True:
            try:
                async with asyncio.timeout(quiet_s):
                    message = await anext(aiter(client.messages))
            except TimeoutError:
                break
            got[str(message.topic)] = json.loads(message.payload)
        for topic in got:
            await client.publish(topic, b"", retain=True)
    return got


def test_the_collector_publishes_what_each_inverter_says_it_is(mqtt_url, tmp_path):
    spec = demo_plant_dict([free_port(), free_port()], topic=f"pvp/di/{tmp_path.name}/wx1")
    plant = parse_plant(spec)
    site = plant.sites[0]
    inverters = [
        SimulatedInverter(site, d, seed=3, model_id=m)
        for d, m in zip(site.inverters, (103, 113), strict=True)
    ]
    prefix, discovery = f"pvp/di/{tmp_path.name}/live", f"ha_di_{tmp_path.name}"
    settings = Settings(
        mqtt_url=mqtt_url, live_topic_prefix=prefix, ha_discovery=True,
        ha_discovery_prefix=discovery, segment_max_age_s=0.5,
    )  # fmt: skip
    broker = parse_mqtt_url(mqtt_url)

    async def run():
        servers, _ = await serve_inverters(inverters)
        collector = Collector(plant, settings, tmp_path / "landing", broker)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        polled = [c for c in collector.coordinators if c.device_id.startswith("inv")]
        for _ in range(150):  # until both told who they are and their MPPT entities appeared
            await asyncio.sleep(0.1)
            if all(c.device_info and "mppt2_dc_current" in c.descriptions for c in polled):
                break
        await asyncio.sleep(2.5)  # the live-bus publisher looks once a second
        stop.set()
        await task
        for server in servers:
            await server.shutdown()
        return collector, await _retained(broker, [f"{prefix}/+/+/info", f"{discovery}/#"])

    collector, retained = asyncio.run(run())
    by_id = {c.device_id: c for c in collector.coordinators}
    for inv, model in (("inv1", "SimInverter-103"), ("inv2", "SimInverter-113")):
        told = {"manufacturer": "PV Platform", "model": model,
                "serial_number": f"SIM-testsite-{inv}", "sw_version": "1.0"}  # fmt: skip
        assert by_id[inv].device_info == DeviceInfo(**told)
        assert retained[f"{prefix}/testsite/{inv}/info"] == {"device_info": told}
    assert by_id["wx1"].device_info is None  # an MQTT device does not say who it is
    assert f"{prefix}/testsite/wx1/info" not in retained
    # entities that appeared at run time (one per MPPT of model 160) got their configs too
    for inv in ("inv1", "inv2"):
        for key in ("mppt1_dc_power", "mppt2_dc_current"):
            config = retained[f"{discovery}/sensor/pvp_testsite_{inv}/{key}/config"]
            assert config["device"]["serial_number"] == f"SIM-testsite-{inv}"
    device = retained[f"{discovery}/sensor/pvp_testsite_inv1/ac_power/config"]["device"]
    assert device == {
        "identifiers": ["pvp_testsite_inv1"], "name": "testsite inv1", "via_device": "pvp_testsite",
        "manufacturer": "PV Platform", "model": "SimInverter-103",
        "serial_number": "SIM-testsite-inv1", "sw_version": "1.0",
    }  # fmt: skip
