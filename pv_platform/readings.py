"""A reading: one value of one entity at one instant, validated at the edge."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENTITY_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_]{1,64}$"
MAX_FUTURE = timedelta(minutes=5)


def entity_key(site_id: str, device_id: str, metric: str) -> str:
    """The entity key `site.device.metric` used in the landing and the `entities` table."""
    return f"{site_id}.{device_id}.{metric}"


class Reading(BaseModel):
    """One measurement; `ts` is UTC, `value` is in the entity's unit and always finite."""

    model_config = ConfigDict(frozen=True)

    entity: str = Field(pattern=ENTITY_KEY_PATTERN)
    ts: datetime
    value: float

    @field_validator("ts")
    @classmethod
    def _utc_and_not_future(cls, ts: datetime) -> datetime:
        if ts.tzinfo is None:
            raise ValueError("timestamp has no time zone; send UTC (e.g. 2026-01-01T12:00:00Z)")
        ts = ts.astimezone(UTC)
        if ts > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError(f"timestamp {ts.isoformat()} is in the future")
        if ts.year < 2000:
            raise ValueError(f"timestamp {ts.isoformat()} is before 2000")
        return ts

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"value {value!r} is not a finite number")
        return value
