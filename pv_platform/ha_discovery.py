"""Home Assistant MQTT discovery: retained config messages that make every entity of the plant appear in
Home Assistant by itself, reading its state from the live bus (`PVP_HA_DISCOVERY=true`)."""

from __future__ import annotations

import json

from pv_platform.bus import live_topic
from pv_platform.coordinator import Coordinator
from pv_platform.vocabulary import DeviceClass, StateClass

# our device classes -> Home Assistant sensor device classes (None: HA has no such class)
HA_DEVICE_CLASS = {
    DeviceClass.POWER: "power", DeviceClass.ENERGY: "energy", DeviceClass.IRRADIANCE: "irradiance",
    DeviceClass.TEMPERATURE: "temperature", DeviceClass.VOLTAGE: "voltage", DeviceClass.CURRENT: "current",
    DeviceClass.FREQUENCY: "frequency", DeviceClass.POWER_FACTOR: "power_factor", DeviceClass.ENUM: None,
    DeviceClass.SPEED: "wind_speed", DeviceClass.SETPOINT: None,
}  # fmt: skip
HA_UNITS = {"W/m2": "W/m²", "degC": "°C"}  # spellings HA expects


def _object_id(*parts: str) -> str:
    return "_".join(p.replace("-", "_") for p in parts).lower()


def discovery_messages(
    coordinators: list[Coordinator], live_prefix: str, discovery_prefix: str = "homeassistant"
) -> list[tuple[str, bytes]]:
    """(topic, payload) of one retained sensor config per entity of every coordinator."""
    out = []
    for c in coordinators:
        node = _object_id("pvp", c.site_id, c.device_id)
        device = {
            "identifiers": [node],
            "name": f"{c.site_id} {c.device_id}",
            "manufacturer": "PV Platform",
            "model": type(c).__name__.removesuffix("Coordinator") or "device",
            "via_device": _object_id("pvp", c.site_id),
        }
        if c.device_info is not None:  # what the device itself says it is (SunSpec Mn, Md, SN, Vr)
            device.update(c.device_info.as_dict())
        for d in c.descriptions.values():
            ha_class = HA_DEVICE_CLASS.get(d.device_class)
            config = {
                "name": d.key.replace("_", " "),
                "unique_id": _object_id(node, d.key),
                "object_id": _object_id(node, d.key),
                "state_topic": live_topic(live_prefix, c.site_id, c.device_id),
                # the live bus carries every value of a device in one message; absent: keep the last state
                "value_template": f"{{{{ value_json['values']['{d.key}'] | default(this.state) }}}}",
                "device": device,
            }
            if d.unit and d.unit not in ("", "1"):
                config["unit_of_measurement"] = HA_UNITS.get(d.unit, d.unit)
            if d.unit == "var":
                ha_class = "reactive_power"
            if ha_class:
                config["device_class"] = ha_class
            if d.state_class == StateClass.TOTAL_INCREASING:
                config["state_class"] = "total_increasing"
            elif d.device_class != DeviceClass.ENUM:
                config["state_class"] = "measurement"
            topic = f"{discovery_prefix}/sensor/{node}/{d.key}/config"
            out.append((topic, json.dumps(config).encode()))
    return out
