"""Configuration of a device read in-process from the plant model (no protocol in between)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SimulatorConfig(BaseModel):
    """`config:` of a device with `integration: simulator`."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=42, description="Same seed, same plant.")
    poll_interval_s: float = Field(default=1.0, gt=0)
