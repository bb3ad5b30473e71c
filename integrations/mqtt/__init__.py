"""Devices that publish JSON over MQTT (weather stations, meters, gateways)."""

from __future__ import annotations

from typing import Any

from integrations.mqtt.check import check
from integrations.mqtt.config import MqttDeviceConfig
from integrations.mqtt.coordinator import MqttCoordinator
from pv_platform.bus import mqtt_client_id, parse_mqtt_url

CONFIG_MODEL = MqttDeviceConfig
__all__ = ["CONFIG_MODEL", "check", "setup"]


def setup(site: Any, device: Any, settings: Any) -> MqttCoordinator:
    """One coordinator for one configured device, on the platform's broker."""
    if not settings.mqtt_url:
        raise ValueError(f"device {site.id}.{device.id} uses MQTT but PVP_MQTT_URL is not set")
    return MqttCoordinator(
        site.id,
        device.id,
        MqttDeviceConfig.model_validate(device.config),
        parse_mqtt_url(settings.mqtt_url),
        ack_batch=settings.mqtt_ack_batch,
        client_id=mqtt_client_id(
            settings.mqtt_client_id_prefix, settings.resolved_landing_dir, site.id, device.id
        ),
    )
