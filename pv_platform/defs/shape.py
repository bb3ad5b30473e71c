"""The settings that shape the definitions themselves: how often each sensor ticks and how an ingest
op retries. Dagster needs them when a sensor or op is defined, so they are read here, once, when the
code location loads the `defs` folder (with the partitions' first hour in `partitions.py`); every
other setting is read by a run or a tick when it needs it."""

from dataclasses import dataclass

from pv_platform.settings import get_settings


@dataclass(frozen=True)
class DefinitionShape:
    landing_sensor_interval_s: int
    kpi_sensor_interval_s: int
    ingest_retries: int
    ingest_retry_delay_s: float


def definition_shape() -> DefinitionShape:
    settings = get_settings()
    return DefinitionShape(
        landing_sensor_interval_s=settings.sensor_interval_s,
        kpi_sensor_interval_s=settings.kpi_sensor_interval_s,
        ingest_retries=settings.ingest_retries,
        ingest_retry_delay_s=settings.ingest_retry_delay_s,
    )


SHAPE = definition_shape()
