"""Simulated devices: SunSpec inverters served over Modbus TCP, weather stations publishing over MQTT."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

import aiomqtt
import numpy as np
import pandas as pd
from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from integrations.simulator.physics import energy_wh, epoch_s, weather
from integrations.simulator.registers import MPPT_SCALE, MPPTS, POINT_OF, SCALE
from integrations.simulator.scenarios import (
    FAULT_COLUMNS,
    Fault,
    Scenario,
    apply_to_series_device,
    controls_points,
    grid_outage_mask,
    inverter_with_faults,
)
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.models import (
    COMMON,
    CONTROLS,
    INVERTER_THREE_PHASE,
    INVERTER_THREE_PHASE_FLOAT,
    MPPT,
    NAMEPLATE,
    PERCENT_POINTS,
    device_image,
)
from pv_platform import clock
from pv_platform.bus import BrokerAddress
from pv_platform.coordinator import wait_or_stop
from pv_platform.plant import Device, Site
from pv_platform.vocabulary import Metric

log = logging.getLogger(__name__)


def initial_energy_wh(device: Device) -> float:
    """A plausible lifetime counter to start from: about three years at 1100 kWh/kWp."""
    return round(device.p_dc_kw * 1100.0 * 3 * 1000.0)


def mppt_columns(frame: pd.DataFrame, module_temperature_c, mppts: int = MPPTS) -> pd.DataFrame:
    """Per string input (model 160): current, voltage, power and module temperature, after faults
    (a disconnected string reads 0, a degraded one its reduced share, a hot spot heats its modules).
    The strings always add up to the inverter's DC current and power."""
    lost = frame["lost_mppt"] if "lost_mppt" in frame else pd.Series(np.nan, index=frame.index)
    weights = []
    for i in range(1, mppts + 1):
        loss = frame[f"string_loss_mppt{i}"].fillna(0.0) if f"string_loss_mppt{i}" in frame else 0.0
        weights.append(np.where((lost == i).to_numpy(), 0.0, 1.0 - np.asarray(loss, dtype=float)))
    total = np.maximum(np.sum(weights, axis=0), 1e-9)
    out = pd.DataFrame(index=frame.index)
    for i in range(1, mppts + 1):
        share, dead = weights[i - 1] / total, (lost == i).to_numpy()
        out[f"mppt{i}_dc_current"] = frame[Metric.DC_CURRENT].to_numpy() * share
        out[f"mppt{i}_dc_voltage"] = np.where(dead, 0.0, frame[Metric.DC_VOLTAGE])
        out[f"mppt{i}_dc_power"] = frame[Metric.DC_POWER].to_numpy() * share
        hot = frame[f"hot_spot_mppt{i}"].fillna(0.0) if f"hot_spot_mppt{i}" in frame else 0.0
        out[f"mppt{i}_temperature"] = np.asarray(module_temperature_c, dtype=float) + hot
    return out


