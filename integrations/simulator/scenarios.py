"""Fault scenarios: a YAML schedule of faults the simulator injects, live and in back-filled history alike.

```yaml
faults:
  - {kind: inverter_trip, device: inv1, start: 2026-06-21T10:00:00Z, end: 2026-06-21T10:30:00Z, events: [GROUND_FAULT]}
  - {kind: string_disconnect, device: inv2, mppt: 1, start: ..., end: ...}
  - {kind: hot_spot, device: inv1, mppt: 2, delta_c: 25, start: ..., end: ...}
  - {kind: soiling_ramp, device: inv2, loss_per_day: 0.01, max_loss: 0.3, start: ...}
  - {kind: grid_outage, start: ..., end: ...}                       # the whole site
  - {kind: device_silent, device: wx1, start: ..., end: ...}         # stops answering / publishing
  - {kind: frozen_sensor, device: wx1, metric: poa_irradiance, start: ..., end: ...}
  - {kind: malformed_payloads, device: wx1, every: 3, start: ..., end: ...}
  - {kind: efficiency_drop, device: inv3, loss: 0.12, start: ..., end: ...}  # AC = (1 - loss) of normal
  - {kind: string_degradation, device: inv1, mppt: 2, loss: 0.35, start: ..., end: ...}  # one string
  - {kind: modbus_garbage, device: inv1, start: ..., end: ...}   # answers with random registers
  - {kind: modbus_slow, device: inv1, delay_s: 5, start: ..., end: ...}  # answers after delay_s
  - {kind: curtailment, limit_pct: 60, start: ..., end: ...}  # plant controller's export limit (all
    # inverters, or one with device:): AC held at limit_pct of the rating, reported as SunSpec model
    # 123 WMaxLimPct (100 outside the episodes)
```
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from integrations.simulator.physics import inverter_output
from pv_platform.plant import Device
from pv_platform.vocabulary import InverterEvent, Metric, OperatingState, event_bits

FaultKind = Literal[
    "inverter_trip", "string_disconnect", "hot_spot", "soiling_ramp", "grid_outage",
    "device_silent", "frozen_sensor", "malformed_payloads", "efficiency_drop", "string_degradation",
    "modbus_garbage", "modbus_slow", "curtailment",
]  # fmt: skip
SITE_WIDE = ("grid_outage", "curtailment")  # kinds that may leave out the device: every inverter
FAULT_COLUMNS = (
    "lost_mppt",
    "hot_spot_mppt",
    "string_loss_mppt",
)  # markers for mppt_columns, not served
ZEROED_BY_TRIP = (
    Metric.AC_POWER,
    Metric.AC_CURRENT,
    Metric.DC_POWER,
    Metric.DC_CURRENT,
    Metric.POWER_FACTOR,
    Metric.AC_REACTIVE_POWER,
)


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    start: datetime
    end: datetime | None = None  # None: until the scenario ends
    device: str | None = None  # None: the whole site (grid_outage)
    site: str | None = None
    mppt: int | None = Field(default=None, ge=1)
    metric: str | None = None
    events: list[str] = Field(default_factory=list)
    delta_c: float = 25.0
    loss_per_day: float = 0.01
    max_loss: float = 0.3
    every: int = Field(default=3, ge=1)
    loss: float = Field(default=0.3, ge=0, le=1)
    delay_s: float = Field(default=5.0, ge=0, le=120)
    limit_pct: float = Field(default=60.0, ge=0, le=100)

    @model_validator(mode="after")
    def _complete(self) -> Fault:
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError("fault start/end need a time zone (e.g. 2026-06-21T10:00:00Z)")
        if self.kind not in SITE_WIDE and self.device is None:
            raise ValueError(f"a {self.kind} fault needs a device")
        if (
            self.kind in ("string_disconnect", "hot_spot", "string_degradation")
            and self.mppt is None
        ):
            raise ValueError(f"a {self.kind} fault needs mppt (the string input, from 1)")
        if self.kind == "frozen_sensor" and self.metric is None:
            raise ValueError("a frozen_sensor fault needs the metric that freezes")
        unknown = set(self.events) - set(InverterEvent.__members__)
        if unknown:
            raise ValueError(
                f"unknown event names {sorted(unknown)}; known: {sorted(InverterEvent.__members__)}"
            )
        return self

    def applies(self, site_id: str, device_id: str | None) -> bool:
        return (self.site in (None, site_id)) and (self.device is None or self.device == device_id)

    def mask(self, index: pd.DatetimeIndex) -> np.ndarray:
        m = index >= pd.Timestamp(self.start)
        if self.end is not None:
            m &= index < pd.Timestamp(self.end)
        return np.asarray(m)

    def active(self, ts: datetime) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)

    @property
    def event_bits(self) -> int:
        return event_bits(self.events)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faults: list[Fault] = Field(default_factory=list)

    def for_device(self, site_id: str, device_id: str | None) -> list[Fault]:
        return [f for f in self.faults if f.applies(site_id, device_id)]


def load_scenario(path: Path | str) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def curtail(frame: pd.DataFrame, fault: Fault, m: np.ndarray, p_ac_w: float) -> None:
    """Hold AC power at `limit_pct` of the rating while the fault is active (DC follows: the inverter
    leaves its maximum power point), and report the limit (100 % outside every episode)."""
    if Metric.ACTIVE_POWER_LIMIT_PCT not in frame:
        frame[Metric.ACTIVE_POWER_LIMIT_PCT] = 100.0
    frame.loc[m, Metric.ACTIVE_POWER_LIMIT_PCT] = fault.limit_pct
    limit_w = fault.limit_pct / 100.0 * p_ac_w
    ac = frame[Metric.AC_POWER].to_numpy(dtype=float)
    factor = np.where(m & (ac > limit_w), limit_w / np.where(ac > 0, ac, 1.0), 1.0)
    for column in (Metric.AC_POWER, Metric.AC_CURRENT, Metric.DC_POWER, Metric.DC_CURRENT):
        frame[column] = frame[column] * factor


def controls_points(limit_pct: float) -> dict[str, int]:
    """Raw model 123 points of an active-power limit [% of WMax]: WMaxLimPct in 0.1 % (scale factor
    −1), enabled below 100 % (at 100 % the limit is released, WMaxLim_Ena 0)."""
    return {"WMaxLimPct": round(limit_pct * 10), "WMaxLimPct_SF": -1, "WMaxLim_Ena": int(limit_pct < 100.0),
            "Conn": 1, "OutPFSet_Ena": 0, "VArPct_Ena": 0, "OutPFSet_SF": -3, "VArPct_SF": 0}  # fmt: skip


def apply_to_inverter(
    frame: pd.DataFrame,
    faults: list[Fault],
    mppts: int,
    start_energy_wh: float | None = None,
    p_ac_w: float | None = None,
) -> pd.DataFrame:
    """An inverter's electrical frame (one row per instant) with its faults applied.

    Power-changing faults act before the energy counter is integrated; pass `start_energy_wh` to rebuild
    `ac_energy` afterwards (back-fill), or leave it to the caller (live). `p_ac_w`, the AC rating [W], is
    needed by curtailment (a limit in % of it).
    """
    frame = frame.copy()
    index = pd.DatetimeIndex(frame.index)
    frame[Metric.EVENTS] = frame.get(Metric.EVENTS, 0.0)
    if p_ac_w is not None and any(f.kind == "curtailment" for f in faults):
        frame[Metric.ACTIVE_POWER_LIMIT_PCT] = (
            100.0  # a plant controller: the limit always reported
        )
    for fault in faults:
        m = fault.mask(index)
        if not m.any():
            continue
        if fault.kind == "soiling_ramp":
            days = (index - pd.Timestamp(fault.start)).total_seconds() / 86400.0
            loss = np.where(m, np.clip(days * fault.loss_per_day, 0.0, fault.max_loss), 0.0)
            for column in (Metric.AC_POWER, Metric.AC_CURRENT, Metric.DC_POWER, Metric.DC_CURRENT):
                frame[column] = frame[column] * (1.0 - loss)
        elif fault.kind == "string_disconnect":
            share = 1.0 / mppts
            for column in (Metric.AC_POWER, Metric.AC_CURRENT, Metric.DC_POWER, Metric.DC_CURRENT):
                frame.loc[m, column] = frame.loc[m, column] * (1.0 - share)
            frame.loc[m, "lost_mppt"] = fault.mppt
        elif fault.kind in ("inverter_trip", "grid_outage"):
            for column in ZEROED_BY_TRIP:
                if column in frame:
                    frame.loc[m, column] = 0.0
            frame.loc[m, Metric.OPERATING_STATE] = float(OperatingState.FAULT)
            bits = fault.event_bits or (
                int(InverterEvent.GRID_DISCONNECT) if fault.kind == "grid_outage" else 0
            )
            frame.loc[m, Metric.EVENTS] = frame.loc[m, Metric.EVENTS].astype(int) | bits
        elif fault.kind == "efficiency_drop":  # DC unchanged, less of it converted
            for column in (Metric.AC_POWER, Metric.AC_CURRENT):
                frame.loc[m, column] = frame.loc[m, column] * (1.0 - fault.loss)
        elif fault.kind == "string_degradation":  # one string yields (1 - loss) of its share
            for column in (Metric.AC_POWER, Metric.AC_CURRENT, Metric.DC_POWER, Metric.DC_CURRENT):
                frame.loc[m, column] = frame.loc[m, column] * (1.0 - fault.loss / mppts)
            column = f"string_loss_mppt{fault.mppt}"
            frame[column] = frame.get(column, 0.0)
            frame.loc[m, column] = fault.loss
        elif fault.kind == "hot_spot":
            frame.loc[m, f"hot_spot_mppt{fault.mppt}"] = fault.delta_c
        elif fault.kind == "frozen_sensor" and fault.metric in frame:
            first = int(np.argmax(m))
            frame.loc[m, fault.metric] = frame[fault.metric].iloc[first]
        elif fault.kind == "curtailment" and p_ac_w is not None:
            curtail(frame, fault, m, p_ac_w)
    return frame


def apply_to_series_device(frame: pd.DataFrame, faults: list[Fault]) -> pd.DataFrame:
    """A weather station's or meter's frame with frozen sensors applied and silent stretches removed."""
    frame = frame.copy()
    index = pd.DatetimeIndex(frame.index)
    keep = np.ones(len(frame), bool)
    for fault in faults:
        m = fault.mask(index)
        if not m.any():
            continue
        if fault.kind == "frozen_sensor" and fault.metric in frame:
            frame.loc[m, fault.metric] = frame[fault.metric].iloc[int(np.argmax(m))]
        elif fault.kind == "device_silent":
            keep &= ~m
    return frame[keep]


def grid_outage_mask(faults: list[Fault], index: pd.DatetimeIndex) -> np.ndarray:
    out = np.zeros(len(index), bool)
    for fault in faults:
        if fault.kind == "grid_outage":
            out |= fault.mask(index)
    return out


def inverter_with_faults(
    inverter: Device, wx: pd.DataFrame, seed: int, site_id: str, faults: list[Fault], mppts: int
) -> pd.DataFrame:
    """An inverter's electrical frame from the site weather (`physics.inverter_output`) with its faults
    applied (`apply_to_inverter`, which needs its AC rating for curtailment)."""
    frame = inverter_output(inverter, wx, seed, site_id)
    return apply_to_inverter(frame, faults, mppts, p_ac_w=inverter.p_ac_kw * 1000.0)
