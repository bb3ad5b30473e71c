"""`RealTimeMonitor`: live data from the MQTT live bus, as typed async streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator
from datetime import datetime

import aiomqtt

from pv_platform import clock
from pv_platform.alerts.limits import fleet_from_settings
from pv_platform.alerts.realtime import (
    RealtimeRules,
    communication_status,
)
from pv_platform.api.common import database_from_settings, plant_from_settings
from pv_platform.api.records import (
    InverterRecord,
    ModuleRecord,
    SourceState,
    StringRecord,
    parse_inverter,
)
from pv_platform.bus import parse_mqtt_url
from pv_platform.readings import Reading
from pv_platform.settings import Settings, get_settings
from pv_platform.vocabulary import Metric


class RealTimeMonitor:
    """Live readings from the MQTT live bus the collector publishes (`pvp/live/<site>/<device>`).

    async with RealTimeMonitor() as monitor:
        async for reading in monitor.live_data_stream(metric="ac_power"):
            ...
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.plant = plant_from_settings(self.settings)
        self._client: aiomqtt.Client | None = None
        self._queues: list[asyncio.Queue] = []
        self._task: asyncio.Task | None = None
        self._seen: dict[tuple[str, str], datetime] = {}
        self.rules = RealtimeRules(self.plant, fleet_from_settings(self.settings))

    async def start(self) -> None:
        if not self.settings.mqtt_url:
            raise ValueError("PVP_MQTT_URL is not set: the live bus is on the MQTT broker")
        broker = parse_mqtt_url(self.settings.mqtt_url)
        self._client = aiomqtt.Client(**broker.client_kwargs())
        await self._client.__aenter__()
        await self._client.subscribe(f"{self.settings.live_topic_prefix}/#", qos=0)
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.__aexit__(None, None, None)
        self._client = self._task = None

    async def __aenter__(self) -> RealTimeMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _pump(self) -> None:
        async for message in self._client.messages:
            parts = str(message.topic).split("/")
            try:
                data = json.loads(message.payload)
                ts = datetime.fromisoformat(data["ts"])
                values = {k: float(v) for k, v in data["values"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # best effort: the landing has the truth
            site_id, device_id = parts[-2], parts[-1]
            self._seen[(site_id, device_id)] = ts
            readings = [
                Reading(entity=f"{site_id}.{device_id}.{m}", ts=ts, value=v)
                for m, v in values.items()
            ]
            self.rules.feed(readings)
            for queue in self._queues:
                queue.put_nowait((site_id, device_id, ts, values, readings))

    async def _frames(self) -> AsyncIterator[tuple[str, str, datetime, dict, list[Reading]]]:
        if self._task is None:
            raise RuntimeError("call `await monitor.start()` (or use `async with`) first")
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def live_data_stream(
        self, site: str | None = None, device: str | None = None, metric: str | None = None
    ) -> AsyncIterator[Reading]:
        """Validated readings as they arrive, optionally only one site, device or metric."""
        async for site_id, device_id, _, _, readings in self._frames():
            if site not in (None, site_id) or device not in (None, device_id):
                continue
            for reading in readings:
                if metric is None or reading.entity.rsplit(".", 1)[1] == metric:
                    yield reading

    def scada_integration(self) -> list[SourceState]:
        """Every configured device (Modbus, MQTT, ...) with its newest reading, stored or live."""
        stored: dict[tuple[str, str], datetime] = {}
        if self.settings.database_url:
            db = database_from_settings(self.settings)
            try:
                stored = db.telemetry.last_reading_per_device()
            finally:
                db.dispose()
        now = clock.now()
        out = []
        for site in self.plant.sites:
            for d in site.devices:
                last, online = communication_status(
                    self.rules.thresholds[site.id], d, now,
                    stored.get((site.id, d.id)), self._seen.get((site.id, d.id)),
                )  # fmt: skip
                out.append(
                    SourceState(
                        site_id=site.id, device_id=d.id, kind=d.kind, integration=d.integration,
                        last_reading=last, available=online,
                    )
                )  # fmt: skip
        return out

    async def inverter_data_parsing(
        self, site: str | None = None, device: str | None = None
    ) -> AsyncIterator[InverterRecord]:
        """Each inverter poll on the live bus as an InverterRecord."""
        inverters = {(s.id, d.id) for s in self.plant.sites for d in s.inverters}
        async for site_id, device_id, ts, values, _ in self._frames():
            if (
                (site_id, device_id) in inverters
                and site in (None, site_id)
                and device in (None, device_id)
            ):
                yield parse_inverter(site_id, device_id, ts, values)

    async def string_level_monitoring(self, site: str | None = None) -> AsyncIterator[StringRecord]:
        """Per string and poll: current against the site's median string, flagged by the `string_fault`
        rule the collector runs (below its fraction of the median at daylight)."""
        async for site_id, device_id, ts, values, _ in self._frames():
            if site not in (None, site_id):
                continue
            flagged = self._flags(site_id, ts, "string_fault")
            medians = self._string_medians(site_id, Metric.DC_CURRENT)
            for string, current in _strings(values, Metric.DC_CURRENT).items():
                yield StringRecord(
                    site_id=site_id, device_id=device_id, string=string, ts=ts, current_a=current,
                    voltage_v=values.get(f"{string}_dc_voltage"), power_w=values.get(f"{string}_dc_power"),
                    median_current_a=medians, outlier=(device_id, string) in flagged,
                )  # fmt: skip

    async def module_level_monitoring(self, site: str | None = None) -> AsyncIterator[ModuleRecord]:
        """Per string's modules and poll: temperature against the median string, flagged by `hot_spot`."""
        async for site_id, device_id, ts, values, _ in self._frames():
            if site not in (None, site_id):
                continue
            flagged = self._flags(site_id, ts, "hot_spot")
            median = self._string_medians(site_id, "temperature")
            for string, temp in _strings(values, "temperature").items():
                yield ModuleRecord(
                    site_id=site_id, device_id=device_id, string=string, ts=ts, temperature_c=temp,
                    median_temperature_c=median, hot_spot=(device_id, string) in flagged,
                )  # fmt: skip

    def _flags(self, site_id: str, now: datetime, rule: str) -> set[tuple[str, str]]:
        return {
            (c.device_id, c.key)
            for c in self.rules.evaluate(now)
            if c.rule == rule and c.site_id == site_id
        }

    def _string_medians(self, site_id: str, what: str) -> float | None:
        values = [
            s.value
            for (sid, _, metric), s in self.rules.latest.items()
            if sid == site_id and metric.startswith("mppt") and metric.endswith(f"_{what}")
        ]
        return statistics.median(values) if values else None


def _strings(values: dict, what: str) -> dict[str, float]:
    return {
        m.removesuffix(f"_{what}"): v
        for m, v in values.items()
        if m.startswith("mppt") and m.endswith(f"_{what}")
    }