class SimulatedInverter:
    """One inverter's state, advanced in time, and its SunSpec register image: common (1), nameplate
    (120), inverter (103 integer + scale factors, or 113 float) and MPPT (160) models."""

    def __init__(
        self,
        site: Site,
        device: Device,
        seed: int,
        energy_start_wh: float | None = None,
        model_id: int = 103,
        faults: list[Fault] | None = None,
    ) -> None:
        if model_id not in (103, 113):
            raise ValueError("the simulator serves inverter model 103 or 113")
        self.site, self.device, self.seed, self.model_id = site, device, seed, model_id
        self.faults = faults or []
        self.config = SunSpecModbusConfig.model_validate(device.config)
        self.energy_wh = (
            energy_start_wh if energy_start_wh is not None else initial_energy_wh(device)
        )
        self.mppt_wh = [self.energy_wh / MPPTS] * MPPTS
        self.last_ts: pd.Timestamp | None = None
        self.last_power_w = 0.0
        self.last_dc_w = 0.0
        self.served: dict[str, float] = {}
        self.registers: list[int] = []
        self.frozen = False
        self._rng = np.random.default_rng(seed)

    def update(self, now: datetime | None = None, wx: pd.DataFrame | None = None) -> None:
        """Advance to `now`: integrate energy, recompute the register image and the served values."""
        if self.frozen and self.registers:
            return
        ts = pd.Timestamp(now or clock.now())
        wx = wx if wx is not None else weather(self.site, pd.DatetimeIndex([ts]), self.seed)
        frame = inverter_with_faults(self.device, wx, self.seed, self.site.id, self.faults, MPPTS)
        frame = frame.join(mppt_columns(frame, wx[Metric.MODULE_TEMPERATURE].to_numpy()))
        state = {
            k: float(v) for k, v in frame.iloc[0].items() if isinstance(v, int | float | np.number)
        }
        if self.last_ts is not None and ts > self.last_ts:
            hours = (ts - self.last_ts).total_seconds() / 3600
            self.energy_wh += 0.5 * (state[Metric.AC_POWER] + self.last_power_w) * hours
            for i in range(MPPTS):
                self.mppt_wh[i] += 0.5 * (state[Metric.DC_POWER] + self.last_dc_w) / MPPTS * hours
        self.last_ts, self.last_power_w, self.last_dc_w = (
            ts,
            state[Metric.AC_POWER],
            state[Metric.DC_POWER],
        )
        state[Metric.AC_ENERGY] = self.energy_wh
        inverter_model, raw, served = (
            self._integer_points(state) if self.model_id == 103 else self._float_points(state)
        )
        raw["Evt1"] = int(state.get(Metric.EVENTS, 0.0) or 0)
        served[Metric.EVENTS] = float(raw["Evt1"])
        mppt, mppt_served = self._mppt_points(state)
        served.update(mppt_served)
        common = {
            "Mn": "PV Platform",
            "Md": f"SimInverter-{self.model_id}",
            "Vr": "1.0",
            "SN": f"SIM-{self.site.id}-{self.device.id}",
            "DA": 1,
        }
        nameplate = {
            "DERTyp": 4,
            "WRtg": round(self.device.p_ac_kw * 100),
            "WRtg_SF": 1,
            "VARtg": round(self.device.p_ac_kw * 100),
            "VARtg_SF": 1,
        }
        models = [(COMMON, common), (NAMEPLATE, nameplate), (inverter_model, raw), (MPPT, mppt)]
        if Metric.ACTIVE_POWER_LIMIT_PCT in state:  # a plant controller sets the limit: model 123
            models.insert(2, (CONTROLS, controls_points(state[Metric.ACTIVE_POWER_LIMIT_PCT])))
            served[Metric.ACTIVE_POWER_LIMIT_PCT] = round(state[Metric.ACTIVE_POWER_LIMIT_PCT], 1)
        self.registers = device_image(models)
        self.served = served

    @staticmethod
    def _integer_points(state: dict[str, float]):
        raw: dict = {}
        served: dict[str, float] = {}
        for metric, point in POINT_OF.items():
            if metric not in state:
                continue
            sf_point, exp = SCALE.get(point, (None, 0))
            percent = 100.0 if point in PERCENT_POINTS else 1.0  # SunSpec "Pct": 0.99 is 99.0
            raw[point] = round(state[metric] * percent / 10.0**exp)
            served[metric] = raw[point] * 10.0**exp / percent
            if sf_point:
                raw[sf_point] = exp
        raw.update(
            {"AphA": raw["A"] // 3, "AphB": raw["A"] // 3, "AphC": raw["A"] - 2 * (raw["A"] // 3)}
        )
        return INVERTER_THREE_PHASE, raw, served

    @staticmethod
    def _float_points(state: dict[str, float]):
        raw: dict = {}
        served: dict[str, float] = {}
        for metric, point in POINT_OF.items():
            if metric not in state:
                continue
            percent = 100.0 if point in PERCENT_POINTS else 1.0  # SunSpec "Pct": 0.99 is 99.0
            value = float(np.float32(state[metric] * percent))  # what a float32 register holds
            if point == "St":
                value = float(int(state[metric]))
            raw[point] = value
            served[metric] = value / percent
        return INVERTER_THREE_PHASE_FLOAT, raw, served

    def _mppt_points(self, state: dict[str, float]) -> tuple[dict, dict[str, float]]:
        blocks, served = [], {}
        seconds = int((self.last_ts or pd.Timestamp(0, tz="UTC")).timestamp()) & 0xFFFFFFFF
        for i in range(1, MPPTS + 1):
            dca = round(state[f"mppt{i}_dc_current"] / 10.0 ** MPPT_SCALE["DCA_SF"])
            dcv = round(state[f"mppt{i}_dc_voltage"] / 10.0 ** MPPT_SCALE["DCV_SF"])
            dcw = round(state[f"mppt{i}_dc_power"] / 10.0 ** MPPT_SCALE["DCW_SF"])
            tmp = round(state[f"mppt{i}_temperature"])
            blocks.append(
                {"ID": i, "IDStr": f"MPPT {i}", "DCA": dca, "DCV": dcv, "DCW": dcw,
                 "DCWH": round(self.mppt_wh[i - 1]) or 1, "Tms": seconds, "Tmp": tmp,
                 "DCSt": 4 if dcw > 0 else 2, "DCEvt": 0}
            )  # fmt: skip
            served[f"mppt{i}_dc_current"] = dca * 10.0 ** MPPT_SCALE["DCA_SF"]
            served[f"mppt{i}_dc_voltage"] = dcv * 10.0 ** MPPT_SCALE["DCV_SF"]
            served[f"mppt{i}_dc_power"] = dcw * 10.0 ** MPPT_SCALE["DCW_SF"]
            served[f"mppt{i}_temperature"] = float(tmp)
        return {**MPPT_SCALE, "Evt": 0, "N": MPPTS, "TmsPer": 60, "repeats": blocks}, served

    async def _action(
        self, fc: int, start: int, address: int, count: int, regs: list[int], values
    ) -> None:
        """pymodbus calls this on each request: copy the current image into the served block."""
        active = [f for f in self.faults if f.active(clock.now())]
        if any(f.kind == "device_silent" for f in active):
            return ExcCodes.GATEWAY_NO_RESPONSE  # a silent device: the gateway gets no answer
        slow = [f.delay_s for f in active if f.kind == "modbus_slow"]
        if slow:
            await asyncio.sleep(max(slow))  # answers, but after the client gave up
        if any(f.kind == "modbus_garbage" for f in active):
            regs[:count] = self._rng.integers(0, 0x10000, count).tolist()  # a confused gateway
            return None
        if values is None and self.registers:
            regs[: len(self.registers)] = self.registers
        return None

    def modbus_device(self) -> SimDevice:
        self.update()
        block = self.registers + [0] * 8
        return SimDevice(
            id=self.config.unit_id,
            simdata=[SimData(40000, values=block, datatype=DataType.REGISTERS)],
            action=self._action,
        )


def json_payload(values: dict[str, float], fields: dict[str, str], ts: datetime) -> dict:
    """A device's JSON message: each configured metric's value at its field path (a.b.c), and `ts`."""
    payload: dict = {"ts": ts.isoformat()}
    for metric, path in fields.items():
        if metric not in values:
            continue
        node = payload
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = round(float(values[metric]), 3)
    return payload


AUX_LOAD_FRACTION = (
    0.003  # plant auxiliaries (trackers, monitoring, transformer no-load) of the AC rating
)


def grid_meter_frame(
    site: Site, inverter_frames: dict[str, pd.DataFrame], start_export_wh: float = 5e7
) -> pd.DataFrame:
    """The grid meter at the point of connection: plant AC power less auxiliaries, export and import
    counters [Wh], grid frequency and voltage, power factor."""
    index = next(iter(inverter_frames.values())).index
    total_w = sum(f[Metric.AC_POWER] for f in inverter_frames.values())
    aux_w = AUX_LOAD_FRACTION * sum(d.p_ac_kw for d in site.inverters) * 1000.0
    net_w = total_w - aux_w
    t = epoch_s(index)
    frame = pd.DataFrame(index=index)
    frame[Metric.AC_POWER] = net_w
    frame[Metric.EXPORT_ENERGY] = energy_wh(net_w.clip(lower=0.0), start_export_wh)
    frame[Metric.IMPORT_ENERGY] = energy_wh((-net_w).clip(lower=0.0), start_export_wh / 100.0)
    frame[Metric.GRID_FREQUENCY] = (
        50.0 + 0.02 * np.sin(2 * np.pi * t / 97.0) + 0.01 * np.sin(2 * np.pi * t / 13.0)
    )
    frame[Metric.GRID_VOLTAGE] = 230.0 + 2.0 * np.sin(2 * np.pi * t / 611.0)
    frame[Metric.POWER_FACTOR] = np.where(net_w > 0, 0.99, 0.95)
    return frame


class SimulatedMeter:
    """The grid meter, live: integrates the simulated inverters' power into its counters."""

    def __init__(
        self,
        site: Site,
        device: Device,
        inverters: list[SimulatedInverter],
        export_wh: float = 5e7,
        import_wh: float = 5e5,
    ) -> None:
        self.site, self.device, self.inverters = site, device, inverters
        self.export_wh, self.import_wh = export_wh, import_wh
        self.last_ts: pd.Timestamp | None = None
        self.last_net_w = 0.0

    def values(self, ts: datetime) -> dict[str, float]:
        now = pd.Timestamp(ts)
        aux_w = AUX_LOAD_FRACTION * sum(d.p_ac_kw for d in self.site.inverters) * 1000.0
        net_w = sum(inv.last_power_w for inv in self.inverters) - aux_w
        if self.last_ts is not None and now > self.last_ts:
            hours = (now - self.last_ts).total_seconds() / 3600.0
            mean_w = 0.5 * (net_w + self.last_net_w)
            self.export_wh += max(mean_w, 0.0) * hours
            self.import_wh += max(-mean_w, 0.0) * hours
        self.last_ts, self.last_net_w = now, net_w
        t = epoch_s(pd.DatetimeIndex([now]))[0]
        return {
            Metric.AC_POWER: net_w,
            Metric.EXPORT_ENERGY: self.export_wh,
            Metric.IMPORT_ENERGY: self.import_wh,
            Metric.GRID_FREQUENCY: 50.0
            + 0.02 * np.sin(2 * np.pi * t / 97.0)
            + 0.01 * np.sin(2 * np.pi * t / 13.0),
            Metric.GRID_VOLTAGE: 230.0 + 2.0 * np.sin(2 * np.pi * t / 611.0),
            Metric.POWER_FACTOR: 0.99 if net_w > 0 else 0.95,
        }


async def publish_json(
    label: str,
    topic: str,
    make_payload,
    broker: BrokerAddress,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Publish `make_payload(now)` on a topic every interval until stopped; reconnect when the broker drops."""
    while not stop.is_set():
        try:
            async with aiomqtt.Client(**broker.client_kwargs()) as client:
                while not stop.is_set():
                    payload = make_payload(clock.now())
                    if payload is not None:  # None: the device is silent now
                        body = (
                            payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                        )
                        await client.publish(topic, body, qos=1)
                    await wait_or_stop(stop, interval_s)
        except aiomqtt.MqttError as exc:
            log.warning("%s: broker unavailable (%s); retrying", label, exc)
            await wait_or_stop(stop, 2.0)


def backfill_frames(
    site: Site,
    seed: int,
    start: datetime,
    end: datetime,
    step_s: int = 60,
    scenario: Scenario | None = None,
) -> dict[str, pd.DataFrame]:
    """History for every device of a site on a regular grid: device id -> metric columns."""
    times = pd.date_range(
        pd.Timestamp(start).ceil(f"{step_s}s"),
        pd.Timestamp(end),
        freq=f"{step_s}s",
        inclusive="left",
    )
    if len(times) == 0:
        return {}
    wx = weather(site, times, seed)
    frames: dict[str, pd.DataFrame] = {}
    for device in site.devices:
        faults = scenario.for_device(site.id, device.id) if scenario else []
        if device.kind == "inverter":
            out = inverter_with_faults(device, wx, seed, site.id, faults, MPPTS)
            out[Metric.AC_ENERGY] = energy_wh(out[Metric.AC_POWER], initial_energy_wh(device))
            out = out.join(mppt_columns(out, wx[Metric.MODULE_TEMPERATURE].to_numpy()))
            out = out.drop(columns=[c for c in out.columns if c.startswith(FAULT_COLUMNS)])
            frames[device.id] = apply_to_series_device(
                out, [f for f in faults if f.kind == "device_silent"]
            )
        elif device.kind == "weather_station":
            fields = [m for m in device.config.get("fields", {}) if m in wx.columns]
            frames[device.id] = apply_to_series_device(wx[fields], faults)
    inverter_frames = {d.id: frames[d.id] for d in site.inverters if d.id in frames}
    for device in site.devices:
        if device.kind == "meter" and inverter_frames:
            meter = grid_meter_frame(site, inverter_frames)
            site_faults = scenario.for_device(site.id, None) if scenario else []
            outage = grid_outage_mask(site_faults, pd.DatetimeIndex(meter.index))
            meter.loc[outage, [Metric.GRID_VOLTAGE, Metric.GRID_FREQUENCY, Metric.POWER_FACTOR]] = (
                0.0
            )
            meter = apply_to_series_device(
                meter, scenario.for_device(site.id, device.id) if scenario else []
            )
            frames[device.id] = meter[
                [m for m in device.config.get("fields", {}) if m in meter.columns]
            ]
    return frames
