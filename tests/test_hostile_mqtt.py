"""Issue 15, item 2: poison MQTT messages. Each payload below once killed a device's coordinator for good
(RecursionError / ValueError / OverflowError out of the handler; the broker redelivered it after every
restart). Run against the real Mosquitto on 127.0.0.1:1883 and the real `pvp collect` process."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pv_platform.collector import Collector
from pv_platform.coordinator import EntityDescription, PollingCoordinator
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.settings import Settings
from tests.test_nothing_lost import (
    _ingest_all,
    _plant,
    _publish,
    _start_collector,
    _wait_for,
    _wait_landed,
)

pytestmark = pytest.mark.hostile

POISON = [
    (b"[" * 100_000, "nested too deeply"),
    (b'{"ts": "2026-01-01T00:00:00Z", "poa": 1' + b"7" * 400 + b"}", "too large"),
    (b'{"ts": "2026-01-01T00:00:00Z", "poa": 1' + b"7" * 5000 + b"}", "digits"),
    (b'{"ts": "9999-12-31T23:59:59-14:00", "poa": 1}', "out of range"),
]


def _valid(base: datetime, first: int, count: int) -> list[bytes]:
    return [
        json.dumps(
            {"ts": (base + timedelta(seconds=i)).isoformat(), "poa": float(i), "t": {"amb": 20.0}}
        ).encode()
        for i in range(first, first + count)
    ]


@pytest.mark.faults
def test_poison_messages_are_quarantined_and_never_stop_a_device(db, mqtt_url, tmp_path):
    site, topic = f"p{uuid.uuid4().hex[:8]}", f"pvp/test/{uuid.uuid4().hex[:8]}/wx1"
    plant_file, landing, log = tmp_path / "plant.yaml", tmp_path / "landing", tmp_path / "col.log"
    dump_plant(_plant(site, topic), plant_file)
    env = dict(
        os.environ, PVP_PLANT_FILE=str(plant_file), PVP_LANDING_DIR=str(landing),
        PVP_MQTT_URL=mqtt_url, PVP_SEGMENT_MAX_AGE_S="0.3",
    )  # fmt: skip
    base = datetime.now(UTC) - timedelta(minutes=30)
    poison = [p for p, _ in POISON]

    # 1. live: the poison arrives first, then six valid readings
    collector = _start_collector(env, log)
    _wait_for(log, "subscribed to", 1, 30)
    asyncio.run(_publish(mqtt_url, topic, poison + _valid(base, 0, 6), per_second=50))
    _wait_landed(landing, f"{site}.wx1.poa_irradiance", {str(float(i)) for i in range(6)}, 20)
    collector.send_signal(signal.SIGTERM)
    collector.wait(15)
    assert collector.returncode == 0

    # 2. while the collector is down the broker queues poison and valid readings (persistent session);
    # the restarted collector gets them all, quarantines the poison and lands the rest
    asyncio.run(_publish(mqtt_url, topic, poison + _valid(base, 6, 6) + poison, per_second=50))
    collector = _start_collector(env, log)
    _wait_for(log, "subscribed to", 2, 30)
    _wait_landed(landing, f"{site}.wx1.poa_irradiance", {str(float(i)) for i in range(12)}, 20)
    asyncio.run(_publish(mqtt_url, topic, _valid(base, 12, 3), per_second=50))
    _wait_landed(landing, f"{site}.wx1.poa_irradiance", {str(float(i)) for i in range(15)}, 20)
    collector.send_signal(signal.SIGTERM)
    collector.wait(15)
    assert collector.returncode == 0
    assert "died" not in log.read_text(errors="replace")  # handled per message, not by a restart

    _ingest_all(db, landing)
    values = db.query_df(
        "SELECT s.value FROM samples s JOIN entities e ON e.id = s.entity_id WHERE e.key = :k",
        {"k": f"{site}.wx1.poa_irradiance"},
    )["value"]
    assert sorted(values) == [float(i) for i in range(15)]
    quarantined = db.query_df(
        "SELECT payload, reason FROM quarantine WHERE source = :s", {"s": f"mqtt:{topic}"}
    )
    for payload, reason in POISON:
        rows = quarantined[quarantined["payload"].apply(bytes) == payload[:4096]]
        assert len(rows) == 3, (payload[:40], len(rows))  # once live, twice after the restart
        assert all(reason in r for r in rows["reason"]), set(rows["reason"])


class _Buggy(PollingCoordinator):
    """A coordinator with a bug (raises something poll_once does not expect) on its 1st and 2nd poll.
    A stand-in: no real integration is known to have such a bug any more."""

    def __init__(self) -> None:
        super().__init__(
            "s1",
            "buggy",
            (EntityDescription(key="ac_power", unit="W", device_class="power"),),
            0.05,
        )
        self.polls = 0

    async def _async_update(self) -> dict[str, float | None]:
        self.polls += 1
        if self.polls <= 2:
            raise KeyError("register map changed")
        return {"ac_power": 42.0}


def test_a_coordinator_task_that_dies_is_logged_counted_and_restarted(tmp_path, caplog):
    async def go() -> tuple[Collector, _Buggy]:
        plant = parse_plant({"sites": []})
        collector = Collector(plant, Settings(segment_max_age_s=0.2), tmp_path / "landing", None)
        buggy = _Buggy()
        buggy.attach(collector._on_readings, collector.writer.add_quarantine)
        collector.coordinators = [buggy]
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if buggy.polls > 3:
                break
        stop.set()
        await task
        return collector, buggy

    with caplog.at_level(logging.ERROR, logger="pv_platform.collector"):
        collector, buggy = asyncio.run(go())
    assert collector.task_deaths == {"s1.buggy": 2}
    assert buggy.polls > 3  # it ran again after each death
    died = [r for r in caplog.records if "task s1.buggy died" in r.getMessage()]
    assert len(died) == 2 and "register map changed" in (died[0].exc_text or "")
    assert collector.readings_total >= 1


def _mqtt_site(site: str, topic: str, **site_fields) -> dict:
    return {"sites": [{
        "id": site, "name": "Clock test", "latitude": 47, "longitude": 8, **site_fields,
        "devices": [{"id": "wx1", "kind": "weather_station", "integration": "mqtt",
                     "config": {"topic": topic, "fields": {"poa_irradiance": "poa"}}}],
    }]}  # fmt: skip


async def _collect_while(collector: Collector, publish, until=lambda c: True) -> None:
    """Run the collector, wait until subscribed, publish, wait for `until(collector)` (at most 30 s)
    and for the landing to close, stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if all(c._client is not None for c in collector.coordinators):
            break
    await asyncio.sleep(0.3)
    await publish()
    for _ in range(300):
        if until(collector):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    stop.set()
    await task


