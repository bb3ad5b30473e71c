"""SunSpec inverters over Modbus TCP (models 1 and 101–103)."""

from __future__ import annotations

from typing import Any

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator

CONFIG_MODEL = SunSpecModbusConfig


def setup(site: Any, device: Any, settings: Any) -> SunSpecCoordinator:
    """One coordinator for one configured device."""
    return SunSpecCoordinator(site.id, device.id, SunSpecModbusConfig.model_validate(device.config))
