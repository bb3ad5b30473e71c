"""Configuration of one SunSpec device reached over Modbus TCP."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SunSpecModbusConfig(BaseModel):
    """`config:` of a device with `integration: sunspec_modbus` in the plant file."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, description="Inverter or gateway address.")
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (device) id.")
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    base_address: int | None = Field(
        default=None, description="Where 'SunS' is; None scans 40000, 0, 50000."
    )
