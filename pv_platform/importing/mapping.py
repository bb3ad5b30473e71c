"""The mapping of `pvp import`: which file column is which site/device/metric, in which unit, and how
the file writes time. Read from a YAML file (`--mapping`) and/or command-line flags; errors name the
file, the column and the field.

Example (wide layout: one column per signal)::

    site: plant1
    layout: wide
    time: {column: timestamp, zone: Europe/Zurich}   # naive stamps in local time (DST-aware)
    columns:
      "INV01 P [kW]": {device: inv01, metric: ac_power, unit: kW}
      "Irradiance":   {device: wx1, metric: poa_irradiance, unit: W/m2}

Long layout (`timestamp, device, metric, value`)::

    site: plant1
    layout: long
    time: {column: timestamp, epoch: s}
    long: {device: device, metric: metric, value: value,
           devices: {"WR 1": inv01}, metrics: {P_AC: {metric: ac_power, unit: kW}}}
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pv_platform.readings import entity_key

_METRIC = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d\d)?$")
# (from unit, to unit) -> (factor, offset): value_to = value_from * factor + offset
CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("kW", "W"): (1e3, 0.0),
    ("MW", "W"): (1e6, 0.0),
    ("kWh", "Wh"): (1e3, 0.0),
    ("MWh", "Wh"): (1e6, 0.0),
    ("kvar", "var"): (1e3, 0.0),
    ("kV", "V"): (1e3, 0.0),
    ("mA", "A"): (1e-3, 0.0),
    ("kW/m²", "W/m²"): (1e3, 0.0),
    ("km/h", "m/s"): (1 / 3.6, 0.0),
    ("K", "°C"): (1.0, -273.15),
    ("°F", "°C"): (5 / 9, -160 / 9),
    ("%", ""): (0.01, 0.0),
}
_SPELLINGS = {"W/m2": "W/m²", "kW/m2": "kW/m²", "degC": "°C", "C": "°C", "degF": "°F", "F": "°F"}


class MappingError(ValueError):
    """A mapping that cannot be used; the message names where and what to fix."""


@lru_cache(maxsize=1)
def platform_units() -> dict[str, tuple[str, str]]:
    """metric -> (unit, device class) of the metrics the platform's integrations define."""
    from integrations.mqtt.entities import MQTT_ENTITIES
    from integrations.sunspec_modbus.entities import INVERTER_ENTITIES

    return {d.key: (d.unit, str(d.device_class)) for d in (*INVERTER_ENTITIES, *MQTT_ENTITIES)}


def conversion(unit_from: str, unit_to: str) -> tuple[float, float] | None:
    """(factor, offset) taking a value in `unit_from` to `unit_to`; None when there is none known."""
    a, b = _SPELLINGS.get(unit_from, unit_from), _SPELLINGS.get(unit_to, unit_to)
    return (1.0, 0.0) if a == b else CONVERSIONS.get((a, b))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TimeSpec(_Strict):
    """How a file writes time. Stamps with an offset (ISO `...+01:00`, `...Z`) are read as written;
    naive stamps are in `zone`: an IANA name (DST-aware) or a fixed offset such as `+01:00` (loggers
    that write standard time all year). `epoch`: numeric stamps in s, ms, us or ns since 1970 UTC."""

    column: str = "timestamp"
    zone: str | None = None
    epoch: Literal["s", "ms", "us", "ns"] | None = None
    format: str | None = Field(default=None, description="strptime format, e.g. %d.%m.%Y %H:%M")

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is None or fixed_offset(zone) is not None:
            return zone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown zone {zone!r}: give an IANA name (Europe/Zurich) or an offset (+01:00)"
            ) from None
        return zone


def fixed_offset(zone: str) -> timezone | None:
    """The fixed UTC offset written as `+01:00`, `-0500`, `UTC+1`; None for anything else."""
    m = _OFFSET.match(zone.strip())
    if not m:
        return None
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    return timezone(-delta if m.group(1) == "-" else delta)


class Target(_Strict):
    """Where a column's (or a long-format metric's) values go, and how to convert them."""

    site: str | None = None
    device: str | None = None
    metric: str
    unit: str | None = Field(default=None, description="unit of the values in the file")
    scale: float = Field(default=1.0, description="multiplies each value first (e.g. 0.1)")

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, metric: str) -> str:
        if not _METRIC.match(metric):
            raise ValueError(f"metric {metric!r} must be letters, digits and _ (e.g. ac_power)")
        return metric


