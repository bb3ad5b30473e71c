"""Which threshold applies where: built-in defaults < fleet settings (`PVP_ALERT_THRESHOLDS`) < the site's
`alerts:` block in the plant file. Grid bands always come from the site's `grid:` block."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from pydantic import ValidationError

from pv_platform.alerts.kpi_rules import KpiThresholds
from pv_platform.alerts.loss_rules import LossThresholds
from pv_platform.plant import AlertLimits, Site


@dataclass(frozen=True)
class Thresholds:
    """Rule thresholds; every one can be overridden per site (plant file `alerts:`) or by settings."""

    stale_after_s: float = 60.0  # no reading for this long: communication lost ...
    stale_polls: float = (
        3.0  # ... or for this many of the device's poll intervals, if that is longer
    )
    fault_hold_s: float = 10.0  # FAULT state held this long (debounce: one frame is not an outage)
    grid_hold_s: float = 10.0  # grid out of band this long
    over_temperature_c: float = 75.0  # inverter cabinet
    module_over_temperature_c: float = 85.0  # a string's modules (model 160 temperature)
    hot_spot_delta_c: float = 15.0  # a string's modules this much above the site's median string
    string_current_fraction: float = (
        0.5  # a string below this fraction of its peers' median current
    )
    min_efficiency: float = 0.90  # AC/DC below this while not clipping and above 10 % DC load ...
    efficiency_hold_s: float = 300.0  # ... for this long: the inverter converts poorly
    sun_gate_poa_wm2: float = 200.0  # rules that need sun judge only above this irradiance
    frequency_hz: tuple[float, float] = (49.5, 50.5)
    voltage_v: tuple[float, float] = (207.0, 253.0)


def fleet_limits(values: Mapping[str, float] | None, source: str = "PVP_ALERT_THRESHOLDS") -> dict:
    """Validated fleet-wide overrides; an unknown name or a bad value names the setting and the field."""
    try:
        return AlertLimits.model_validate(dict(values or {})).overrides()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(
            f"{source}: {problems} (known thresholds: {', '.join(AlertLimits.model_fields)})"
        ) from None


def fleet_from_settings(settings) -> dict[str, float]:
    """The fleet-wide overrides the settings make: `PVP_ALERT_STALE_AFTER_S` and `PVP_ALERT_THRESHOLDS`
    (the latter wins). Every user of the rules (collector, Dagster, dashboards, API) starts here."""
    return {"stale_after_s": settings.alert_stale_after_s, **settings.alert_thresholds}


def _merged(site: Site, fleet: Mapping[str, float] | None) -> dict:
    return {**fleet_limits(fleet), **site.alerts.overrides()}


def _pick(cls, values: Mapping[str, float]) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def realtime_thresholds(site: Site, fleet: Mapping[str, float] | None = None) -> Thresholds:
    """The real-time rule thresholds of one site."""
    return replace(
        Thresholds(**_pick(Thresholds, _merged(site, fleet))),
        frequency_hz=tuple(site.grid.frequency_hz),
        voltage_v=tuple(site.grid.voltage_v),
    )


def kpi_thresholds(site: Site, fleet: Mapping[str, float] | None = None) -> KpiThresholds:
    """The KPI rule thresholds of one site."""
    return KpiThresholds(**_pick(KpiThresholds, _merged(site, fleet)))


def loss_thresholds(site: Site, fleet: Mapping[str, float] | None = None) -> LossThresholds:
    """The loss-analytics rule thresholds of one site."""
    return LossThresholds(**_pick(LossThresholds, _merged(site, fleet)))
