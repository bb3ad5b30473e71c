"""Entities of a SunSpec inverter (models 101–103): metric key, unit, classes and SunSpec point."""

from __future__ import annotations

from pv_platform.coordinator import EntityDescription
from pv_platform.vocabulary import DeviceClass, Metric, StateClass, Unit

D, S = DeviceClass, StateClass
INVERTER_ENTITIES: tuple[EntityDescription, ...] = (
    EntityDescription(key=Metric.AC_POWER, unit=Unit.WATT, device_class=D.POWER, source="W"),
    EntityDescription(
        key=Metric.AC_ENERGY,
        unit=Unit.WATT_HOUR,
        device_class=D.ENERGY,
        state_class=S.TOTAL_INCREASING,
        source="WH",
    ),
    EntityDescription(key=Metric.AC_CURRENT, unit=Unit.AMPERE, device_class=D.CURRENT, source="A"),
    EntityDescription(
        key=Metric.AC_VOLTAGE_AN, unit=Unit.VOLT, device_class=D.VOLTAGE, source="PhVphA"
    ),
    EntityDescription(
        key=Metric.AC_FREQUENCY, unit=Unit.HERTZ, device_class=D.FREQUENCY, source="Hz"
    ),
    EntityDescription(
        key=Metric.AC_REACTIVE_POWER,
        unit=Unit.VOLT_AMPERE_REACTIVE,
        device_class=D.POWER,
        source="VAr",
    ),
    EntityDescription(
        key=Metric.POWER_FACTOR, unit=Unit.NONE, device_class=D.POWER_FACTOR, source="PF"
    ),
    EntityDescription(
        key=Metric.DC_CURRENT, unit=Unit.AMPERE, device_class=D.CURRENT, source="DCA"
    ),
    EntityDescription(key=Metric.DC_VOLTAGE, unit=Unit.VOLT, device_class=D.VOLTAGE, source="DCV"),
    EntityDescription(key=Metric.DC_POWER, unit=Unit.WATT, device_class=D.POWER, source="DCW"),
    EntityDescription(
        key=Metric.CABINET_TEMPERATURE,
        unit=Unit.CELSIUS,
        device_class=D.TEMPERATURE,
        source="TmpCab",
    ),
    EntityDescription(key=Metric.OPERATING_STATE, unit=Unit.NONE, device_class=D.ENUM, source="St"),
    EntityDescription(key=Metric.EVENTS, unit=Unit.NONE, device_class=D.ENUM, source="Evt1"),
)
