"""The plant file (``plant.yaml``): sites, their devices and the ratings the KPIs need.

Errors name the file, the site/device and the field, and say what to fix.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DeviceKind = Literal["inverter", "weather_station", "meter", "string_combiner"]


class PlantFileError(ValueError):
    """A plant file that cannot be used; the message says where and how to fix it."""


class Device(BaseModel):
    """One device of a site, read by one integration."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: DeviceKind
    integration: str = Field(description="Integration domain, e.g. sunspec_modbus or mqtt.")
    name: str | None = None
    p_dc_kw: float | None = Field(default=None, gt=0, description="DC nameplate at STC [kW].")
    p_ac_kw: float | None = Field(default=None, gt=0, description="AC rating [kW].")
    gamma_pdc_per_c: float = Field(
        default=-0.0037, lt=0, gt=-0.02, description="Power temperature coefficient [1/°C]."
    )
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _inverter_has_ratings(self) -> Device:
        if self.kind == "inverter" and (self.p_dc_kw is None or self.p_ac_kw is None):
            raise ValueError(
                "an inverter needs p_dc_kw (DC nameplate, kW) and p_ac_kw (AC rating, kW)"
            )
        return self


class MaintenanceWindow(BaseModel):
    """Planned maintenance: downtime inside it is scheduled, reported apart from forced outages."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    devices: list[str] | None = Field(default=None, description="Device ids; None: the whole site.")
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(
                "maintenance start and end need a time zone, e.g. 2026-06-21T08:00:00+02:00"
            )
        if self.end <= self.start:
            raise ValueError("maintenance end must be after its start")
        return self

    def covers(self, device_id: str) -> bool:
        return self.devices is None or device_id in self.devices


class GridLimits(BaseModel):
    """The band the grid must stay in; outside it is a grid outage (out of electrical specification)."""

    model_config = ConfigDict(extra="forbid")

    frequency_hz: tuple[float, float] = (49.5, 50.5)
    voltage_v: tuple[float, float] = (207.0, 253.0)


class AlertLimits(BaseModel):
    """Per-site alert thresholds (plant file `alerts:`); anything left out keeps the fleet value (settings
    `PVP_ALERT_THRESHOLDS`) or the built-in default. Grid bands come from the site's `grid:` block."""

    model_config = ConfigDict(extra="forbid")

    stale_after_s: float | None = Field(default=None, gt=0)
    stale_polls: float | None = Field(default=None, gt=0)
    fault_hold_s: float | None = Field(default=None, ge=0)
    grid_hold_s: float | None = Field(default=None, ge=0)
    over_temperature_c: float | None = None
    module_over_temperature_c: float | None = None
    hot_spot_delta_c: float | None = Field(default=None, gt=0)
    string_current_fraction: float | None = Field(default=None, gt=0, lt=1)
    min_efficiency: float | None = Field(default=None, gt=0, le=1)
    efficiency_hold_s: float | None = Field(default=None, ge=0)
    daylight_poa_wm2: float | None = Field(default=None, ge=0)
    pr_min: float | None = Field(default=None, gt=0, le=1.5)
    expected_margin: float | None = Field(default=None, ge=0, lt=1)
    availability_min: float | None = Field(default=None, gt=0, le=1)
    min_insolation_kwh_m2: float | None = Field(default=None, ge=0)
    string_outlier_fraction: float | None = Field(default=None, gt=0, lt=1)
    string_outlier_hours: int | None = Field(default=None, ge=1)

    def overrides(self) -> dict[str, float]:
        """The thresholds this block sets."""
        return self.model_dump(exclude_none=True)


class Site(BaseModel):
    """A PV plant at one place; times are bucketed in its own time zone."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0
    timezone: str = "UTC"
    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)
    devices: list[Device]
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    grid: GridLimits = Field(default_factory=GridLimits)
    alerts: AlertLimits = Field(default_factory=AlertLimits)
    daylight_poa_wm2: float = Field(
        default=50.0, ge=0, le=500, description="Daylight threshold [W/m2]."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {tz!r}; use an IANA name such as Europe/Zurich"
            ) from None
        return tz

    @model_validator(mode="after")
    def _maintenance_devices_exist(self) -> Site:
        ids = {d.id for d in self.devices}
        for window in self.maintenance:
            unknown = set(window.devices or []) - ids
            if unknown:
                raise ValueError(f"maintenance window names unknown devices {sorted(unknown)}")
        return self

    @model_validator(mode="after")
    def _unique_device_ids(self) -> Site:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(
                    f"device id {device.id!r} appears twice; device ids must be unique in a site"
                )
            seen.add(device.id)
        return self

    @property
    def inverters(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "inverter"]

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)


class Plant(BaseModel):
    """Everything the platform watches."""

    model_config = ConfigDict(extra="forbid")

    sites: list[Site]

    def site(self, site_id: str) -> Site:
        return next(s for s in self.sites if s.id == site_id)


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic error location into `sites[0] (demo).devices[1] (inv2).config.port`."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            try:
                node = node[item]
                if isinstance(node, dict) and "id" in node:
                    label += f" ({node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def parse_plant(data: Any, source: str = "<plant>") -> Plant:
    """Validate a plant mapping, including each device's integration config."""
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_location(err['loc'], data)}: {err['msg']}" for err in exc.errors()]
        raise PlantFileError("invalid plant file\n  " + "\n  ".join(lines)) from None
    from pv_platform.integration import load_integration  # late: integrations import pv_platform

    for s, site in enumerate(plant.sites):
        for d, device in enumerate(site.devices):
            where = f"{source}: sites[{s}] ({site.id}).devices[{d}] ({device.id})"
            try:
                integration = load_integration(device.integration)
            except KeyError as exc:
                raise PlantFileError(f"{where}.integration: {exc.args[0]}") from None
            try:
                integration.config_model.model_validate(device.config)
            except ValidationError as exc:
                lines = [
                    f"{where}.config.{_location(e['loc'], device.config)}: {e['msg']}"
                    for e in exc.errors()
                ]
                raise PlantFileError("invalid device config\n  " + "\n  ".join(lines)) from None
    return plant


def load_plant(path: Path | str) -> Plant:
    """Read and validate a plant file; errors name the file, the field and the fix."""
    path = Path(path)
    if not path.exists():
        raise PlantFileError(
            f"{path}: plant file not found; set PVP_PLANT_FILE or run `pvp demo` to write one"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlantFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_plant(data, str(path))


def dump_plant(plant: Plant, path: Path | str) -> None:
    """Write a plant file (used by the demo to record the ports it chose)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(
        yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
