"""SunSpec inverters over Modbus TCP or RTU (models 1, 101–103, 111–113, 120, 160)."""

from __future__ import annotations

from typing import Any

from integrations.sunspec_modbus.check import check
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from integrations.sunspec_modbus.hub import HubRegistry, check_plant_buses

CONFIG_MODEL = SunSpecModbusConfig
HUBS = "sunspec_modbus.hubs"  # key of this integration's hubs in the collector's shared state
__all__ = ["CONFIG_MODEL", "check", "setup", "validate_devices"]


def setup(
    site: Any, device: Any, settings: Any, shared: dict[str, Any] | None = None
) -> SunSpecCoordinator:
    """One coordinator for one configured device, on the hub of its bus (one per TCP endpoint or
    serial line, shared with every other device there)."""
    config = SunSpecModbusConfig.model_validate(device.config)
    if shared is None:
        return SunSpecCoordinator(site.id, device.id, config)
    hubs: HubRegistry = shared.setdefault(HUBS, HubRegistry())
    return SunSpecCoordinator(
        site.id, device.id, config, hub=hubs.hub_for(f"{site.id}.{device.id}", config)
    )


def validate_devices(devices: list[tuple[str, Any]]) -> None:
    """The plant file's devices of this integration (`site.device`, config) together: devices on
    one bus agree on its line settings and have distinct unit ids (ValueError names both)."""
    check_plant_buses([(name, SunSpecModbusConfig.model_validate(c)) for name, c in devices])
