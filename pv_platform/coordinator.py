"""What every integration builds on (as Home Assistant's `helpers.update_coordinator` and
`helpers.entity`): entity descriptions, device identity, and the coordinators — a common base, the
polling one and the push one. How integrations are found and loaded is `pv_platform.loader`."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pv_platform import clock
from pv_platform.readings import Reading, entity_key
from pv_platform.vocabulary import DeviceClass, StateClass, Unit

log = logging.getLogger(__name__)
QUARANTINE_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityDescription:
    """What one entity is: its metric name, unit and classes, and where its raw value comes from
    (keyword-only, as Home Assistant's `SensorEntityDescription`)."""

    key: str  # a `Metric`, or an `mppt_metric(...)` name
    unit: Unit
    device_class: DeviceClass
    state_class: StateClass = StateClass.MEASUREMENT
    source: str = ""  # protocol-specific: SunSpec point name, JSON field path, ...


async def wait_or_stop(stop: asyncio.Event, timeout_s: float) -> bool:
    """Sleep up to timeout_s, waking early when `stop` is set; True when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, timeout_s))
    except TimeoutError:
        return False
    return True


class UpdateFailed(Exception):
    """A coordinator could not get data from its device this time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """What a device says it is (Home Assistant's `DeviceInfo`), read from the device where it can
    tell (SunSpec common model: Mn, Md, SN, Vr); None where it cannot."""

    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    sw_version: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The known fields only, e.g. for a retained message or an HA discovery `device` block."""
        return {k: v for k in self.__slots__ if (v := getattr(self, k))}


class Coordinator:
    """One per configured device: its identity, where its readings and rejected inputs go, and its
    availability. Devices are either polled (`PollingCoordinator`) or push (`PushCoordinator`)."""

    def __init__(
        self, site_id: str, device_id: str, descriptions: tuple[EntityDescription, ...]
    ) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self.descriptions = {d.key: d for d in descriptions}
        self.device_info: DeviceInfo | None = None  # set once the device told who it is
        self.available = False
        self.last_success: datetime | None = None
        self.last_error: str | None = None
        # counters for the collector's /metrics: failed updates, inputs quarantined
        self.failures_total = self.quarantined_total = 0
        self.consecutive_failures = 0
        self._sink: Callable[[list[Reading]], None] | None = None
        self._quarantine: Callable[[str, bytes, str], None] | None = None
        self._quarantine_logged_at, self._quarantine_unlogged = -math.inf, 0
        self.earliest: datetime | None = None  # older readings are refused (site commissioning)

    # -- wiring -----------------------------------------------------------------------------------
    def attach(
        self,
        sink: Callable[[list[Reading]], None],
        quarantine: Callable[[str, bytes, str], None] | None = None,
    ) -> None:
        """Where readings go (the collector's batch handler) and where rejected input goes."""
        self._sink, self._quarantine = sink, quarantine

    def quarantine(self, source: str, payload: bytes, reason: str) -> None:
        """Hand a rejected input to the collector's quarantine, with the reason (logged at most once
        a minute per device, with how many were not logged)."""
        self.quarantined_total += 1
        now = time.monotonic()
        if now - self._quarantine_logged_at >= QUARANTINE_LOG_EVERY_S:
            more = (
                f" (and {self._quarantine_unlogged} more since the last)"
                if self._quarantine_unlogged
                else ""
            )
            log.warning(
                "%s.%s rejected input from %s: %s%s",
                self.site_id,
                self.device_id,
                source,
                reason,
                more,
            )
            self._quarantine_logged_at, self._quarantine_unlogged = now, 0
        else:
            self._quarantine_unlogged += 1
        if self._quarantine is not None:
            self._quarantine(source, payload, reason)

    def entity_meta(self) -> dict[str, dict[str, str]]:
        """Metadata of this device's entities, keyed by entity key."""
        return {
            entity_key(self.site_id, self.device_id, d.key): {
                "unit": d.unit,
                "device_class": str(d.device_class),
            }
            for d in self.descriptions.values()
        }

    def push(self, values: dict[str, float | None], ts: datetime | None = None) -> list[Reading]:
        """Turn metric values into readings (missing values are skipped) and hand them to the sink."""
        ts = ts or clock.now()
        if self.earliest is not None and ts < self.earliest:
            raise ValueError(
                f"timestamp {ts.isoformat()} is before {self.earliest:%Y-%m-%d}"
                f" (site {self.site_id} commissioning)"
            )
        readings = [
            Reading(entity=entity_key(self.site_id, self.device_id, metric), ts=ts, value=value)
            for metric, value in values.items()
            if value is not None and metric in self.descriptions
        ]
        if readings and self._sink is not None:
            self._sink(readings)
        return readings

    def mark_failed(self, why: str) -> None:
        """The device could not be reached or read this time: unavailable, with the reason (logged
        when it becomes unavailable, not at every failure)."""
        self.failures_total += 1
        self.consecutive_failures += 1
        if self.available or self.consecutive_failures == 1:
            log.warning("%s.%s unavailable: %s", self.site_id, self.device_id, why)
        self.available, self.last_error = False, why

    def mark_available(self, at: datetime) -> None:
        """The device answered (a poll succeeded, a message was accepted)."""
        if not self.available and self.last_success is not None:
            log.info("%s.%s available again", self.site_id, self.device_id)
        self.available, self.last_success, self.last_error = True, at, None
        self.consecutive_failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Talk to the device until `stop` is set (the collector runs this, restarting it if it dies)."""
        raise NotImplementedError

    async def async_close(self) -> None:
        """Release the connection."""


class PollingCoordinator(Coordinator):
    """A device the collector asks: `_async_update() -> {metric: value}` every poll interval (raise
    `UpdateFailed` on failure), with exponential backoff after failures. A polled reading that the
    landing cannot take may be dropped: the device is asked again at the next poll."""

    def __init__(
        self,
        site_id: str,
        device_id: str,
        descriptions: tuple[EntityDescription, ...],
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        super().__init__(site_id, device_id, descriptions)
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.polls_total = 0  # polls tried (the collector's /metrics)

    # -- polling ----------------------------------------------------------------------------------
    async def _async_update(self) -> dict[str, float | None]:
        raise NotImplementedError

    def next_delay_s(self) -> float:
        """Wall seconds to the next poll: the poll interval while healthy; exponential backoff after
        failures, capped at `max_backoff_s` of platform time (in an accelerated run a device that comes
        back is seen within the same simulated minute as in real time), never below the interval."""
        if self.consecutive_failures == 0:
            return self.poll_interval_s
        backoff_s = self.poll_interval_s * 2 ** min(self.consecutive_failures, 16)
        return max(self.poll_interval_s, min(clock.wall_s(self.max_backoff_s), backoff_s))

    async def poll_once(self) -> list[Reading]:
        """One update: readings on success; marks the device unavailable on failure (never raises)."""
        started = clock.now()
        self.polls_total += 1
        try:
            values = await self._async_update()
        except UpdateFailed as exc:
            self.mark_failed(str(exc))
            return []
        except (OSError, TimeoutError) as exc:
            self.mark_failed(f"{type(exc).__name__}: {exc}")
            return []
        self.mark_available(started)
        try:
            return self.push(values, started)
        except (
            ValueError
        ) as exc:  # a reading the platform refuses (clock before commissioning, ...)
            self.quarantine(f"poll:{self.site_id}.{self.device_id}", b"", str(exc)[:500])
            return []

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, keeping the poll grid (no drift) while healthy."""
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                await self.poll_once()
                delay = self.next_delay_s()
                next_at = (
                    max(next_at + delay, time.monotonic())
                    if self.consecutive_failures == 0
                    else time.monotonic() + delay
                )
                await wait_or_stop(stop, max(0.0, next_at - time.monotonic()))
        finally:  # also when a bug kills the loop: the collector restarts it on a fresh connection
            await self.async_close()


class PushCoordinator(Coordinator):
    """A device that sends by itself (MQTT): `run()` receives and calls `push()`. What it hands over
    is acknowledged to its source only once durable: the collector calls `on_durable()` after each
    landing segment closes, and closes one early when `unacked` messages have waited too long or
    the coordinator asks (`request_durable()`). Its readings are never dropped unless `droppable`."""

    _durable: Callable[[], None] | None = None

    @property
    def droppable(self) -> bool:
        """Whether the landing may drop these readings when full (only if the source keeps nothing)."""
        return False

    @property
    def unacked(self) -> int:
        """Inputs handed to the landing and not yet acknowledged to their source."""
        return 0

    @property
    def oldest_unacked_s(self) -> float:
        """Age [s] of the oldest input not yet acknowledged (0: none)."""
        return 0.0

    def on_durable(self) -> None:
        """The landing closed a segment: acknowledge every input handed to it before now."""

    def attach_durable(self, close_segment: Callable[[], None]) -> None:
        """How to make what was handed over durable now (the collector closes its open segment)."""
        self._durable = close_segment

    def request_durable(self) -> None:
        """Ask the collector to close the open segment now (inputs waiting to be acknowledged)."""
        if self._durable is not None:
            self._durable()
