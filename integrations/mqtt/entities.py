"""Metrics an MQTT device may publish, with their units; a config maps payload fields onto them."""

from __future__ import annotations

from pv_platform.coordinator import EntityDescription
from pv_platform.vocabulary import DeviceClass, Metric, StateClass, Unit

D, S = DeviceClass, StateClass
MQTT_ENTITIES: tuple[EntityDescription, ...] = (
    EntityDescription(key=Metric.POA_IRRADIANCE, unit=Unit.WATT_PER_M2, device_class=D.IRRADIANCE),
    EntityDescription(key=Metric.GHI_IRRADIANCE, unit=Unit.WATT_PER_M2, device_class=D.IRRADIANCE),
    EntityDescription(key=Metric.MODULE_TEMPERATURE, unit=Unit.CELSIUS, device_class=D.TEMPERATURE),
    EntityDescription(
        key=Metric.AMBIENT_TEMPERATURE, unit=Unit.CELSIUS, device_class=D.TEMPERATURE
    ),
    EntityDescription(key=Metric.WIND_SPEED, unit=Unit.METRE_PER_SECOND, device_class=D.SPEED),
    EntityDescription(key=Metric.AC_POWER, unit=Unit.WATT, device_class=D.POWER),
    EntityDescription(
        key=Metric.EXPORT_ENERGY,
        unit=Unit.WATT_HOUR,
        device_class=D.ENERGY,
        state_class=S.TOTAL_INCREASING,
    ),
    EntityDescription(
        key=Metric.IMPORT_ENERGY,
        unit=Unit.WATT_HOUR,
        device_class=D.ENERGY,
        state_class=S.TOTAL_INCREASING,
    ),
    EntityDescription(key=Metric.GRID_FREQUENCY, unit=Unit.HERTZ, device_class=D.FREQUENCY),
    EntityDescription(key=Metric.GRID_VOLTAGE, unit=Unit.VOLT, device_class=D.VOLTAGE),
    EntityDescription(key=Metric.POWER_FACTOR, unit=Unit.NONE, device_class=D.POWER_FACTOR),
    EntityDescription(
        key=Metric.ACTIVE_POWER_LIMIT_PCT, unit=Unit.PERCENT, device_class=D.SETPOINT
    ),
)
KNOWN_METRICS = {d.key for d in MQTT_ENTITIES}
