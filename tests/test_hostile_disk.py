"""Issue 15, item 3: a full disk or a read-only landing folder once turned the collector into a zombie
(every task dead, nothing landed after space was freed). On a real 4 MiB tmpfs, with the simulator's
Modbus inverters and MQTT devices on the real broker: the collector keeps polling and holds what it
cannot write, says why once, answers 503 on its health endpoint, and lands everything by itself when
the disk takes writes again."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integrations.simulator.runner import run_simulator
from pv_platform.bus import parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import parse_plant
from pv_platform.services import free_port
from pv_platform.settings import Settings
from tests.conftest import demo_plant_dict

pytestmark = [pytest.mark.hostile, pytest.mark.faults]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the tmpfs says ENOSPC."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _stamps(landing: Path, key: str, since: datetime) -> list[datetime]:
    """Times landed for `key` since the test started (the fixed MQTT client id's persistent session
    may also bring old messages of earlier tests)."""
    stamps = (
        datetime.fromisoformat(line.split(",")[1])
        for sid in list_closed(landing)
        for line in read_segment(segment_path(landing, sid)).csv_body.splitlines()
        if line.startswith(key + ",")
    )
    return sorted(t for t in stamps if t >= since)


def _largest_gap_s(stamps: list[datetime]) -> float:
    return max((b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False))


def test_full_or_read_only_landing_holds_everything_and_resumes(small_disk, mqtt_url, caplog):
    # its own site id: the MQTT client ids (pvp-<site>-<device>) must not meet another test's session
    site = f"d{uuid.uuid4().hex[:8]}"
    spec = demo_plant_dict([free_port(), free_port()], topic=f"pvp/test/{uuid.uuid4().hex[:8]}/wx1")
    spec["sites"][0]["id"] = site
    plant = parse_plant(spec)
    landing, port = small_disk / "landing", free_port()
    settings = Settings(mqtt_url=mqtt_url, segment_max_age_s=0.5, health_port=port)
    broker = parse_mqtt_url(mqtt_url)
    seen: dict[str, tuple[int, dict]] = {}
    started = datetime.now(UTC)

    async def go() -> Collector:
        stop_sim, stop_col, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        sim = asyncio.create_task(
            run_simulator(plant, broker, stop_sim, weather_interval_s=0.5, ready=ready)
        )
        await asyncio.wait_for(ready.wait(), 10)
        collector = Collector(plant, settings, landing, broker)
        col = asyncio.create_task(collector.run(stop_col))
        await asyncio.sleep(2.0)
        seen["start"] = await asyncio.to_thread(_health, port)

        filler = _fill(small_disk)  # disk full for 4 s
        await asyncio.sleep(4.0)
        seen["full"] = await asyncio.to_thread(_health, port)
        filler.unlink()
        await asyncio.sleep(2.5)
        seen["freed"] = await asyncio.to_thread(_health, port)

        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        await asyncio.sleep(4.0)  # read-only for 4 s
        seen["read-only"] = await asyncio.to_thread(_health, port)
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        await asyncio.sleep(2.5)
        seen["writable"] = await asyncio.to_thread(_health, port)

        stop_col.set()
        await col
        stop_sim.set()
        await sim
        return collector

    with caplog.at_level(logging.INFO):
        collector = asyncio.run(go())

    assert seen["start"][0] == 200 and seen["start"][1]["healthy"] is True
    assert seen["full"][0] == 503
    assert "No space left on device" in seen["full"][1]["landing_error"]
    assert seen["full"][1]["held_rows"] > 100  # still polling, holding
    assert seen["freed"][0] == 200 and seen["freed"][1]["held_rows"] < 100
    assert seen["read-only"][0] == 503
    assert "Read-only file system" in seen["read-only"][1]["landing_error"]
    assert seen["writable"][0] == 200
    assert collector.task_deaths == {}
    assert collector.writer.dropped_rows == 0

    messages = [r.getMessage() for r in caplog.records if r.name == "pv_platform.landing"]
    assert len([m for m in messages if "not writable" in m]) == 2  # once per state change
    assert len([m for m in messages if "writable again" in m]) == 2

    # no gap in what landed: Modbus polled every 0.5 s and MQTT sent every 0.5 s throughout
    for key in (f"{site}.inv1.ac_power", f"{site}.inv2.ac_power", f"{site}.wx1.poa_irradiance"):
        stamps = _stamps(landing, key, started)
        assert (stamps[-1] - stamps[0]).total_seconds() > 14, key
        assert _largest_gap_s(stamps) < 2.0, (key, _largest_gap_s(stamps))
    # MQTT messages were acknowledged only once their segment was on disk (the gap check above shows
    # none was lost); acknowledgements resumed after each outage
    meter = next(c for c in collector.coordinators if c.device_id == "meter1")
    assert meter.acked > 20
