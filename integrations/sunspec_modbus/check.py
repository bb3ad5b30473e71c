"""`pvp integrations check` for a SunSpec device: connect, walk the model chain, say who it is and
show one decoded reading (Home Assistant's config-flow validation, on the command line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from integrations.sunspec_modbus.models import MODELS
from pv_platform.coordinator import UpdateFailed


def model_chain(models: dict[int, tuple[int, int]]) -> str:
    """`1 common (66 regs @40004), 103 inverter_three_phase (50 regs @40072), ...` in chain order."""
    parts = []
    for model_id, (address, length) in sorted(models.items(), key=lambda m: m[1][0]):
        name = MODELS[model_id].name if model_id in MODELS else "not decoded by PV Platform"
        parts.append(f"{model_id} {name} ({length} regs @{address})")
    return ", ".join(parts)


def reading_lines(coordinator: SunSpecCoordinator, values: dict[str, float | None]) -> list[str]:
    """One line per entity: `ac_power = 12340 W` (not implemented: `—`)."""
    lines = []
    for key, value in values.items():
        unit = coordinator.descriptions[key].unit
        shown = "— (not implemented)" if value is None else f"{value:g} {unit}".rstrip()
        lines.append(f"  {key:<22} {shown}")
    return lines


async def check(
    site: Any, device: Any, settings: Any, *, timeout_s: float, say: Callable[[str], None]
) -> None:
    """Connect to the device, print its model chain, identity and one reading; UpdateFailed says
    why it could not (unreachable, no SunSpec marker, a unit that does not answer)."""
    config = SunSpecModbusConfig.model_validate(device.config)
    config = config.model_copy(update={"timeout_s": min(config.timeout_s, timeout_s)})
    coordinator = SunSpecCoordinator(site.id, device.id, config)
    say(f"{site.id}.{device.id}: SunSpec over Modbus at {config.where}, unit id {config.unit_id}")
    try:
        info = await coordinator.identify()
        say(f"models: {model_chain(coordinator.models)}")
        say(
            f"manufacturer (Mn): {info.manufacturer or '—'}   model (Md): {info.model or '—'}"
            f"   serial (SN): {info.serial_number or '—'}   version (Vr): {info.sw_version or '—'}"
        )
        values = await coordinator._async_update()
    finally:
        await coordinator.async_close()
    if coordinator.operating_state:
        say(f"operating state: {coordinator.operating_state}")
    say("reading:")
    for line in reading_lines(coordinator, values):
        say(line)
    if not any(v is not None for v in values.values()):
        raise UpdateFailed("the device answered, but every value is 'not implemented'")
