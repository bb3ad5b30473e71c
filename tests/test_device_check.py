"""`pvp integrations check SITE.DEVICE`, run as a user runs it (a subprocess on a plant file), against
the simulator's SunSpec devices and the machine's MQTT broker: it prints what it found, and exits
non-zero with the reason when it cannot connect or the device's data would be rejected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest
import sunspec2.modbus.client as pysunspec

from pv_platform.bus import parse_mqtt_url
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import free_port
from tests.conftest import demo_plant_dict
from tests.test_sunspec import simulator_in_thread

PVP = str(Path(sys.executable).parent / "pvp")


def pvp_check(plant_file: Path, device: str, *extra: str, mqtt_url: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_PLANT_FILE=str(plant_file), PVP_LANDING_DIR=str(plant_file.parent / "landing"))
    if mqtt_url:
        env["PVP_MQTT_URL"] = mqtt_url
    return subprocess.Popen(
        [PVP, "integrations", "check", device, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen, timeout_s: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


@pytest.fixture
def plant_file(tmp_path):
    plant = parse_plant(
        demo_plant_dict([free_port(), free_port()], topic=f"pvp/check/{uuid.uuid4().hex[:8]}/wx1")
    )
    dump_plant(plant, tmp_path / "plant.yaml")
    return tmp_path / "plant.yaml", plant


def test_a_sunspec_inverter_shows_its_model_chain_identity_and_a_reading(plant_file):
    path, plant = plant_file
    with simulator_in_thread(plant):  # the served image stays constant (one update an hour)
        code, out, err = finished(pvp_check(path, "testsite.inv1"))
        theirs = pysunspec.SunSpecModbusClientDeviceTCP(
            slave_id=1, ipaddr="127.0.0.1", ipport=plant.sites[0].devices[0].config["port"]
        )
        try:  # an independent client's reading of the same device
            theirs.scan()
            inverter = theirs.models[103][0]
            inverter.read()
            w, hz = inverter.points["W"].cvalue, inverter.points["Hz"].cvalue
        finally:
            theirs.close()
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"testsite.inv1: SunSpec over Modbus at 127.0.0.1:{plant.sites[0].devices[0].config['port']},"
        " unit id 1"
    )
    chain = next(line for line in out.splitlines() if line.startswith("models: "))
    assert re.fullmatch(
        r"models: 1 common \(66 regs @40004\), 120 nameplate \(26 regs @40072\),"
        r" 103 inverter_three_phase \(50 regs @40100\), 160 mppt \(\d+ regs @40152\)",
        chain,
    ), chain
    assert (
        "manufacturer (Mn): PV Platform   model (Md): SimInverter-103"
        "   serial (SN): SIM-testsite-inv1   version (Vr): 1.0"
    ) in out
    readings = dict(re.findall(r"^  (\w+) +(.+)$", out, flags=re.MULTILINE))
    assert readings["ac_power"] == f"{w:g} W" and readings["ac_frequency"] == f"{hz:g} Hz"
    assert readings["mppt1_dc_voltage"].endswith(" V")
    assert out.rstrip().endswith("OK testsite.inv1")


def test_an_unreachable_inverter_fails_with_the_reason(plant_file):
    path, plant = plant_file  # nothing serves the plant's ports
    started = time.monotonic()
    code, out, err = finished(pvp_check(path, "testsite.inv2", "--timeout", "2"))
    port = plant.sites[0].devices[1].config["port"]
    assert code == 1
    assert err.splitlines()[-1] == f"FAILED testsite.inv2: cannot connect to 127.0.0.1:{port}"
    assert time.monotonic() - started < 30


def test_a_device_not_in_the_plant_file_lists_the_ones_there(plant_file):
    path, _ = plant_file
    code, _, err = finished(pvp_check(path, "testsite.inv7"))
    assert code == 2
    assert f"no device 'testsite.inv7' in {path}; give SITE.DEVICE, one of:" in err
    assert "testsite.inv1, testsite.inv2, testsite.meter1, testsite.wx1" in err


def _publish_when_waiting(proc: subprocess.Popen, mqtt_url: str, topic: str, payload: bytes):
    """Publish once the check says it is subscribed (its first two lines), then collect the rest."""
    lines = [proc.stdout.readline() for _ in range(2)]
    assert lines[1].startswith("connected; waiting up to"), lines
    broker = parse_mqtt_url(mqtt_url)
    mqtt_publish.single(topic, payload, hostname=broker.host, port=broker.port, qos=1)
    code, out, err = finished(proc)
    return code, "".join(lines) + out, err


def test_an_mqtt_device_shows_the_values_of_one_message(plant_file, mqtt_url):
    path, plant = plant_file
    topic = plant.sites[0].devices[-1].config["topic"]
    payload = {"ts": "2026-06-21T10:00:00Z", "poa": 812.5, "t_mod": 41.25, "t_amb": 22}
    proc = pvp_check(path, "testsite.wx1", "--timeout", "20", mqtt_url=mqtt_url)
    code, out, err = _publish_when_waiting(proc, mqtt_url, topic, json.dumps(payload).encode())
    assert code == 0, err
    host_port = mqtt_url.removeprefix("mqtt://")
    assert out.splitlines()[0] == f"testsite.wx1: MQTT topic {topic} on {host_port}"
    assert "timestamp: 2026-06-21T10:00:00+00:00" in out
    readings = dict(re.findall(r"^  (\w+) +(.+)$", out, flags=re.MULTILINE))
    assert readings == {
        "poa_irradiance": "812.5 W/m²",
        "module_temperature": "41.25 °C",
        "ambient_temperature": "22 °C",
    }


def test_an_mqtt_message_the_collector_would_reject_says_why(plant_file, mqtt_url):
    path, plant = plant_file
    topic = plant.sites[0].devices[-1].config["topic"]
    proc = pvp_check(path, "testsite.wx1", "--timeout", "20", mqtt_url=mqtt_url)
    stamp = datetime.now(UTC).isoformat()
    code, out, err = _publish_when_waiting(proc, mqtt_url, topic, b'{"ts": "' + stamp.encode())
    assert code == 1
    assert err.startswith("FAILED testsite.wx1: the collector would reject this message: not JSON")


def test_an_mqtt_device_fails_when_the_broker_cannot_be_reached_or_nothing_comes(
    plant_file, mqtt_url
):
    path, _ = plant_file
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    code, _, err = finished(pvp_check(path, "testsite.wx1", "--timeout", "3", mqtt_url=nobody))
    assert code == 1
    assert err.startswith(f"FAILED testsite.wx1: cannot connect to the broker {nobody[7:]}")
    code, _, err = finished(pvp_check(path, "testsite.wx1", "--timeout", "1.5", mqtt_url=mqtt_url))
    assert code == 1
    assert "no message on pvp/check/" in err and "within 1.5 s" in err
