"""The only code that talks to a SunSpec device: scan the model chain once, then read whole models."""

from __future__ import annotations

import logging

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.entities import INVERTER_ENTITIES
from integrations.sunspec_modbus.models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MODELS,
    SUNS_MARKER,
    decode_model,
)
from pv_platform.integration import Coordinator, EntityDescription, UpdateFailed
from pv_platform.vocabulary import (
    DeviceClass,
    MpptMetric,
    OperatingState,
    Unit,
    event_names,
    mppt_metric,
)

log = logging.getLogger(__name__)
MPPT_POINTS = (  # per-MPPT quantity, model 160 point, unit, device class
    (MpptMetric.DC_CURRENT, "DCA", Unit.AMPERE, DeviceClass.CURRENT),
    (MpptMetric.DC_VOLTAGE, "DCV", Unit.VOLT, DeviceClass.VOLTAGE),
    (MpptMetric.DC_POWER, "DCW", Unit.WATT, DeviceClass.POWER),
    (MpptMetric.TEMPERATURE, "Tmp", Unit.CELSIUS, DeviceClass.TEMPERATURE),
)


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


MAX_REGISTERS_PER_READ = 125  # Modbus limit for function code 3
INVERTER_MODEL_IDS = (103, 113, 102, 112, 101, 111)
MPPT_MODEL_ID = 160
NAMEPLATE_MODEL_ID = 120


class SunSpecCoordinator(Coordinator):
    """Polls one SunSpec inverter over Modbus TCP. Read-only: it never writes a register."""

    def __init__(self, site_id: str, device_id: str, config: SunSpecModbusConfig) -> None:
        super().__init__(
            site_id, device_id, INVERTER_ENTITIES, poll_interval_s=config.poll_interval_s
        )
        self.config = config
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = (
            None  # made on first use
        )
        self.models: dict[int, tuple[int, int]] = {}  # model id -> (data address, length)
        self.common: dict[str, object] = {}
        self.nameplate: dict[str, object] = {}
        self.operating_state: str | None = None
        self.events: list[str] = []

    @property
    def client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self.config
        if self._client is None and c.serial_port:
            self._client = AsyncModbusSerialClient(
                c.serial_port, framer=FramerType.RTU, baudrate=c.baudrate, bytesize=c.bytesize,
                parity=c.parity, stopbits=c.stopbits, timeout=c.timeout_s, retries=c.retries,
            )  # fmt: skip
        elif self._client is None:
            self._client = AsyncModbusTcpClient(
                c.host, port=c.port, timeout=c.timeout_s, retries=c.retries
            )
        return self._client

    async def _read(self, address: int, count: int) -> list[int]:
        """Read holding registers in chunks the protocol allows; UpdateFailed on any error."""
        if not self.client.connected and not await self.client.connect():
            raise UpdateFailed(f"cannot connect to {self.config.where}")
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
        errors: list[str] = []
        for base in bases:
            try:
                marker = await self._read(base, 2)
            except UpdateFailed as exc:
                if not self.client.connected:
                    raise  # unreachable: say so, not "no marker"
                errors.append(str(exc))
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
        if len(errors) == len(
            bases
        ):  # it answered every probe with an error: a silent or failing device
            raise UpdateFailed(f"device answers with errors, no SunSpec data: {errors[-1]}")
        raise UpdateFailed(f"no 'SunS' marker at any of {bases}")

    async def _read_models(self, model_ids: list[int]) -> dict[int, list[int]]:
        """Read several models' data in as few requests as the 125-register limit allows (one span),
        headers included: a model whose ID/length no longer match the scanned chain means the device
        (or a gateway) answered garbage, and nothing of that answer is used."""
        spans = sorted(self.models[m] for m in model_ids)
        first = spans[0][0] - 2  # the first model's header
        last = max(address + length for address, length in spans)
        regs = await self._read(first, last - first)
        for m in model_ids:
            address, length = self.models[m]
            header = tuple(regs[address - 2 - first : address - first])
            if header != (m, length):
                raise UpdateFailed(
                    f"garbage answer: model {m} header reads {header}, expected {(m, length)}"
                )
        return {
            m: regs[self.models[m][0] - first : self.models[m][0] - first + self.models[m][1]]
            for m in model_ids
        }

    async def _async_update(self) -> dict[str, float | None]:
        if not self.models:
            await self.scan()
            once = [m for m in (1, NAMEPLATE_MODEL_ID) if m in self.models]
            for model_id, regs in (await self._read_models(once)).items() if once else ():
                decoded = decode_model(MODELS[model_id], regs)
                if model_id == 1:
                    self.common = decoded
                else:
                    self.nameplate = decoded
            log.info(
                "%s.%s: %s %s serial %s, models %s", self.site_id, self.device_id,
                self.common.get("Mn"), self.common.get("Md"), self.common.get("SN"), sorted(self.models),
            )  # fmt: skip
        model_id = next((m for m in INVERTER_MODEL_IDS if m in self.models), None)
        if model_id is None:
            raise UpdateFailed(f"no inverter model (101-103, 111-113) among {sorted(self.models)}")
        wanted = [model_id] + ([MPPT_MODEL_ID] if MPPT_MODEL_ID in self.models else [])
        data = await self._read_models(wanted)
        points = decode_model(MODELS[model_id], data[model_id])
        values: dict[str, float | None] = {
            d.key: _number(points.get(d.source))
            for d in self.descriptions.values()
            if not d.key.startswith("mppt")
        }
        self.operating_state = OperatingState.name_of(points.get("St"))
        self.events = event_names(points.get("Evt1"))
        if MPPT_MODEL_ID in data:
            values.update(
                self._mppt_values(decode_model(MODELS[MPPT_MODEL_ID], data[MPPT_MODEL_ID]))
            )
        return values

    def _mppt_values(self, mppt: dict) -> dict[str, float | None]:
        """Per-MPPT (string input) current, voltage and power; entities appear when a module id first shows."""
        values: dict[str, float | None] = {}
        for block in mppt.get("repeats", []):
            if block.get("ID") is None:
                continue
            for quantity, point, unit, device_class in MPPT_POINTS:
                key = mppt_metric(block["ID"], quantity)
                if key not in self.descriptions:
                    self.descriptions[key] = EntityDescription(
                        key=key, unit=unit, device_class=device_class, source=point
                    )
                values[key] = _number(block.get(point))
        return values

    async def async_close(self) -> None:
        if self._client is not None:
            self._client.close()
