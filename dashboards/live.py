"""One server-level subscriber to the MQTT live bus; every browser session reads its snapshot.

Imported once per server process (modules are shared across sessions), so there is one MQTT connection
however many operators look at the page.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import aiomqtt

from pv_platform.bus import parse_mqtt_url
from pv_platform.settings import get_settings
from pv_platform.vocabulary import Metric

log = logging.getLogger(__name__)
HISTORY_S = 3600


@dataclass
class LiveState:
    """Newest values per device and a rolling hour of plant AC power."""

    devices: dict[tuple[str, str], dict] = field(
        default_factory=dict
    )  # (site, device) -> {"ts", "values"}
    power_history: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY_S)
    )
    messages: int = 0
    connected: bool = False
    inverters: set[tuple[str, str]] | None = None  # whose ac_power is plant power (not the meter's)
    # (site, device) -> what the device says it is (retained `<prefix>/<site>/<device>/info`)
    device_info: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 2:
            return
        try:
            data = json.loads(payload)
            if isinstance(data, dict) and isinstance(data.get("device_info"), dict):
                self._identify(parts, data["device_info"])
                return
            values = {k: float(v) for k, v in data["values"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # the live bus is best effort; the landing has the truth
        with self.lock:
            self.devices[(parts[-2], parts[-1])] = {
                "ts": data.get("ts"),
                "values": values,
                "seen": time.time(),
            }
            self.messages += 1
            plant_w = sum(
                d["values"].get(Metric.AC_POWER, 0.0)
                for key, d in self.devices.items()
                if self.inverters is None or key in self.inverters
            )
            now = time.time()
            if self.power_history and now - self.power_history[-1][0] < 0.5:
                self.power_history[-1] = (now, plant_w)
            else:
                self.power_history.append((now, plant_w))

    def _identify(self, parts: list[str], info: dict) -> None:
        if len(parts) >= 3:
            with self.lock:
                self.device_info[(parts[-3], parts[-2])] = {
                    str(k): str(v) for k, v in info.items() if v is not None
                }

    def identities(self) -> dict[tuple[str, str], dict[str, str]]:
        with self.lock:
            return dict(self.device_info)

    def snapshot(self) -> tuple[dict, list, int]:
        with self.lock:
            return dict(self.devices), list(self.power_history), self.messages


class LiveBus:
    """A daemon thread running an aiomqtt subscriber on `<prefix>/#`, reconnecting forever."""

    def __init__(
        self, url: str, prefix: str, inverters: set[tuple[str, str]] | None = None
    ) -> None:
        self.broker, self.prefix = parse_mqtt_url(url), prefix
        self.state = LiveState(inverters=inverters)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="live-bus", daemon=True
        )
        self._thread.start()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(**self.broker.client_kwargs()) as client:
                    await client.subscribe(f"{self.prefix}/#")
                    self.state.connected = True
                    async for message in client.messages:
                        self.state.apply(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.state.connected = False
                log.warning("live bus: %s; reconnecting in 2 s", exc)
                with contextlib.suppress(Exception):
                    await asyncio.sleep(2)


_bus: LiveBus | None = None
_bus_lock = threading.Lock()


def live_bus() -> LiveBus | None:
    """The process's live bus subscriber (None when no broker is configured)."""
    global _bus
    settings = get_settings()
    if not settings.mqtt_url:
        return None
    with _bus_lock:
        if _bus is None:
            inverters = None
            if settings.plant_file:
                from pv_platform.plant import load_plant

                plant = load_plant(settings.plant_file)
                inverters = {(s.id, d.id) for s in plant.sites for d in s.inverters}
            _bus = LiveBus(settings.mqtt_url, settings.live_topic_prefix, inverters)
        return _bus
