"""Configuration of one SunSpec device reached over Modbus TCP (`host`) or RTU on a serial line
(`serial_port`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SunSpecModbusConfig(BaseModel):
    """`config:` of a device with `integration: sunspec_modbus` in the plant file."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: str | None = Field(
        default=None, min_length=1, description="Modbus TCP: inverter or gateway."
    )
    port: int = Field(default=502, ge=1, le=65535)
    serial_port: str | None = Field(
        default=None, min_length=1, description="Modbus RTU: the serial device, e.g. /dev/ttyUSB0."
    )
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (device) id.")
    poll_interval_s: float = Field(default=5.0, ge=0.1, le=3600)
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    base_address: int | None = Field(
        default=None, ge=0, le=65535, description="Where 'SunS' is; None scans 40000, 0, 50000."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> SunSpecModbusConfig:
        if (self.host is None) == (self.serial_port is None):
            raise ValueError(
                "give either host (Modbus TCP) or serial_port (Modbus RTU), not both or neither"
            )
        return self

    @property
    def where(self) -> str:
        """Where the device is, for messages: host:port or the serial line."""
        return (
            f"{self.host}:{self.port}"
            if self.host
            else f"{self.serial_port} (RTU {self.baudrate} {self.bytesize}{self.parity}{self.stopbits})"
        )
