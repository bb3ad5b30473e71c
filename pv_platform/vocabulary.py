"""The platform's words, defined once (as Home Assistant's `const.py`): metric names, units, device and
state classes, SunSpec operating states and inverter event bits. Every module imports them from here;
StrEnum members compare equal to their text, so stored entity keys and payloads stay plain strings."""

from __future__ import annotations

import enum


class _Word(enum.StrEnum):
    """A word of the vocabulary: compares, hashes, formats and prints (also with `!r`) as its text."""

    def __repr__(self) -> str:
        return repr(self.value)


class Metric(_Word):
    """The name of a measured quantity: the last part of an entity key `site.device.metric`."""

    AC_POWER = "ac_power"
    AC_ENERGY = "ac_energy"
    AC_CURRENT = "ac_current"
    AC_VOLTAGE_AN = "ac_voltage_an"
    AC_FREQUENCY = "ac_frequency"
    AC_REACTIVE_POWER = "ac_reactive_power"
    POWER_FACTOR = "power_factor"
    DC_CURRENT = "dc_current"
    DC_VOLTAGE = "dc_voltage"
    DC_POWER = "dc_power"
    CABINET_TEMPERATURE = "cabinet_temperature"
    OPERATING_STATE = "operating_state"
    EVENTS = "events"
    POA_IRRADIANCE = "poa_irradiance"
    GHI_IRRADIANCE = "ghi_irradiance"
    MODULE_TEMPERATURE = "module_temperature"
    AMBIENT_TEMPERATURE = "ambient_temperature"
    WIND_SPEED = "wind_speed"
    EXPORT_ENERGY = "export_energy"
    IMPORT_ENERGY = "import_energy"
    GRID_FREQUENCY = "grid_frequency"
    GRID_VOLTAGE = "grid_voltage"
    # the active-power limit in force, % of the inverter's rating (SunSpec model 123 WMaxLimPct while
    # WMaxLim_Ena; 100 when no limit is enabled): a plant controller's export limit or a grid operator's
    # curtailment order
    ACTIVE_POWER_LIMIT_PCT = "active_power_limit_pct"


class MpptMetric(_Word):
    """Per-MPPT (string input) quantities; the metric is `mppt<id>_<suffix>` (`mppt_metric`)."""

    DC_CURRENT = "dc_current"
    DC_VOLTAGE = "dc_voltage"
    DC_POWER = "dc_power"
    TEMPERATURE = "temperature"  # module temperature of the string


def mppt_metric(mppt_id: int, quantity: MpptMetric) -> str:
    """The metric name of one MPPT input's quantity.

    >>> mppt_metric(3, MpptMetric.DC_CURRENT)
    'mppt3_dc_current'
    """
    return f"mppt{int(mppt_id)}_{quantity}"


class Unit(_Word):
    """Units as stored with each entity."""

    WATT = "W"
    WATT_HOUR = "Wh"
    AMPERE = "A"
    VOLT = "V"
    HERTZ = "Hz"
    VOLT_AMPERE_REACTIVE = "var"
    CELSIUS = "°C"
    WATT_PER_M2 = "W/m²"
    METRE_PER_SECOND = "m/s"
    PERCENT = "%"
    NONE = ""


class DeviceClass(_Word):
    POWER = "power"
    ENERGY = "energy"
    IRRADIANCE = "irradiance"
    TEMPERATURE = "temperature"
    VOLTAGE = "voltage"
    CURRENT = "current"
    FREQUENCY = "frequency"
    POWER_FACTOR = "power_factor"
    ENUM = "enum"
    SPEED = "speed"
    SETPOINT = "setpoint"  # a control value the device reports (no Home Assistant device class)


class StateClass(_Word):
    MEASUREMENT = "measurement"
    TOTAL_INCREASING = "total_increasing"


class OperatingState(enum.IntEnum):
    """SunSpec inverter operating state (`St` of models 101–103 / 111–113)."""

    OFF = 1
    SLEEPING = 2
    STARTING = 3
    MPPT = 4  # producing
    THROTTLED = 5
    SHUTTING_DOWN = 6
    FAULT = 7
    STANDBY = 8

    @classmethod
    def name_of(cls, code: float | None) -> str | None:
        """The state's name for a raw register value, None when unknown or missing."""
        try:
            return cls(int(code)).name if code is not None else None
        except ValueError:
            return None


class InverterEvent(enum.IntFlag):
    """SunSpec inverter event bits (`Evt1` of models 101–103 / 111–113)."""

    GROUND_FAULT = 1 << 0
    DC_OVER_VOLT = 1 << 1
    AC_DISCONNECT = 1 << 2
    DC_DISCONNECT = 1 << 3
    GRID_DISCONNECT = 1 << 4
    CABINET_OPEN = 1 << 5
    MANUAL_SHUTDOWN = 1 << 6
    OVER_TEMP = 1 << 7
    OVER_FREQUENCY = 1 << 8
    UNDER_FREQUENCY = 1 << 9
    AC_OVER_VOLT = 1 << 10
    AC_UNDER_VOLT = 1 << 11
    BLOWN_STRING_FUSE = 1 << 12
    UNDER_TEMP = 1 << 13
    MEMORY_LOSS = 1 << 14
    HW_TEST_FAILURE = 1 << 15


def event_names(bits: float | None) -> list[str]:
    """Names of the event bits set in a raw `Evt1` value, lowest bit first.

    >>> event_names(0b10001)
    ['GROUND_FAULT', 'GRID_DISCONNECT']
    """
    if not bits:
        return []
    value = int(bits)
    return [e.name for e in InverterEvent if value & e]


def event_bits(names: list[str]) -> int:
    """The raw `Evt1` value with the named bits set (unknown names are ignored)."""
    known = InverterEvent.__members__
    return sum(int(known[n]) for n in set(names) if n in known)
