"""The only code that talks to a SunSpec device: scan the model chain once, then read whole models."""

from __future__ import annotations

import logging

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.entities import INVERTER_ENTITIES
from integrations.sunspec_modbus.hub import ModbusHub, bus_of
from integrations.sunspec_modbus.models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MODELS,
    PERCENT_POINTS,
    SUNS_MARKER,
    WMAXLIM_ENABLED,
    decode_model,
)
from pv_platform.coordinator import DeviceInfo, EntityDescription, PollingCoordinator, UpdateFailed
from pv_platform.vocabulary import (
    DeviceClass,
    Metric,
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


def device_info(common: dict) -> DeviceInfo:
    """A device's identity from its SunSpec common model (1): manufacturer Mn, model Md, serial SN,
    firmware Vr (absent points: None)."""

    def text(point: str) -> str | None:
        value = common.get(point)
        return str(value) if value not in (None, "") else None

    return DeviceInfo(
        manufacturer=text("Mn"), model=text("Md"), serial_number=text("SN"), sw_version=text("Vr")
    )


def _number(value, percent: bool = False) -> float | None:
    """A decoded point as a reading (a percentage as a fraction); None when not a number."""
    if not isinstance(value, int | float):
        return None
    return float(value) / 100.0 if percent else float(value)


INVERTER_MODEL_IDS = (103, 113, 102, 112, 101, 111)
MPPT_MODEL_ID = 160
NAMEPLATE_MODEL_ID = 120
CONTROLS_MODEL_ID = 123
LIMIT_ENTITY = EntityDescription(
    key=Metric.ACTIVE_POWER_LIMIT_PCT,
    unit=Unit.PERCENT,
    device_class=DeviceClass.SETPOINT,
    source="WMaxLimPct",
)


def power_limit_pct(controls: dict) -> float | None:
    """The active-power limit in force [% of WMax] from a decoded model 123: WMaxLimPct while
    WMaxLim_Ena is ENABLED, 100 while it is not (the inverter may run at its rating); None when the
    device does not implement the point (or its scale factor).

    >>> power_limit_pct({"WMaxLimPct": 60.0, "WMaxLim_Ena": 1}), power_limit_pct({"WMaxLimPct": 60.0, "WMaxLim_Ena": 0})
    (60.0, 100.0)
    """
    enabled = controls.get("WMaxLim_Ena")
    if enabled is None:
        return None
    if enabled != WMAXLIM_ENABLED:
        return 100.0
    return _number(controls.get("WMaxLimPct"))


class SunSpecCoordinator(PollingCoordinator):
    """Polls one SunSpec inverter over Modbus TCP or RTU, through the hub of its bus (shared with the
    other units on the same gateway or serial line). Read-only: it never writes a register."""

    def __init__(
        self,
        site_id: str,
        device_id: str,
        config: SunSpecModbusConfig,
        hub: ModbusHub | None = None,
    ) -> None:
        super().__init__(
            site_id, device_id, INVERTER_ENTITIES, poll_interval_s=config.poll_interval_s
        )
        self.config = config
        self.hub = hub or ModbusHub(bus_of(config))  # alone on its bus unless given a shared hub
        self._using_hub = False
        self.models: dict[int, tuple[int, int]] = {}  # model id -> (data address, length)
        self.common: dict[str, object] = {}
        self.nameplate: dict[str, object] = {}
        self.operating_state: str | None = None
        self.events: list[str] = []

    async def _read(self, address: int, count: int) -> list[int]:
        """Read holding registers of this unit through its bus's hub; UpdateFailed on any error."""
        if not self._using_hub:
            self.hub.acquire()
            self._using_hub = True
        c = self.config
        return await self.hub.read(
            c.unit_id, address, count, timeout_s=c.timeout_s, retries=c.retries
        )

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
                if not self.hub.connected:
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
                # the first of a model id is the device's own: a SolarEdge inverter lists its meter's
                # common model (1) after its own
                models.setdefault(model_id, (address + 2, length))
                address += 2 + length
            raise UpdateFailed("SunSpec model chain has no end model after 64 models")
        if len(errors) == len(
            bases
        ):  # it answered every probe with an error: a silent or failing device
            raise UpdateFailed(f"no SunSpec data (no answer or errors at {bases}): {errors[-1]}")
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

    async def identify(self) -> DeviceInfo:
        """Scan the model chain, read the common (1) and nameplate (120) models once, and take the
        device's identity from the common model: Mn, Md, SN, Vr."""
        await self.scan()
        once = [m for m in (1, NAMEPLATE_MODEL_ID) if m in self.models]
        for model_id, regs in (await self._read_models(once)).items() if once else ():
            decoded = decode_model(MODELS[model_id], regs)
            if model_id == 1:
                self.common = decoded
            else:
                self.nameplate = decoded
        self.device_info = device_info(self.common)
        log.info(
            "%s.%s: %s %s serial %s, models %s", self.site_id, self.device_id,
            self.common.get("Mn"), self.common.get("Md"), self.common.get("SN"), sorted(self.models),
        )  # fmt: skip
        return self.device_info

    async def _async_update(self) -> dict[str, float | None]:
        if not self.models:
            await self.identify()
        model_id = next((m for m in INVERTER_MODEL_IDS if m in self.models), None)
        if model_id is None:
            raise UpdateFailed(f"no inverter model (101-103, 111-113) among {sorted(self.models)}")
        extra = [m for m in (MPPT_MODEL_ID, CONTROLS_MODEL_ID) if m in self.models]
        data = await self._read_models([model_id, *extra])
        points = decode_model(MODELS[model_id], data[model_id])
        values: dict[str, float | None] = {
            d.key: _number(points.get(d.source), percent=d.source in PERCENT_POINTS)
            for d in self.descriptions.values()
            if not d.key.startswith("mppt") and d.key != Metric.ACTIVE_POWER_LIMIT_PCT
        }
        self.operating_state = OperatingState.name_of(points.get("St"))
        self.events = event_names(points.get("Evt1"))
        if MPPT_MODEL_ID in data:
            values.update(
                self._mppt_values(decode_model(MODELS[MPPT_MODEL_ID], data[MPPT_MODEL_ID]))
            )
        if CONTROLS_MODEL_ID in data:  # model 123: the entity appears with the model
            self.descriptions.setdefault(LIMIT_ENTITY.key, LIMIT_ENTITY)
            controls = decode_model(MODELS[CONTROLS_MODEL_ID], data[CONTROLS_MODEL_ID])
            values[Metric.ACTIVE_POWER_LIMIT_PCT] = power_limit_pct(controls)
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
        """Stop using the hub (the last unit on a bus closes its connection)."""
        if self._using_hub:
            self._using_hub = False
            await self.hub.release()
