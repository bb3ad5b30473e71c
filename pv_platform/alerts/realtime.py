"""Real-time rules on the collector's readings: grid outage, equipment faults, over-temperature, communication
loss, module hot spots and string faults. Pure state machine: feed readings, ask `evaluate(now)`.

Every time decision is made on the platform clock that stamps the readings (`now` is passed in; holds are
measured between reading stamps), so an accelerated run or a replay behaves as real time. Readings older
than their device's silence limit at the time they arrive (history, replays, late batches) are not judged.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from pv_platform.alerts.limits import Thresholds, realtime_thresholds
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.plant import Plant
from pv_platform.readings import Reading
from pv_platform.vocabulary import InverterEvent, Metric, OperatingState, event_names

# a busy machine can hold a process up this long [s of wall time]; nothing at real time (< 60 s), but an
# accelerated run multiplies it (60x: 1 s of a starved collector is a "silent" minute of every device)
STALL_WALL_S = 2.0
# a device never read since the rules started gets this long [s of wall time] more: processes started
# side by side (the collector, a simulator, a gateway) come up a few wall seconds apart, which a 30x run
# turns into minutes of "silence" (nothing at real time: 10 s < the 60-s limit)
STARTUP_WALL_S = 10.0


def stale_limit_s(
    t: Thresholds, device, speed: float = 1.0, cadence_s: float | None = None
) -> float:
    """Silence after which a device counts as lost [s of platform time]: k x its cadence when that is
    longer than the site's limit (a device polled every 5 min is not lost after 1 min), and in an
    accelerated run at least STALL_WALL_S of wall time.

    speed : platform seconds per wall second (a poll interval is wall time: in a 60x run a device polled
        every 0.5 s reports every 30 platform seconds)
    cadence_s : the device's observed time between readings [s], when known (push devices have no poll
        interval)
    """
    poll_s = device.config.get("poll_interval_s") if isinstance(device.config, dict) else None
    interval_s = max(float(poll_s or 0.0) * speed, cadence_s or 0.0)
    return max(t.stale_after_s, t.stale_polls * interval_s, STALL_WALL_S * speed)


def communication_status(
    t: Thresholds, device, now: datetime, *seen: datetime | None, speed: float = 1.0
) -> tuple[datetime | None, bool]:
    """The newest of the given reading times (stored, live, ...) and whether the device is within its
    communication limit at `now` (the dashboards' and the API's view of the `communication_lost` rule)."""
    last = max((s for s in seen if s), default=None)
    return last, last is not None and (now - last).total_seconds() <= stale_limit_s(
        t, device, speed
    )


@dataclass
class _Series:
    value: float
    ts: datetime
    since: datetime  # when the current condition (e.g. FAULT) started


@dataclass
class RealtimeRules:
    """Latest values per entity and how long conditions have held; `evaluate` returns the candidates that
    hold now (anything not returned is clear)."""

    plant: Plant
    fleet: dict[str, float] = field(default_factory=dict)  # fleet-wide overrides (settings)
    speed: float = 1.0  # platform seconds per wall second (accelerated runs: poll intervals scale)
    latest: dict[tuple[str, str, str], _Series] = field(default_factory=dict)
    last_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)
    started: datetime | None = None
    poor_since: dict[tuple[str, str], datetime] = field(default_factory=dict)
    gaps: dict[tuple[str, str], deque] = field(default_factory=dict)  # recent [s] between readings
    back_at: dict[tuple[str, str], datetime] = field(default_factory=dict)  # when back from silence
    ignored_old: int = 0  # readings too old to judge (history, replays, late batches)

    def __post_init__(self) -> None:
        self.thresholds = {s.id: realtime_thresholds(s, self.fleet) for s in self.plant.sites}
        self.devices = {(s.id, d.id): d for s in self.plant.sites for d in s.devices}

    def limit_s(self, site_id: str, device_id: str) -> float:
        """This device's silence limit now [s]: configured poll interval or observed cadence."""
        gaps = self.gaps.get((site_id, device_id))
        cadence = statistics.median(gaps) if gaps else None
        t = self.thresholds.get(site_id) or Thresholds()
        device = self.devices.get((site_id, device_id))
        return stale_limit_s(t, device, self.speed, cadence) if device else t.stale_after_s

    def feed(self, readings: list[Reading], now: datetime | None = None) -> None:
        """Take a batch of readings; `now` (default: the platform clock) decides which are too old."""
        if now is None:
            from pv_platform import clock

            now = clock.now()
        if self.started is None:
            self.started = now
        for r in readings:
            site_id, device_id, metric = r.entity.split(".")
            if (now - r.ts).total_seconds() > self.limit_s(site_id, device_id):
                self.ignored_old += 1  # history or a late batch: real-time rules judge the present
                continue
            key = (site_id, device_id, metric)
            last = self.last_seen.get((site_id, device_id))
            if last is not None and (r.ts - last).total_seconds() > self.limit_s(
                site_id, device_id
            ):
                self.back_at[(site_id, device_id)] = r.ts  # its first answer after a silence
            if last is not None and r.ts > last:
                self.gaps.setdefault((site_id, device_id), deque(maxlen=9)).append(
                    (r.ts - last).total_seconds()
                )
            prev = self.latest.get(key)
            same = prev is not None and self._same_condition(site_id, metric, prev.value, r.value)
            since = prev.since if same else r.ts
            self.latest[key] = _Series(r.value, r.ts, since)
            self.last_seen[(site_id, device_id)] = max(r.ts, last or r.ts)

    def _same_condition(self, site_id: str, metric: str, old: float, new: float) -> bool:
        t = self.thresholds.get(site_id) or Thresholds()
        if metric == Metric.OPERATING_STATE:
            return (old == OperatingState.FAULT) == (new == OperatingState.FAULT)
        if metric == Metric.GRID_FREQUENCY:
            return self._out(old, t.frequency_hz) == self._out(new, t.frequency_hz)
        if metric == Metric.GRID_VOLTAGE:
            return self._out(old, t.voltage_v) == self._out(new, t.voltage_v)
        return True

    @staticmethod
    def _out(value: float, band: tuple[float, float]) -> bool:
        return not band[0] <= value <= band[1]

    def _value(self, site_id: str, device_id: str, metric: str) -> _Series | None:
        return self.latest.get((site_id, device_id, metric))

    def evaluate(self, now: datetime) -> list[AlertCandidate]:
        if self.started is None:
            self.started = now  # a device that never answers is silent since the rules started
        out: list[AlertCandidate] = []
        for site in self.plant.sites:
            out += self._communication(site, now)
            out += self._equipment(site, now)
            out += self._grid(site, now)
            out += self._strings(site, now)
        return out

    def _poa(self, site) -> float | None:
        values = [
            s.value
            for (sid, _, m), s in self.latest.items()
            if sid == site.id and m == Metric.POA_IRRADIANCE
        ]
        return statistics.fmean(values) if values else None

    def _communication(self, site, now: datetime) -> list[AlertCandidate]:
        out = []
        for device in site.devices:
            seen = self.last_seen.get((site.id, device.id))
            limit_s = self.limit_s(site.id, device.id)
            if seen is None:  # never read: silent since the rules started, after a start-up grace
                seen, limit_s = self.started, max(limit_s, STARTUP_WALL_S * self.speed)
            silent_s = (now - seen).total_seconds()
            if silent_s >= limit_s:
                out.append(
                    AlertCandidate(
                        "communication_lost", Severity.HIGH, site.id, device.id,
                        f"no reading from {device.id} for {silent_s:.0f} s (information unavailable, not downtime)",
                        now, context={"last_reading": seen.isoformat() if seen else None},
                    )
                )  # fmt: skip
        return out

    def _equipment(self, site, now: datetime) -> list[AlertCandidate]:
        out, t = [], self.thresholds[site.id]
        for inv in site.inverters:
            state = self._value(site.id, inv.id, Metric.OPERATING_STATE)
            if (
                state is not None
                and state.value == OperatingState.FAULT
                and (state.ts - state.since).total_seconds() >= t.fault_hold_s
            ):
                events = self._value(site.id, inv.id, Metric.EVENTS)
                names = event_names(events.value if events is not None else 0)
                if (
                    "GRID_DISCONNECT" not in names or len(names) > 1
                ):  # a grid trip is the grid rule's
                    out.append(
                        AlertCandidate(
                            "equipment_fault", Severity.CRITICAL, site.id, inv.id,
                            f"{inv.id} in FAULT since {state.since:%H:%M:%S} UTC: {', '.join(names) or 'no event bits'}",
                            now, context={"events": names, "since": state.since.isoformat()},
                        )
                    )  # fmt: skip
            temp = self._value(site.id, inv.id, Metric.CABINET_TEMPERATURE)
            if temp is not None and temp.value > t.over_temperature_c:
                out.append(
                    AlertCandidate(
                        "over_temperature", Severity.HIGH, site.id, inv.id,
                        f"{inv.id} cabinet at {temp.value:.1f} °C (limit {t.over_temperature_c:.0f} °C)", now,
                    )
                )  # fmt: skip
            efficiency = self._efficiency(site, inv, now)
            if efficiency is not None:
                out.append(
                    AlertCandidate(
                        "low_efficiency", Severity.MEDIUM, site.id, inv.id,
                        f"{inv.id} converts {efficiency:.1%} of its DC power (limit {t.min_efficiency:.0%})"
                        f" since {self.poor_since[(site.id, inv.id)]:%H:%M:%S} UTC", now,
                        context={"efficiency": efficiency},
                    )
                )  # fmt: skip
        return out

    def _efficiency(self, site, inv, now: datetime) -> float | None:
        """AC/DC when it has stayed below the limit for the hold time; None otherwise. Judged only above
        10 % DC load and below 98 % AC rating (clipping lowers the ratio on purpose)."""
        t, key = self.thresholds[site.id], (site.id, inv.id)
        ac, dc = (
            self._value(site.id, inv.id, Metric.AC_POWER),
            self._value(site.id, inv.id, Metric.DC_POWER),
        )
        judged = (
            ac is not None
            and dc is not None
            and abs((ac.ts - dc.ts).total_seconds()) < t.stale_after_s
            and dc.value > 0.1 * inv.p_dc_kw * 1000.0
            and ac.value < 0.98 * inv.p_ac_kw * 1000.0
        )
        if not judged:
            return None  # keep (or lack) the running condition: night and clipping are not evidence
        efficiency = ac.value / dc.value
        if efficiency >= t.min_efficiency:
            self.poor_since.pop(key, None)
            return None
        since = self.poor_since.setdefault(key, max(ac.ts, dc.ts))
        return efficiency if (now - since).total_seconds() >= t.efficiency_hold_s else None

    def _grid(self, site, now: datetime) -> list[AlertCandidate]:
        t = self.thresholds[site.id]
        for device in (d for d in site.devices if d.kind == "meter"):
            for metric, band, unit in (
                (Metric.GRID_VOLTAGE, t.voltage_v, "V"),
                (Metric.GRID_FREQUENCY, t.frequency_hz, "Hz"),
            ):
                s = self._value(site.id, device.id, metric)
                if (
                    s is not None
                    and self._out(s.value, band)
                    and (s.ts - s.since).total_seconds() >= t.grid_hold_s
                ):
                    return [
                        AlertCandidate(
                            "grid_outage", Severity.CRITICAL, site.id, device.id,
                            f"grid {metric.split('_')[1]} {s.value:.2f} {unit} outside {band[0]}-{band[1]} since {s.since:%H:%M:%S} UTC",
                            now, context={"metric": metric, "value": s.value},
                        )
                    ]  # fmt: skip
        if any(d.kind == "meter" for d in site.devices):
            return []  # the meter is the authority on the grid; inverter trips are the fault rule's
        poa = self._poa(site)
        powers = [self._value(site.id, inv.id, Metric.AC_POWER) for inv in site.inverters]
        if (
            poa is not None
            and poa > t.sun_gate_poa_wm2
            and powers
            and all(p is not None and p.value <= 0 for p in powers)
        ):
            events = [self._value(site.id, inv.id, Metric.EVENTS) for inv in site.inverters]
            if all(
                e is not None and int(e.value) & InverterEvent.GRID_DISCONNECT for e in events
            ):  # GRID_DISCONNECT on every inverter
                return [
                    AlertCandidate(
                        "grid_outage", Severity.CRITICAL, site.id, "*",
                        f"every inverter disconnected from the grid at {poa:.0f} W/m²", now,
                    )
                ]  # fmt: skip
        return []

    def _settled(self, site_id: str, device_id: str, ts: datetime, now: datetime) -> bool:
        """Is a device's reading stamped `ts` fit to compare with its peers at `now`: fresh (within
        the device's silence limit: a silent device's last values are history) and not among its first
        answers after a silence (for one silence limit: a gateway may first hand over the register
        image it held through the silence)?"""
        limit_s = self.limit_s(site_id, device_id)
        back = self.back_at.get((site_id, device_id))
        return (now - ts).total_seconds() <= limit_s and (
            back is None or (now - back).total_seconds() > limit_s
        )

    def _strings(self, site, now: datetime) -> list[AlertCandidate]:
        """`string_fault` and `hot_spot`: each string against the median string of the site's producing
        inverters, on settled readings only (`_settled`)."""
        out, t = [], self.thresholds[site.id]
        poa = self._poa(site)
        if poa is None or poa < t.sun_gate_poa_wm2:
            return out
        currents, temps = {}, {}
        producing = {
            inv.id for inv in site.inverters
            if (p := self._value(site.id, inv.id, Metric.AC_POWER)) is not None and p.value > 0
            and ((st := self._value(site.id, inv.id, Metric.OPERATING_STATE)) is None or st.value != OperatingState.FAULT)
        }  # fmt: skip  # a tripped inverter's strings are the fault rule's, not string faults
        for (sid, device_id, metric), s in self.latest.items():
            if sid != site.id or not metric.startswith("mppt") or device_id not in producing:
                continue
            if not self._settled(site.id, device_id, s.ts, now):
                continue
            string, _, what = metric.partition("_")
            if what == Metric.DC_CURRENT:
                currents[(device_id, string)] = s.value
            elif what == "temperature":
                temps[(device_id, string)] = s.value
        if len(currents) >= 3:
            median = statistics.median(currents.values())
            for (device_id, string), current in currents.items():
                if median > 0 and current < t.string_current_fraction * median:
                    out.append(
                        AlertCandidate(
                            "string_fault", Severity.HIGH, site.id, device_id,
                            f"{device_id} {string}: {current:.1f} A against a median of {median:.1f} A at {poa:.0f} W/m²",
                            now, key=string, context={"current_a": current, "median_a": median},
                        )
                    )  # fmt: skip
        if temps:
            median = statistics.median(temps.values()) if len(temps) >= 3 else None
            for (device_id, string), temp in temps.items():
                above = temp - median if median is not None else 0.0
                if above > t.hot_spot_delta_c or temp > t.module_over_temperature_c:
                    out.append(
                        AlertCandidate(
                            "hot_spot", Severity.MEDIUM, site.id, device_id,
                            f"{device_id} {string} modules at {temp:.0f} °C, {above:.0f} °C above the median string"
                            f" (limits: +{t.hot_spot_delta_c:.0f} °C over the median, {t.module_over_temperature_c:.0f} °C)",
                            now, key=string, context={"temperature_c": temp, "median_c": median},
                        )
                    )  # fmt: skip
        return out
