"""The plant file (``plant.yaml``): sites, their devices and the ratings the KPIs need.

Errors name the file, the site/device and the field, and say what to fix.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pv_platform.loader import load_integration
from pv_platform.plant_blocks import (
    AlertLimits,
    GridLimits,
    MaintenanceWindow,
    ReportSettings,
    StrictModel,
)
from pv_platform.settings import HOUR_KEY_FORMAT

DeviceKind = Literal["inverter", "weather_station", "meter", "string_combiner"]
MAX_RATING_KW = 1_000_000.0  # 1 GW: larger than any single device
# Without a plant file, readings up to this far back are accepted: two decades of history can still be
# imported, while a device clock reset to 2000-01-01 (a common RTC default) is refused.
DEFAULT_HISTORY_YEARS = 20
# Without any commissioning_date in the plant file (and no PVP_KPI_START), the KPI partitions, and so
# the readings accepted, start on 1 January this many years before the current year.
UNCOMMISSIONED_HISTORY_YEARS = 1
# zoneinfo knows these, but they are not a place: the host's zone, a placeholder, leap-second variants
NOT_A_PLACE_TIMEZONES = {"Factory", "localtime", "posixrules"}


def default_earliest_reading(now: datetime | None = None) -> datetime:
    """Oldest timestamp accepted from a site without commissioning_date: 1 January,
    DEFAULT_HISTORY_YEARS before `now`."""
    now = now or datetime.now(UTC)
    return datetime(now.year - DEFAULT_HISTORY_YEARS, 1, 1, tzinfo=UTC)


class PlantFileError(ValueError):
    """A plant file that cannot be used; the message says where and how to fix it."""


class Device(StrictModel):
    """One device of a site, read by one integration."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: DeviceKind
    integration: str = Field(description="Integration domain, e.g. sunspec_modbus or mqtt.")
    name: str | None = None
    p_dc_kw: float | None = Field(
        default=None, gt=0, le=MAX_RATING_KW, description="DC nameplate at STC [kW]."
    )
    p_ac_kw: float | None = Field(
        default=None, gt=0, le=MAX_RATING_KW, description="AC rating [kW]."
    )
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


@cache
def _timezone_names() -> frozenset[str]:
    """The IANA zone names (read once: `available_timezones` walks the zone files, ~50 ms a call,
    which was most of a 1,000-site plant file's load time)."""
    return frozenset(available_timezones())


class Site(StrictModel):
    """A PV plant at one place; times are bucketed in its own time zone."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = Field(default=0.0, ge=-500, le=9000)
    commissioning_date: date | None = Field(
        default=None,
        description="First day the site produced (UTC midnight): older readings are quarantined,"
        " and the KPI partitions start at the earliest site's (unset: 1 January of last year).",
    )
    timezone: str = "UTC"
    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)
    devices: list[Device]
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    grid: GridLimits = Field(default_factory=GridLimits)
    alerts: AlertLimits = Field(default_factory=AlertLimits)
    report: ReportSettings = Field(default_factory=ReportSettings)
    daylight_poa_wm2: float = Field(
        default=50.0, ge=0, le=500, description="Daylight threshold [W/m2]."
    )
    tariff_per_kwh: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Value of a kWh (feed-in tariff or PPA price) [currency/kWh].",
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    cleaning_cost: float | None = Field(
        default=None, ge=0, description="Cost of one cleaning of the site's modules [currency]."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
            if tz in NOT_A_PLACE_TIMEZONES or tz not in _timezone_names():
                raise ValueError(tz)
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

    def earliest_reading(self, now: datetime | None = None) -> datetime:
        """Oldest timestamp accepted from this site: its commissioning day (midnight UTC), else
        DEFAULT_HISTORY_YEARS before `now`. (The ingest also refuses hours before the plant's
        `kpi_start`: see `landing.TimeLimits.for_plant`.)"""
        if self.commissioning_date is not None:
            return datetime.combine(self.commissioning_date, time(), UTC)
        return default_earliest_reading(now)

    @property
    def inverters(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "inverter"]

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)


class Plant(StrictModel):
    """Everything the platform watches."""

    sites: list[Site]

    @model_validator(mode="after")
    def _unique_site_ids(self) -> Plant:
        seen: set[str] = set()
        for site in self.sites:
            if site.id in seen:
                raise ValueError(
                    f"site id {site.id!r} appears twice; site ids must be unique in a plant file"
                )
            seen.add(site.id)
        return self

    @model_validator(mode="after")
    def _one_device_per_topic(self) -> Plant:
        owner: dict[str, str] = {}
        for site in self.sites:
            for device in site.devices:
                topic = device.config.get("topic") if device.integration == "mqtt" else None
                if not isinstance(topic, str):
                    continue
                if topic in owner:
                    raise ValueError(
                        f"MQTT topic {topic!r} is used by {owner[topic]} and {site.id}.{device.id};"
                        " give each device its own topic"
                    )
                owner[topic] = f"{site.id}.{device.id}"
        return self

    def site(self, site_id: str) -> Site:
        return next(s for s in self.sites if s.id == site_id)

    def kpi_start(self, override: str | None = None, now: datetime | None = None) -> datetime:
        """First hour of the KPI partitions (UTC): `override` (PVP_KPI_START, `YYYY-MM-DD-HH:MM`) when
        given, else the earliest site commissioning day (midnight UTC), else 1 January
        UNCOMMISSIONED_HISTORY_YEARS before `now`'s year."""
        return kpi_start(self, override, now)


