"""`pvp integrations check` for an MQTT device: wait for one message on its topic and show what it
becomes (or why it would be rejected), without touching the collector's persistent session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiomqtt

from integrations.mqtt.config import MqttDeviceConfig
from integrations.mqtt.entities import MQTT_ENTITIES
from integrations.mqtt.payload import PayloadError, parse_payload
from pv_platform.bus import parse_mqtt_url
from pv_platform.coordinator import UpdateFailed

UNITS = {d.key: d.unit for d in MQTT_ENTITIES}


async def _one_message(client: aiomqtt.Client, timeout_s: float) -> aiomqtt.Message:
    async def first() -> aiomqtt.Message:
        async for message in client.messages:
            return message
        raise aiomqtt.MqttError("the broker closed the connection")

    return await asyncio.wait_for(first(), timeout_s)


async def check(
    site: Any, device: Any, settings: Any, *, timeout_s: float, say: Callable[[str], None]
) -> None:
    """Subscribe to the device's topic (QoS 0, a clean session of its own), wait up to timeout_s for
    one message and print the parsed values; UpdateFailed when the broker cannot be reached, no
    message comes, or the message would be rejected (with the reason)."""
    config = MqttDeviceConfig.model_validate(device.config)
    if not settings.mqtt_url:
        raise UpdateFailed(f"{site.id}.{device.id} uses MQTT but PVP_MQTT_URL is not set")
    broker = parse_mqtt_url(settings.mqtt_url)
    say(f"{site.id}.{device.id}: MQTT topic {config.topic} on {broker.host}:{broker.port}")
    try:
        async with aiomqtt.Client(**broker.client_kwargs(), timeout=timeout_s) as client:
            await client.subscribe(config.topic, qos=0)
            say(f"connected; waiting up to {timeout_s:g} s for a message ...")
            message = await _one_message(client, timeout_s)
    except aiomqtt.MqttError as exc:
        raise UpdateFailed(
            f"cannot connect to the broker {broker.host}:{broker.port}: {exc}"
        ) from None
    except TimeoutError:
        raise UpdateFailed(
            f"no message on {config.topic} within {timeout_s:g} s: is the device publishing, and"
            " on exactly this topic?"
        ) from None
    payload = (
        message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
    )
    retained = " (retained)" if message.retain else ""
    say(f"message{retained}, {len(payload)} bytes: {payload[:300]!r}")
    try:
        values, ts = parse_payload(payload, config.fields, config.timestamp_field)
    except PayloadError as exc:
        raise UpdateFailed(f"the collector would reject this message: {exc}") from None
    say(f"timestamp: {ts.isoformat() if ts else 'none in the message (receive time)'}")
    say("reading:")
    for metric, value in values.items():
        shown = "— (missing)" if value is None else f"{value:g} {UNITS.get(metric, '')}".rstrip()
        say(f"  {metric:<22} {shown}")
