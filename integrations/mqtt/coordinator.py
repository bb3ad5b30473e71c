"""The only code that talks to an MQTT device: subscribe, parse, quarantine what is malformed.

Nothing is lost: the session is persistent (fixed client id, clean_session=False, QoS 1), and a message
is acknowledged to the broker only after the landing segment holding its reading (or its quarantine
record) is closed with fsync. A crash before that makes the broker deliver it again; the ingest's
ON CONFLICT turns the repeat into nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import aiomqtt
from pydantic import ValidationError

from integrations.mqtt.config import MqttDeviceConfig
from integrations.mqtt.entities import MQTT_ENTITIES
from integrations.mqtt.payload import PayloadError, parse_payload
from pv_platform import clock
from pv_platform.bus import BrokerAddress
from pv_platform.coordinator import PushCoordinator, wait_or_stop

log = logging.getLogger(__name__)
# Close the landing segment once this many messages wait for their acknowledgement: brokers keep only a
# small window of unacknowledged QoS 1 messages in flight (Mosquitto: 20), so waiting for the age-based
# close would throttle a busy topic to a trickle.
ACK_BATCH = 10
RECONNECT_MAX_S = 60.0


class MqttCoordinator(PushCoordinator):
    """Subscribes to one device topic and pushes its readings; reconnects with backoff."""

    def __init__(
        self,
        site_id: str,
        device_id: str,
        config: MqttDeviceConfig,
        broker: BrokerAddress,
        ack_batch: int = ACK_BATCH,
        client_id: str | None = None,
    ) -> None:
        descriptions = tuple(d for d in MQTT_ENTITIES if d.key in config.fields)
        super().__init__(site_id, device_id, descriptions)
        self.config = config
        self.broker = broker
        self.identifier = client_id or f"pvp-{site_id}-{device_id}"  # setup(): unguessable
        self.ack_batch = ack_batch
        self._client: aiomqtt.Client | None = None
        self._unacked: list[
            tuple[int, int]
        ] = []  # (mid, qos) handed to the landing, not yet durable
        self.acked = 0
        self._unacked_since: float | None = None  # monotonic time the oldest unacked message came

    def handle(self, payload: bytes, received_at: datetime | None = None) -> int:
        """Parse one message; push its readings or quarantine it. Returns readings pushed."""
        source = f"mqtt:{self.config.topic}"
        try:
            values, ts = parse_payload(payload, self.config.fields, self.config.timestamp_field)
            readings = self.push(values, ts or received_at or datetime.now(UTC))
        except PayloadError as exc:
            self.quarantine(source, payload, str(exc))
            return 0
        except ValidationError as exc:
            self.quarantine(source, payload, "; ".join(e["msg"] for e in exc.errors()))
            return 0
        except Exception as exc:  # anything else one message causes stays with that message
            self.quarantine(source, payload, f"{type(exc).__name__}: {str(exc)[:500]}")
            return 0
        self.mark_available(datetime.now(UTC))
        return len(readings)

    @property
    def droppable(self) -> bool:
        """At QoS 0 the broker keeps nothing to deliver again: nothing waits for an acknowledgement."""
        return self.config.qos == 0

    @property
    def unacked(self) -> int:
        """Messages handed to the landing and not yet acknowledged."""
        return len(self._unacked)

    @property
    def oldest_unacked_s(self) -> float:
        """Age [s] of the oldest message handed to the landing and not yet acknowledged (0: none)."""
        if not self._unacked or self._unacked_since is None:
            return 0.0
        return time.monotonic() - self._unacked_since

    def on_durable(self) -> None:
        """The landing closed a segment: acknowledge every message handed to it before now."""
        client, pending = self._client, self._unacked
        if client is None or not pending:
            return
        self._unacked = []
        for mid, qos in pending:
            client._client.ack(mid, qos)  # paho's manual acknowledgement (aiomqtt 2 has no wrapper)
        self.acked += len(pending)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            client = aiomqtt.Client(
                **self.broker.client_kwargs(), identifier=self.identifier, clean_session=False
            )
            client._client.manual_ack_set(True)  # before connecting: queued messages arrive at once
            try:
                async with client:
                    self._client, self._unacked = client, []
                    await client.subscribe(self.config.topic, qos=self.config.qos)
                    log.info(
                        "%s.%s subscribed to %s", self.site_id, self.device_id, self.config.topic
                    )
                    self.consecutive_failures = 0
                    listener = asyncio.create_task(self._listen(client))
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (listener, stopper):
                        task.cancel()
                    if listener.done() and not listener.cancelled() and listener.exception():
                        raise listener.exception()  # type: ignore[misc]
            except aiomqtt.MqttError as exc:
                self.mark_failed(f"broker {self.broker.host}:{self.broker.port}: {exc}")
                await wait_or_stop(stop, self.reconnect_delay_s())
            finally:
                self._client = None  # unacked messages come again with the next session

    def reconnect_delay_s(self) -> float:
        """Seconds before connecting again: 2 after the first lost connection, doubling up to 60."""
        return min(RECONNECT_MAX_S, 2.0 ** min(self.consecutive_failures, 16))

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = (
                message.payload
                if isinstance(message.payload, bytes)
                else str(message.payload).encode()
            )
            self.handle(payload, clock.now())
            if message.qos > 0:
                if not self._unacked:
                    self._unacked_since = time.monotonic()
                self._unacked.append((message.mid, message.qos))
                if len(self._unacked) >= self.ack_batch:
                    self.request_durable()  # the broker sends few unacknowledged messages at a time
