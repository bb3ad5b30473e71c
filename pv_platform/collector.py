"""The collector: runs every configured coordinator in one event loop and hands each batch of readings
to the landing (durable), the live bus (best effort) and the real-time hooks. It never touches the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import aiomqtt

from pv_platform.bus import (
    BrokerAddress,
    device_info_payload,
    device_info_topic,
    live_payload,
    live_topic,
)
from pv_platform.coordinator import Coordinator, PushCoordinator, wait_or_stop
from pv_platform.ha_discovery import discovery_messages
from pv_platform.landing import SegmentWriter
from pv_platform.loader import load_integration
from pv_platform.metrics import CONTENT_TYPE, collector_metrics, render
from pv_platform.plant import Plant
from pv_platform.readings import Reading
from pv_platform.settings import Settings

log = logging.getLogger(__name__)
ReadingHook = Callable[[list[Reading]], None]
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # a task that died is restarted after these delays


async def supervise(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    deaths: dict[str, int],
) -> None:
    """Run `run(stop)` until `stop` is set; if it dies, log it with its traceback, count it in
    `deaths[name]` and start it again after a growing delay (a dead task must never go unnoticed)."""
    while not stop.is_set():
        try:
            await run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            deaths[name] = deaths.get(name, 0) + 1
            delay_s = RESTART_DELAYS_S[min(deaths[name], len(RESTART_DELAYS_S)) - 1]
            log.exception(
                "task %s died (%d time(s)); restarting in %.0f s", name, deaths[name], delay_s
            )
            await wait_or_stop(stop, delay_s)
        else:
            return


class Collector:
    """Coordinators → landing segments, live bus and hooks."""

    def __init__(
        self,
        plant: Plant,
        settings: Settings,
        landing_dir: Path,
        broker: BrokerAddress | None,
        *,
        writer_name: str = "collector",
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.writer = SegmentWriter(
            landing_dir,
            writer_name=writer_name,
            max_rows=settings.segment_max_rows,
            max_age_s=settings.segment_max_age_s,
            max_held_rows=settings.landing_max_held_rows,
            quarantine_burst=settings.quarantine_burst,
            quarantine_per_s=settings.quarantine_per_s,
            quarantine_payload_bytes=settings.quarantine_payload_bytes,
        )
        if self.writer.torn_removed:
            log.warning("removed %d torn segment(s) left by a crash", self.writer.torn_removed)
        self.coordinators: list[Coordinator] = []
        # integrations' shared state (Home Assistant's hass.data), e.g. one Modbus hub per bus
        self.shared: dict[str, object] = {}
        for site in plant.sites:
            for device in site.devices:
                integration = load_integration(device.integration)
                coordinator = integration.setup(site, device, settings, self.shared)
                # a push device acknowledges only what landed: its readings are never dropped, unless
                # its source keeps nothing to deliver again (MQTT QoS 0)
                push = isinstance(coordinator, PushCoordinator)
                droppable = not push or coordinator.droppable
                coordinator.attach(
                    partial(self._on_readings, droppable=droppable), self.writer.add_quarantine
                )
                if push:
                    coordinator.attach_durable(self.close_segment)
                coordinator.earliest = site.earliest_reading()
                self.coordinators.append(coordinator)
        self._entity_meta: dict[str, dict] = {}
        for c in self.coordinators:
            self._entity_meta.update(c.entity_meta())
        self._live: dict[tuple[str, str], tuple[datetime, dict[str, float]]] = {}
        self.hooks: list[ReadingHook] = []
        self.readings_total = 0
        self.closed_segments: list[str] = []
        self.task_deaths: dict[str, int] = {}  # task name -> times it died and was restarted
        self._last_close = time.monotonic()

    def close_segment(self) -> None:
        """Close the open segment now (fsync + rename), then let coordinators acknowledge. With
        nothing buffered (every message handed over was dropped by the quarantine limit), there is
        nothing to wait for: acknowledge at once."""
        closed = self.writer.close()
        if closed:
            self._closed(closed)
        elif self.writer.empty:
            self._acknowledge()

    def _closed(self, segment_ids: list[str]) -> None:
        """Segments are durable: let push coordinators acknowledge what they handed over."""
        if not segment_ids:
            return
        self.closed_segments += segment_ids
        self._acknowledge()

    def _acknowledge(self) -> None:
        self._last_close = time.monotonic()
        for coordinator in self.coordinators:
            if isinstance(coordinator, PushCoordinator):
                coordinator.on_durable()

    def _on_readings(self, readings: list[Reading], droppable: bool = False) -> None:
        self.readings_total += len(readings)
        if any(
            r.entity not in self._entity_meta for r in readings
        ):  # an entity that appeared at run time
            for c in self.coordinators:
                self._entity_meta.update(c.entity_meta())
        self._closed(self.writer.add(readings, self._entity_meta, droppable=droppable))
        for r in readings:
            site_id, device_id, metric = r.entity.split(".")
            ts, values = self._live.get((site_id, device_id), (r.ts, {}))
            values[metric] = r.value
            self._live[(site_id, device_id)] = (max(ts, r.ts), values)
        for hook in self.hooks:
            try:
                hook(readings)
            except Exception:  # a broken hook must not stop collection
                log.exception("reading hook %r failed", hook)

    async def _tick_landing(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiting = any(c.unacked for c in self.coordinators if isinstance(c, PushCoordinator))
            if (
                waiting
                and time.monotonic() - self._last_close >= self.settings.mqtt_ack_max_delay_s
            ):
                self.close_segment()  # messages wait for their acknowledgement
            else:
                self._closed(self.writer.tick())
            await wait_or_stop(stop, min(0.5, self.settings.mqtt_ack_max_delay_s))

    def health(self) -> dict:
        """Healthy when the landing accepts writes; with what is held, dropped and restarted."""
        w = self.writer
        return {
            "healthy": w.write_error is None,
            "landing_error": w.write_error,
            "held_rows": w.held_rows,
            "dropped_rows": w.dropped_rows,
            "quarantine_dropped": w.quarantine_dropped,
            "task_deaths": dict(self.task_deaths),
            "devices_available": sum(c.available for c in self.coordinators),
            "devices": len(self.coordinators),
            "segments_closed": len(self.closed_segments),
        }

    async def _answer_health(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)  # the rest is ignored
            path = request.split(b" ")[1] if request.count(b" ") >= 2 else b"/"
            if path.split(b"?")[0] == b"/metrics":  # Prometheus text format
                body = render(collector_metrics(self)).encode()
                status, ctype = "200 OK", CONTENT_TYPE
            else:  # /health (and any other path, as before)
                report = self.health()
                body = json.dumps(report).encode()
                status = "200 OK" if report["healthy"] else "503 Service Unavailable"
                ctype = "application/json"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _serve_health(self, stop: asyncio.Event) -> None:
        """GET http://<health_address>:<health_port>/health: 200 healthy, 503 not; /metrics:
        Prometheus text (loopback unless PVP_HEALTH_ADDRESS says otherwise)."""
        address, port = self.settings.health_address, self.settings.health_port
        server = await asyncio.start_server(self._answer_health, address, port)
        async with server:
            log.info("health on http://%s:%d/health, metrics on /metrics", address, port)
            await stop.wait()

    async def _publish_live(self, stop: asyncio.Event) -> None:
        """Publish each device's newest values about once a second; drop them while the broker is away."""
        assert self.broker is not None
        prefix = self.settings.live_topic_prefix
        while not stop.is_set():
            try:
                async with aiomqtt.Client(**self.broker.client_kwargs()) as client:
                    if (
                        self.settings.ha_discovery
                    ):  # retained: Home Assistant finds them whenever it starts
                        for topic, payload in discovery_messages(
                            self.coordinators, prefix, self.settings.ha_discovery_prefix
                        ):
                            await client.publish(topic, payload, qos=1, retain=True)
                    # what this connection told: (identity, number of entities) per device
                    told = {(c.site_id, c.device_id): (None, len(c.descriptions))
                            for c in self.coordinators}  # fmt: skip
                    while not stop.is_set():
                        for topic, payload in self._identity_messages(told):
                            await client.publish(topic, payload, qos=1, retain=True)
                        pending, self._live = self._live, {}
                        for (site_id, device_id), (ts, values) in pending.items():
                            await client.publish(
                                live_topic(prefix, site_id, device_id), live_payload(ts, values)
                            )
                        await wait_or_stop(stop, 1.0)
            except aiomqtt.MqttError as exc:
                log.warning("live bus unavailable (%s); retrying in 2 s", exc)
                self._live.clear()
                await wait_or_stop(stop, 2.0)

    def _identity_messages(self, told: dict[tuple[str, str], tuple]) -> list[tuple[str, bytes]]:
        """Retained messages for each device whose identity or entities changed since `told`: its
        identity beside its live values (the Devices page) and, with HA discovery, its entities'
        configs again (their `device` block now says what the device is; entities that appeared at
        run time, such as one per MPPT, get theirs)."""
        out: list[tuple[str, bytes]] = []
        prefix = self.settings.live_topic_prefix
        for c in self.coordinators:
            key, state = (c.site_id, c.device_id), (c.device_info, len(c.descriptions))
            if told.get(key) == state:
                continue
            told[key] = state
            if c.device_info is not None:
                info = device_info_payload(c.device_info.as_dict())
                out.append((device_info_topic(prefix, *key), info))
            if self.settings.ha_discovery:
                out += discovery_messages([c], prefix, self.settings.ha_discovery_prefix)
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then close the open segment so nothing buffered is lost."""
        runs: dict[str, Callable[[asyncio.Event], Awaitable[None]]] = {
            f"{c.site_id}.{c.device_id}": c.run for c in self.coordinators
        }
        runs["landing"] = self._tick_landing
        if self.broker is not None:
            runs["live bus"] = self._publish_live
        if self.settings.health_port is not None:
            runs["health"] = self._serve_health
        tasks = [
            asyncio.create_task(supervise(name, run, stop, self.task_deaths), name=name)
            for name, run in runs.items()
        ]
        log.info("collector running %d device(s)", len(self.coordinators))
        try:
            await stop.wait()
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            self._closed(self.writer.close(force=True))
            if self.writer.held_rows:
                log.error(
                    "stopping with %d rows the landing could not take (%s): polled readings lost,"
                    " MQTT ones stay unacknowledged at the broker",
                    self.writer.held_rows, self.writer.write_error,
                )  # fmt: skip