def _landed_and_quarantined(landing) -> tuple[list[str], list[dict]]:
    rows, records = [], []
    for sid in list_closed(landing):
        segment = read_segment(segment_path(landing, sid))
        rows += segment.csv_body.splitlines()
        records += segment.meta["quarantine"]
    return rows, records


@pytest.mark.parametrize(
    ("site_fields", "stamp", "reason"),
    [
        ({"commissioning_date": "2025-04-01"}, "2025-03-31T23:59:00Z", "before 2025-04-01"),
        ({}, "2000-01-01T00:00:00Z", "(site"),  # a device clock reset, default window
    ],
)
def test_readings_before_commissioning_are_quarantined_at_collection(
    mqtt_url, tmp_path, site_fields, stamp, reason
):
    site, topic = f"c{uuid.uuid4().hex[:8]}", f"pvp/test/{uuid.uuid4().hex[:8]}/wx1"
    plant = parse_plant(_mqtt_site(site, topic, **site_fields))
    settings = Settings(mqtt_url=mqtt_url, segment_max_age_s=0.3)
    collector = Collector(plant, settings, tmp_path / "landing", None)
    now = datetime.now(UTC).replace(microsecond=0)
    payloads = [
        json.dumps({"ts": (now - timedelta(minutes=1)).isoformat(), "poa": 1.0}).encode(),
        json.dumps({"ts": stamp, "poa": 2.0}).encode(),
        json.dumps({"ts": (now + timedelta(days=400)).isoformat(), "poa": 3.0}).encode(),
        json.dumps({"ts": now.isoformat(), "poa": 4.0}).encode(),
    ]
    asyncio.run(_collect_while(collector, lambda: _publish(mqtt_url, topic, payloads, 100)))
    rows, records = _landed_and_quarantined(tmp_path / "landing")
    assert sorted(float(r.split(",")[2]) for r in rows) == [1.0, 4.0]
    reasons = {json.loads(base64.b64decode(q["payload_b64"]))["poa"]: q["reason"] for q in records}
    assert set(reasons) == {2.0, 3.0}
    assert reason in reasons[2.0] and "in the future" in reasons[3.0]


