"""Entities of a SunSpec inverter (models 101–103): metric key, unit, classes and SunSpec point."""

from __future__ import annotations

from pv_platform.integration import DeviceClass, EntityDescription, StateClass

D, S = DeviceClass, StateClass
INVERTER_ENTITIES: tuple[EntityDescription, ...] = (
    EntityDescription("ac_power", "W", D.POWER, S.MEASUREMENT, "W"),
    EntityDescription("ac_energy", "Wh", D.ENERGY, S.TOTAL_INCREASING, "WH"),
    EntityDescription("ac_current", "A", D.CURRENT, S.MEASUREMENT, "A"),
    EntityDescription("ac_voltage_an", "V", D.VOLTAGE, S.MEASUREMENT, "PhVphA"),
    EntityDescription("ac_frequency", "Hz", D.FREQUENCY, S.MEASUREMENT, "Hz"),
    EntityDescription("ac_reactive_power", "var", D.POWER, S.MEASUREMENT, "VAr"),
    EntityDescription("power_factor", "", D.POWER_FACTOR, S.MEASUREMENT, "PF"),
    EntityDescription("dc_current", "A", D.CURRENT, S.MEASUREMENT, "DCA"),
    EntityDescription("dc_voltage", "V", D.VOLTAGE, S.MEASUREMENT, "DCV"),
    EntityDescription("dc_power", "W", D.POWER, S.MEASUREMENT, "DCW"),
    EntityDescription("cabinet_temperature", "°C", D.TEMPERATURE, S.MEASUREMENT, "TmpCab"),
    EntityDescription("operating_state", "", D.ENUM, S.MEASUREMENT, "St"),
    EntityDescription("events", "", D.ENUM, S.MEASUREMENT, "Evt1"),
)
