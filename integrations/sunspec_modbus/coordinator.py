"""The only code that talks to a SunSpec device: scan the model chain once, then read whole models."""

from __future__ import annotations

import logging

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.entities import INVERTER_ENTITIES
from integrations.sunspec_modbus.models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MODELS,
    SUNS_MARKER,
    decode_model,
)
from pv_platform.integration import Coordinator, UpdateFailed

log = logging.getLogger(__name__)
MAX_REGISTERS_PER_READ = 125  # Modbus limit for function code 3
INVERTER_MODEL_IDS = (103, 102, 101)


class SunSpecCoordinator(Coordinator):
    """Polls one SunSpec inverter over Modbus TCP. Read-only: it never writes a register."""

    def __init__(self, site_id: str, device_id: str, config: SunSpecModbusConfig) -> None:
        super().__init__(
            site_id, device_id, INVERTER_ENTITIES, poll_interval_s=config.poll_interval_s
        )
        self.config = config
        self.client = AsyncModbusTcpClient(
            config.host, port=config.port, timeout=config.timeout_s, retries=config.retries
        )
        self.models: dict[int, tuple[int, int]] = {}  # model id -> (data address, length)
        self.common: dict[str, object] = {}

    async def _read(self, address: int, count: int) -> list[int]:
        """Read holding registers in chunks the protocol allows; UpdateFailed on any error."""
        if not self.client.connected and not await self.client.connect():
            raise UpdateFailed(f"cannot connect to {self.config.host}:{self.config.port}")
        regs: list[int] = []
        try:
            while count > 0:
                n = min(count, MAX_REGISTERS_PER_READ)
                rr = await self.client.read_holding_registers(
                    address, count=n, device_id=self.config.unit_id
                )
                if rr.isError():
                    raise UpdateFailed(f"Modbus exception {rr} reading {n} registers at {address}")
                regs += rr.registers
                address, count = address + n, count - n
        except ModbusException as exc:
            self.client.close()
            raise UpdateFailed(f"Modbus error at {address}: {exc}") from exc
        return regs

    async def scan(self) -> dict[int, tuple[int, int]]:
        """Find 'SunS' and walk the model chain to the end model."""
        bases = (
            (self.config.base_address,) if self.config.base_address is not None else BASE_ADDRESSES
        )
        for base in bases:
            try:
                marker = await self._read(base, 2)
            except UpdateFailed:
                if not self.client.connected:
                    raise  # unreachable: say so, not "no marker"
                continue
            if tuple(marker) != SUNS_MARKER:
                continue
            models, address = {}, base + 2
            for _ in range(64):
                model_id, length = await self._read(address, 2)
                if model_id == END_MODEL_ID:
                    self.models = models
                    return models
                models[model_id] = (address + 2, length)
                address += 2 + length
            raise UpdateFailed("SunSpec model chain has no end model after 64 models")
        raise UpdateFailed(f"no 'SunS' marker at any of {bases}")

    async def _async_update(self) -> dict[str, float | None]:
        if not self.models:
            await self.scan()
            if 1 in self.models:
                address, length = self.models[1]
                self.common = decode_model(MODELS[1], await self._read(address, length))
                log.info(
                    "%s.%s: %s %s serial %s, models %s",
                    self.site_id,
                    self.device_id,
                    self.common.get("Mn"),
                    self.common.get("Md"),
                    self.common.get("SN"),
                    sorted(self.models),
                )
        model_id = next((m for m in INVERTER_MODEL_IDS if m in self.models), None)
        if model_id is None:
            raise UpdateFailed(f"no inverter model (101-103) among {sorted(self.models)}")
        address, length = self.models[model_id]
        points = decode_model(MODELS[model_id], await self._read(address, length))
        values = {d.key: points.get(d.source) for d in self.descriptions.values()}
        return {k: (float(v) if v is not None else None) for k, v in values.items()}

    async def async_close(self) -> None:
        self.client.close()
