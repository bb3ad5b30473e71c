"""Which threshold applies where: built-in defaults < fleet settings (`PVP_ALERT_THRESHOLDS`) < the site's
`alerts:` block in the plant file. Grid bands always come from the site's `grid:` block."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace

from pydantic import ValidationError

from pv_platform.alerts.kpi_rules import KpiThresholds
from pv_platform.alerts.loss_rules import LossThresholds
from pv_platform.alerts.realtime import Thresholds
from pv_platform.plant import AlertLimits, Site


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
