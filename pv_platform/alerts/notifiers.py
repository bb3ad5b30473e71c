"""Notifiers: webhook (JSON POST with retries and backoff) and MQTT (`pvp/alerts/<site>/<severity>`).
Both run off the caller's path: a slow or failing receiver never blocks or loses the alert (it is in the
`alerts` table already)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.request
from datetime import datetime

import aiomqtt

from pv_platform.bus import BrokerAddress

log = logging.getLogger(__name__)


def alert_json(event: str, alert: dict) -> bytes:
    body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in alert.items()}
    return json.dumps({"event": event, "alert": body}, default=str).encode()


class WebhookNotifier:
    """POST `{"event", "alert"}` as JSON; retries with exponential backoff in a background thread."""

    def __init__(
        self, url: str, timeout_s: float = 5.0, retries: int = 4, backoff_s: float = 1.0
    ) -> None:
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.delivered = 0

    def __call__(self, event: str, alert: dict) -> None:
        threading.Thread(target=self._send, args=(alert_json(event, alert),), daemon=True).start()

    def _send(self, body: bytes) -> None:
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(
                    self.url, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
            except OSError as exc:
                log.warning("webhook attempt %d failed: %s", attempt + 1, exc)
            time.sleep(self.backoff_s * 2**attempt)
        log.error(
            "webhook gave up after %d attempts (the alert stays in the alerts table)",
            self.retries + 1,
        )


class MqttNotifier:
    """Publish each change on `pvp/alerts/<site>/<severity>` (QoS 1), on the collector's event loop."""

    def __init__(
        self, broker: BrokerAddress, loop: asyncio.AbstractEventLoop, prefix: str = "pvp/alerts"
    ) -> None:
        self.broker, self.loop, self.prefix = broker, loop, prefix

    def __call__(self, event: str, alert: dict) -> None:
        topic = f"{self.prefix}/{alert['site_id']}/{alert['severity']}"
        asyncio.run_coroutine_threadsafe(self._publish(topic, alert_json(event, alert)), self.loop)

    async def _publish(self, topic: str, body: bytes) -> None:
        try:
            async with aiomqtt.Client(**self.broker.client_kwargs()) as client:
                await client.publish(topic, body, qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("alert not published on %s: %s", topic, exc)
