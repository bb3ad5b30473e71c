"""Notifiers: webhook (JSON POST with retries and backoff) and MQTT (`pvp/alerts/<site>/<severity>`).
Both run off the caller's path: a slow or failing receiver never blocks or loses the alert (it is in the
`alerts` table already)."""

from __future__ import annotations

import asyncio
import contextlib
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
        self,
        url: str,
        timeout_s: float = 5.0,
        retries: int = 4,
        backoff_s: float = 1.0,
        events: set[str] | None = None,  # only these events (None: every one)
    ) -> None:
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.events = events
        self.delivered = 0
        self._threads: list[threading.Thread] = []

    def __call__(self, event: str, alert: dict) -> None:
        if self.events is not None and event not in self.events:
            return
        thread = threading.Thread(target=self._send, args=(alert_json(event, alert),), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def flush(self, timeout_s: float) -> bool:
        """Wait for deliveries under way (a short-lived process, e.g. a Dagster run, before it exits)."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

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
    """Publish each change on `pvp/alerts/<site>/<severity>` (QoS 1), on the given event loop (the
    collector's), or on a loop of its own in a background thread (Dagster runs, dashboards)."""

    def __init__(
        self,
        broker: BrokerAddress,
        loop: asyncio.AbstractEventLoop | None = None,
        prefix: str = "pvp/alerts",
    ) -> None:
        if loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True, name="mqtt-notifier").start()
        self.broker, self.loop, self.prefix = broker, loop, prefix
        self._pending: list = []

    def __call__(self, event: str, alert: dict) -> None:
        topic = f"{self.prefix}/{alert['site_id']}/{alert['severity']}"
        future = asyncio.run_coroutine_threadsafe(
            self._publish(topic, alert_json(event, alert)), self.loop
        )
        self._pending = [f for f in self._pending if not f.done()] + [future]

    def flush(self, timeout_s: float) -> bool:
        """Wait for publications under way (call it from another thread than the notifier's loop)."""
        deadline = time.monotonic() + timeout_s
        for future in self._pending:
            with contextlib.suppress(Exception):
                future.result(max(0.0, deadline - time.monotonic()))
        return all(f.done() for f in self._pending)

    async def _publish(self, topic: str, body: bytes) -> None:
        try:
            async with aiomqtt.Client(**self.broker.client_kwargs()) as client:
                await client.publish(topic, body, qos=1)
        except (aiomqtt.MqttError, OSError) as exc:
            log.warning("alert not published on %s: %s", topic, exc)


def notifiers_from_settings(settings, loop: asyncio.AbstractEventLoop | None = None) -> list:
    """Every notifier the settings configure: MQTT on the platform's broker (PVP_MQTT_URL) and the webhook
    (PVP_ALERT_WEBHOOK_URL). The one place that decides where alerts go, for the collector's real-time
    rules, the Dagster KPI rules and the dashboards alike."""
    from pv_platform.bus import parse_mqtt_url

    out: list = []
    if settings.mqtt_url:
        out.append(MqttNotifier(parse_mqtt_url(settings.mqtt_url), loop))
    if settings.alert_webhook_url:
        out.append(WebhookNotifier(settings.alert_webhook_url))
    if settings.alert_escalation_webhook_url:  # the escalation target hears escalations only
        out.append(WebhookNotifier(settings.alert_escalation_webhook_url, events={"escalated"}))
    return out
