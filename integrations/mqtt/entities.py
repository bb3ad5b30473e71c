"""Metrics an MQTT device may publish, with their units; a config maps payload fields onto them."""

from __future__ import annotations

from pv_platform.integration import DeviceClass, EntityDescription, StateClass

D, S = DeviceClass, StateClass
MQTT_ENTITIES: tuple[EntityDescription, ...] = (
    EntityDescription("poa_irradiance", "W/m²", D.IRRADIANCE),
    EntityDescription("ghi_irradiance", "W/m²", D.IRRADIANCE),
    EntityDescription("module_temperature", "°C", D.TEMPERATURE),
    EntityDescription("ambient_temperature", "°C", D.TEMPERATURE),
    EntityDescription("wind_speed", "m/s", D.SPEED),
    EntityDescription("ac_power", "W", D.POWER),
    EntityDescription("export_energy", "Wh", D.ENERGY, S.TOTAL_INCREASING),
    EntityDescription("import_energy", "Wh", D.ENERGY, S.TOTAL_INCREASING),
    EntityDescription("grid_frequency", "Hz", D.FREQUENCY),
    EntityDescription("grid_voltage", "V", D.VOLTAGE),
    EntityDescription("power_factor", "", D.POWER_FACTOR),
)
KNOWN_METRICS = {d.key for d in MQTT_ENTITIES}
