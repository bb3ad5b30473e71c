"""Configuration of one device that publishes JSON over MQTT."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from integrations.mqtt.entities import KNOWN_METRICS


class MqttDeviceConfig(BaseModel):
    """`config:` of a device with `integration: mqtt`: one topic, payload fields mapped to metrics."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1, description="Topic the device publishes on (no wildcards).")
    fields: dict[str, str] = Field(description="metric -> field path in the JSON payload (a.b.c).")
    timestamp_field: str | None = Field(
        default="ts", description="ISO-8601 or epoch-seconds field; None: receive time."
    )
    qos: int = Field(default=1, ge=0, le=2)

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, topic: str) -> str:
        if "#" in topic or "+" in topic:
            raise ValueError("a device topic cannot contain MQTT wildcards (+ or #)")
        bad = sorted({f"U+{ord(c):04X}" for c in topic if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F})
        if (
            bad
        ):  # NUL is forbidden by MQTT; the broker drops the subscription and we would wait forever
            raise ValueError(f"topic {topic!r} contains control characters {', '.join(bad)}")
        if len(topic.encode("utf-8", "surrogatepass")) > 65535:
            raise ValueError("a topic is at most 65 535 bytes of UTF-8")
        return topic

    @field_validator("fields")
    @classmethod
    def _known_metrics(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(fields) - KNOWN_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(KNOWN_METRICS)}")
        if not fields:
            raise ValueError("map at least one metric to a payload field")
        return fields