def kpi_start(plant: Plant | None, override: str | None = None, now: datetime | None = None):
    """`Plant.kpi_start` for a plant or none (no plant file: the override or last year)."""
    if override:
        return datetime.strptime(override, HOUR_KEY_FORMAT).replace(tzinfo=UTC)
    dates = [s.commissioning_date for s in plant.sites if s.commissioning_date] if plant else []
    if dates:
        return datetime.combine(min(dates), time(), UTC)
    now = now or datetime.now(UTC)
    return datetime(now.year - UNCOMMISSIONED_HISTORY_YEARS, 1, 1, tzinfo=UTC)


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
    _validate_together(plant, source)
    return plant


def _validate_together(plant: Plant, source: str) -> None:
    """What one device's config cannot tell: an integration's `validate_devices` sees all of its
    devices at once (e.g. two Modbus devices on one serial line with different line settings)."""
    by_domain: dict[str, list[tuple[str, Any]]] = {}
    for site in plant.sites:
        for device in site.devices:
            by_domain.setdefault(device.integration, []).append(
                (f"{site.id}.{device.id}", device.config)
            )
    for domain, devices in by_domain.items():
        validate = getattr(load_integration(domain).module, "validate_devices", None)
        if validate is None:
            continue
        try:
            validate(devices)
        except ValueError as exc:
            raise PlantFileError(f"{source}: {exc}") from None


class _PlantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML (libyaml's C parser when present: 10 000 devices load in about a second) that refuses
    a key given twice in one mapping instead of silently keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            scalar = isinstance(key_node, yaml.ScalarNode)
            key = (
                key_node.tag,
                key_node.value if scalar else repr(self.construct_object(key_node)),
            )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key[1]!r} appears twice (first {seen[key]}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_PlantLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _PlantLoader.construct_mapping
)


def _plant_text(path: Path) -> str:
    """The file's text, which must be UTF-8; errors name the file and the first bad byte."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise PlantFileError(f"{path}: looks like UTF-16; save the plant file as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlantFileError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8;"
            " save the plant file as UTF-8"
        ) from None


def load_plant(path: Path | str) -> Plant:
    """Read and validate a plant file; errors name the file, the field and the fix."""
    path = Path(path)
    if not path.exists():
        raise PlantFileError(
            f"{path}: plant file not found; set PVP_PLANT_FILE or run `pvp demo` to write one"
        )
    try:
        data = yaml.load(_plant_text(path), Loader=_PlantLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise PlantFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_plant(data, str(path))


def load_plant_cached(path: Path | str) -> Plant:
    """`load_plant`, parsed again only when the file changed (path, modification time, size): a
    1,000-site file takes seconds to validate, and the code location, every sensor tick and every run
    read it. Treat the result as read-only."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return load_plant(path)  # its error names the file
    return _plant_version(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _plant_version(path: str, mtime_ns: int, size: int) -> Plant:
    return load_plant(path)


def dump_plant(plant: Plant, path: Path | str) -> None:
    """Write a plant file (used by the demo to record the ports it chose)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(
        yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
