"""Reads a simulated device in-process: the plant model's values at the poll instant."""

from __future__ import annotations

import pandas as pd

from integrations.simulator.config import SimulatorConfig
from integrations.simulator.devices import SimulatedInverter
from integrations.simulator.entities import SIMULATED_INVERTER_ENTITIES, SIMULATED_WEATHER_ENTITIES
from integrations.simulator.physics import weather
from pv_platform import clock
from pv_platform.coordinator import PollingCoordinator, UpdateFailed
from pv_platform.plant import Device, Site


class SimulatorCoordinator(PollingCoordinator):
    """A device of the plant model, polled without a protocol (benchmarks, notebooks)."""

    def __init__(self, site: Site, device: Device, config: SimulatorConfig) -> None:
        inverter = device.kind == "inverter"
        descriptions = SIMULATED_INVERTER_ENTITIES if inverter else SIMULATED_WEATHER_ENTITIES
        super().__init__(site.id, device.id, descriptions, poll_interval_s=config.poll_interval_s)
        self.site, self.device, self.config = site, device, config
        self.inverter = SimulatedInverter(site, device, config.seed) if inverter else None

    async def _async_update(self) -> dict[str, float | None]:
        now = clock.now()
        if self.inverter is not None:
            self.inverter.update(now)
            return dict(self.inverter.served)
        if self.device.kind == "weather_station":
            row = weather(self.site, pd.DatetimeIndex([pd.Timestamp(now)]), self.config.seed).iloc[
                0
            ]
            return {k: float(v) for k, v in row.items() if k in self.descriptions}
        raise UpdateFailed(f"the simulator has no model for a {self.device.kind}")
