"""Typed records of live data: a source's state, an inverter poll, a string, a module."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pv_platform.vocabulary import Metric, OperatingState, event_names


class SourceState(BaseModel):
    """One configured device and how it is doing."""

    site_id: str
    device_id: str
    kind: str
    integration: str
    last_reading: datetime | None = Field(description="newest reading stored or seen live (UTC)")
    available: bool = Field(description="a reading within the communication-loss limit")


class InverterRecord(BaseModel):
    """One inverter poll, parsed (SunSpec units: W, Wh, V, A, Hz, °C)."""

    site_id: str
    device_id: str
    ts: datetime
    ac_power_w: float | None = None
    ac_energy_wh: float | None = None
    dc_power_w: float | None = None
    dc_voltage_v: float | None = None
    dc_current_a: float | None = None
    ac_voltage_v: float | None = None
    ac_current_a: float | None = None
    frequency_hz: float | None = None
    cabinet_temperature_c: float | None = None
    operating_state: int | None = None
    faulted: bool = False
    events: list[str] = Field(default_factory=list)


class StringRecord(BaseModel):
    """One string (MPPT input) at one poll, with the real-time string-fault rule's verdict."""

    site_id: str
    device_id: str
    string: str
    ts: datetime
    current_a: float
    voltage_v: float | None = None
    power_w: float | None = None
    median_current_a: float | None = Field(description="median of the site's strings")
    outlier: bool


class ModuleRecord(BaseModel):
    """A string's module temperature at one poll, with the hot-spot rule's verdict."""

    site_id: str
    device_id: str
    string: str
    ts: datetime
    temperature_c: float
    median_temperature_c: float | None
    hot_spot: bool


INVERTER_FIELDS = {
    Metric.AC_POWER: "ac_power_w", Metric.AC_ENERGY: "ac_energy_wh", Metric.DC_POWER: "dc_power_w",
    Metric.DC_VOLTAGE: "dc_voltage_v", Metric.DC_CURRENT: "dc_current_a", Metric.AC_VOLTAGE_AN: "ac_voltage_v",
    Metric.AC_CURRENT: "ac_current_a", Metric.AC_FREQUENCY: "frequency_hz",
    Metric.CABINET_TEMPERATURE: "cabinet_temperature_c",
}  # fmt: skip


def parse_inverter(site_id: str, device_id: str, ts: datetime, values: dict) -> InverterRecord:
    """Live-bus values of one inverter poll -> InverterRecord (state and event bits decoded)."""
    record = InverterRecord(
        site_id=site_id,
        device_id=device_id,
        ts=ts,
        **{f: float(values[m]) for m, f in INVERTER_FIELDS.items() if m in values},
    )
    if Metric.OPERATING_STATE in values:
        record.operating_state = int(values[Metric.OPERATING_STATE])
        record.faulted = record.operating_state == OperatingState.FAULT
    record.events = event_names(values.get(Metric.EVENTS, 0))
    return record