def test_quarantine_is_rate_limited_per_source_and_counts_what_it_dropped(mqtt_url, tmp_path):
    site, topic = f"q{uuid.uuid4().hex[:8]}", f"pvp/test/{uuid.uuid4().hex[:8]}/wx1"
    plant = parse_plant(_mqtt_site(site, topic))
    settings = Settings(
        mqtt_url=mqtt_url, segment_max_age_s=0.3, quarantine_burst=100, quarantine_per_s=5
    )
    collector = Collector(plant, settings, tmp_path / "landing", None)
    flood = [b"{" + bytes([65 + i % 26]) * 65536 for i in range(600)]  # 600 x 64 KiB of garbage
    good = json.dumps({"ts": datetime.now(UTC).isoformat(), "poa": 7.0}).encode()

    async def publish() -> None:
        await _publish(mqtt_url, topic, [*flood, good], per_second=2000)
        await asyncio.sleep(1.0)  # the bucket refills: the next reject is kept, with the count
        await _publish(mqtt_url, topic, [b"not json either"], per_second=10)

    def all_handled(c: Collector) -> bool:
        return c.coordinators[0].acked >= 602

    asyncio.run(_collect_while(collector, publish, all_handled))
    rows, records = _landed_and_quarantined(tmp_path / "landing")
    assert [float(r.split(",")[2]) for r in rows] == [7.0]  # the good reading still got through
    kept = [q for q in records if q["payload_b64"]]
    summary = [q for q in records if not q["payload_b64"]]
    dropped = collector.writer.quarantine_dropped
    assert 100 <= len(kept) - 1 <= 150  # the burst and ~5/s, then the late reject
    assert len(kept) - 1 + dropped == 600  # each kept or counted
    # each time the source is accepted again after drops, one record says how many were dropped
    assert sum(int(q["reason"].split()[0]) for q in summary) == dropped > 400
    assert all("dropped by the quarantine rate limit" in q["reason"] for q in summary)
    assert all(len(base64.b64decode(q["payload_b64"])) <= 4096 for q in kept)
    assert "cut to its first 4096 of 65537 bytes" in kept[0]["reason"]
    landed_bytes = sum(p.stat().st_size for p in (tmp_path / "landing").rglob("*.seg"))
    assert landed_bytes < 1_000_000  # 600 x 64 KiB = 39 MB offered


def test_a_quarantine_flood_raises_one_alert_that_names_the_device(db, tmp_path):
    """Item 12's "alert once": while a source's rejects are being dropped by the rate limit, the
    collector's real-time rules hold one `quarantine_flood` alert for its device, however many arrive."""
    from pv_platform.alerts.engine import AlertLifecycle
    from pv_platform.alerts.service import quarantine_candidates
    from pv_platform.landing import SegmentWriter
    from pv_platform.storage.alerts import AlertStore

    topic = "pvp/test/flood/wx1"
    plant = parse_plant(_mqtt_site("floodsite", topic))
    writer = SegmentWriter(tmp_path, writer_name="flood", quarantine_burst=5, quarantine_per_s=0.01)
    for _ in range(25):
        writer.add_quarantine(f"mqtt:{topic}", b"{garbage", "not JSON")
    assert writer.flooding() == {f"mqtt:{topic}": 20}
    engine = AlertLifecycle(AlertStore(db.engine))
    now = datetime.now(UTC)
    for minute in range(3):  # three evaluations while the flood goes on
        candidates = quarantine_candidates(
            writer.flooding(), plant, now + timedelta(minutes=minute)
        )
        engine.process(candidates, now + timedelta(minutes=minute), {"quarantine_flood"})
    alerts = db.query_df("SELECT rule, site_id, device_id, state, message FROM alerts")
    assert alerts[["rule", "site_id", "device_id", "state"]].values.tolist() == [
        ["quarantine_flood", "floodsite", "wx1", "open"]
    ]
    assert "20 rejected inputs from mqtt:pvp/test/flood/wx1" in alerts["message"].iloc[0]
    assert writer.flooding(within_s=0.0) == {}  # no drop in the last instant: the flood is over


def test_qos0_readings_are_droppable_while_the_landing_cannot_be_written(tmp_path):
    """Item 3's bounded memory: a QoS-1 subscription's readings wait unacknowledged at the broker and are
    never dropped; a QoS-0 one has nothing the broker keeps, so its readings count against the held-rows
    limit like polled ones (dropped and counted past it) instead of growing memory without bound."""
    spec = _mqtt_site("qos", "pvp/test/qos/wx1")
    device = spec["sites"][0]["devices"][0]
    spec["sites"][0]["devices"].append(
        {
            **device,
            "id": "wx0",
            "config": {**device["config"], "topic": "pvp/test/qos/wx0", "qos": 0},
        }
    )
    settings = Settings(mqtt_url="mqtt://127.0.0.1:1883")  # not connected: construction only
    collector = Collector(parse_plant(spec), settings, tmp_path / "landing", None)
    droppable = {c.device_id: c._sink.keywords["droppable"] for c in collector.coordinators}
    assert droppable == {"wx1": False, "wx0": True}
