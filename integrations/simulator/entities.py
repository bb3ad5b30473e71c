"""Entities of simulated devices: the same descriptions as the real protocols they stand in for."""

from integrations.mqtt.entities import MQTT_ENTITIES
from integrations.sunspec_modbus.entities import INVERTER_ENTITIES

SIMULATED_INVERTER_ENTITIES = INVERTER_ENTITIES
SIMULATED_WEATHER_ENTITIES = MQTT_ENTITIES