class LongSpec(_Strict):
    """Column names of the long layout, and renames of its device and metric names."""

    device: str = "device"
    metric: str = "metric"
    value: str = "value"
    devices: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, Target] = Field(default_factory=dict)


class Mapping(_Strict):
    """Everything `pvp import` needs to know about a file."""

    site: str | None = None
    layout: Literal["wide", "long"] = "wide"
    time: TimeSpec = Field(default_factory=TimeSpec)
    columns: dict[str, Target] = Field(default_factory=dict)
    long: LongSpec = Field(default_factory=LongSpec)


def load_mapping(path: Path | None, overrides: dict) -> Mapping:
    """The mapping from a YAML file (optional) with command-line `overrides` applied on top.

    overrides: site, layout, time (dict of TimeSpec fields), columns (dict of column -> Target dict).
    """
    data: dict = {}
    where = str(path) if path else "command line"
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"{where}: cannot read the mapping: {exc}") from None
        if not isinstance(data, dict):
            raise MappingError(f"{where}: a mapping file is a YAML mapping (site:, columns: ...)")
    for key in ("site", "layout"):
        if overrides.get(key):
            data[key] = overrides[key]
    data["time"] = {**(data.get("time") or {}), **(overrides.get("time") or {})}
    data["columns"] = {**(data.get("columns") or {}), **(overrides.get("columns") or {})}
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"{where}: {field}: {first['msg']}") from None


def parse_column_flag(flag: str) -> tuple[str, dict]:
    """`--column 'SRC=DEVICE.METRIC[:UNIT][*SCALE]'` (or `SITE.DEVICE.METRIC`) as (column, target)."""
    column, sep, spec = flag.rpartition("=")
    if not sep or not column:
        raise MappingError(f"--column {flag!r}: write COLUMN=DEVICE.METRIC[:UNIT][*SCALE]")
    spec, _, scale = spec.partition("*")
    spec, _, unit = spec.partition(":")
    parts = spec.split(".")
    if len(parts) not in (2, 3):
        raise MappingError(f"--column {flag!r}: the target is DEVICE.METRIC or SITE.DEVICE.METRIC")
    target = dict(zip(("site", "device", "metric")[-len(parts) :], parts, strict=True))
    if unit:
        target["unit"] = unit
    if scale:
        try:
            target["scale"] = float(scale)
        except ValueError:
            raise MappingError(f"--column {flag!r}: scale {scale!r} is not a number") from None
    return column, target


class Resolved(BaseModel):
    """A target checked against the plant file: its entity key, unit and conversion."""

    model_config = ConfigDict(frozen=True)

    site: str
    key: str
    unit: str
    device_class: str
    factor: float
    offset: float


def resolve(target: Target, default_site: str | None, device: str | None, plant, where: str):
    """The entity a target names in `plant`, with the factor and offset to the platform's unit.
    MappingError (naming `where`) for an unknown site or device or a unit that does not convert."""
    site_id = target.site or default_site
    device_id = target.device or device
    if not site_id:
        raise MappingError(f"{where}: no site (give site: in the mapping or --site)")
    if not device_id:
        raise MappingError(f"{where}: no device")
    site = next((s for s in plant.sites if s.id == site_id), None)
    if site is None:
        raise MappingError(f"{where}: site {site_id!r} is not in the plant file")
    if all(d.id != device_id for d in site.devices):
        raise MappingError(f"{where}: device {device_id!r} is not in site {site_id!r}")
    unit, device_class = platform_units().get(target.metric, (target.unit or "", ""))
    factor_offset = conversion(target.unit if target.unit is not None else unit, unit)
    if factor_offset is None:
        known = sorted(a for a, b in CONVERSIONS if b == unit)
        raise MappingError(
            f"{where}: unit {target.unit!r} does not convert to {target.metric}'s unit {unit!r}"
            f" (known: {', '.join([unit, *known])}; or give scale:)"
        )
    factor, offset = factor_offset
    return Resolved(
        site=site_id,
        key=entity_key(site_id, device_id, target.metric),
        unit=unit,
        device_class=device_class,
        factor=factor * target.scale,
        offset=offset,
    )
