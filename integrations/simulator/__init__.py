"""The plant simulator: physics, SunSpec Modbus and MQTT devices, history back-fill."""

from __future__ import annotations

from typing import Any

from integrations.simulator.config import SimulatorConfig
from integrations.simulator.coordinator import SimulatorCoordinator

CONFIG_MODEL = SimulatorConfig


def setup(site: Any, device: Any, settings: Any) -> SimulatorCoordinator:
    """One coordinator for one simulated device."""
    return SimulatorCoordinator(site, device, SimulatorConfig.model_validate(device.config))
