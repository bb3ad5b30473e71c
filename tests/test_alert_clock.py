"""One clock for the real-time alert rules: `pvp simulate` and `pvp collect` started side by side with the
same --start/--speed (no PVP_CLOCK_ANCHOR) share one simulated clock, and the alerts of a device going silent
and of a gateway answering garbage open and close at the right simulated times, with no false
communication_lost at start. Real processes, real Mosquitto, real PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from pv_platform.alerts.realtime import RealtimeRules
from pv_platform.clock import shared_anchor
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.readings import Reading
from pv_platform.services import free_port
from pv_platform.storage.alerts import AlertStore
from tests.conftest import demo_plant_dict

START = datetime(2026, 6, 21, 9, 0, tzinfo=UTC)  # a June morning in Zurich, in the past
SPEED = 30.0  # one wall second = 30 simulated seconds
M = timedelta(minutes=1)


def _minutes(ts) -> float:
    return (pd.Timestamp(ts) - pd.Timestamp(START)).total_seconds() / 60.0


def test_simulate_and_collect_share_one_clock_and_alerts_keep_simulated_time(
    db, pg_url, mqtt_url, tmp_path
):
    ports = [free_port(), free_port()]
    plant_file = tmp_path / "plant.yaml"
    dump_plant(
        parse_plant(demo_plant_dict(ports, topic=f"pvp/clock/{uuid.uuid4().hex[:8]}/wx1")),
        plant_file,
    )
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "faults": [  # inv2 silent 21 simulated minutes; inv1's gateway answers garbage 10 min
                    {
                        "kind": "device_silent",
                        "device": "inv2",
                        "start": (START + 5 * M).isoformat(),
                        "end": (START + 26 * M).isoformat(),
                    },
                    {
                        "kind": "modbus_garbage",
                        "device": "inv1",
                        "start": (START + 9 * M).isoformat(),
                        "end": (START + 19 * M).isoformat(),
                    },
                ]
            }
        )  # fmt: skip
    )
    env = dict(
        os.environ, PVP_PLANT_FILE=str(plant_file), PVP_DATA_DIR=str(tmp_path / "pvp"),
        PVP_MQTT_URL=mqtt_url, PVP_DATABASE_URL=pg_url,
    )  # fmt: skip
    env.pop("PVP_CLOCK_ANCHOR", None)
    pvp = str(Path(sys.executable).parent / "pvp")
    clock_flags = ["--start", START.isoformat(), "--speed", str(SPEED)]
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("simulate", "collect")}
    procs = {
        "simulate": subprocess.Popen(
            [pvp, "simulate", *clock_flags, "--scenario", str(scenario), "--weather-interval", "1"],
            env=env, stdout=logs["simulate"], stderr=subprocess.STDOUT,
        ),
        "collect": subprocess.Popen(
            [pvp, "collect", *clock_flags], env=env, stdout=logs["collect"], stderr=subprocess.STDOUT
        ),
    }  # fmt: skip
    try:
        # until 33 simulated minutes: every fault over and auto-resolved (2 min clear) with margin
        while time.time() < _wall_at(tmp_path, START + 33 * M):
            assert all(p.poll() is None for p in procs.values()), _logs(tmp_path)
            time.sleep(1)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(30)
    text = _logs(tmp_path)
    anchors = re.findall(r"PVP_CLOCK_ANCHOR=([0-9.]+)", text)
    assert len(anchors) == 2 and anchors[0] == anchors[1], text  # one clock, not two

    alerts = AlertStore(db.engine).list()
    comm = alerts[alerts["rule"] == "communication_lost"].set_index("device_id")
    summary = alerts[["rule", "device_id", "opened_at", "resolved_at", "message"]].to_string()
    # no false communication_lost at start, and none for the devices that kept talking
    assert set(comm.index) == {"inv1", "inv2"}, summary
    assert len(comm) == 2, summary
    # silent from 5 min: lost 60 s (max(60 s, 3 polls of 0.5 s x 30 = 45 s)) after its last reading,
    # which came up to one poll (15 s) before the silence; talks again at 26 min, resolved after 2 min clear
    for device, (begin, end) in {
        "inv2": (5, 26),
        "inv1": (9, 19),
    }.items():  # garbage = refused reads
        opened = _minutes(comm.loc[device, "opened_at"])
        resolved = _minutes(comm.loc[device, "resolved_at"])
        assert begin + 0.7 <= opened <= begin + 2.5, (device, summary)
        assert end + 2.0 <= resolved <= end + 3.5, (device, summary)
    silences = [int(re.search(r"for (\d+) s", m).group(1)) for m in comm["message"]]
    assert max(silences) < 30 * 60, summary  # simulated seconds of silence, not days


def _wall_at(tmp_path: Path, simulated: datetime) -> float:
    """The wall time at which the shared clock reads `simulated` (from the anchor the processes print)."""
    anchors = re.findall(r"PVP_CLOCK_ANCHOR=([0-9.]+)", _logs(tmp_path))
    if not anchors:
        return time.time() + 1
    return float(anchors[0]) + (simulated - START).total_seconds() / SPEED


def _logs(tmp_path: Path) -> str:
    return "".join(
        f"--- {name}\n" + (tmp_path / f"{name}.log").read_text()[-3000:]
        for name in ("simulate", "collect")
    )


def test_a_second_process_joins_the_running_clock_and_a_stale_one_is_replaced(tmp_path):
    first = shared_anchor(tmp_path, START, SPEED)
    assert shared_anchor(tmp_path, START, SPEED) == first  # the same run: the same anchor
    assert shared_anchor(tmp_path, START, 60.0) != first  # another speed: another clock
    stale = time.time() - 120
    os.utime(tmp_path / "clock.json", (stale, stale))  # no process kept it fresh
    assert shared_anchor(tmp_path, START, 60.0) > stale + 100


def test_old_readings_are_not_judged_and_the_start_raises_nothing():
    """A replayed batch from yesterday (history, a late segment) neither opens communication_lost (for
    123 days of 'silence') nor feeds the fault holds; present readings do."""
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    rules = RealtimeRules(plant)
    now = START + timedelta(days=1)
    old = [
        Reading(entity=f"testsite.{d}.ac_power", ts=START - timedelta(days=123), value=1.0)
        for d in ("inv1", "inv2", "meter1", "wx1")
    ]
    old += [
        Reading(entity="testsite.inv1.operating_state", ts=START + timedelta(seconds=s), value=7)
        for s in (0, 30)
    ]  # FAULT held 30 s, a day ago
    rules.feed(old, now)
    assert rules.ignored_old == len(old)
    assert rules.evaluate(now) == []  # at start: nothing is silent yet
    present = [
        Reading(entity=f"testsite.{d}.ac_power", ts=now, value=1.0)
        for d in ("inv1", "inv2", "meter1", "wx1")
    ]
    rules.feed(present, now)
    assert rules.evaluate(now + timedelta(seconds=59)) == []
    lost = {c.device_id for c in rules.evaluate(now + timedelta(seconds=61))}
    assert lost == {"inv1", "inv2", "meter1", "wx1"}


def test_a_device_never_read_gets_a_start_up_grace_in_wall_seconds():
    """Processes started side by side come up seconds apart: at 30x the simulator's 2-s start was a
    'silent' minute of every inverter. A device never read is judged after max(limit, 10 wall s)."""
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    fast, real = RealtimeRules(plant, speed=30.0), RealtimeRules(plant)
    fast.evaluate(START)
    real.evaluate(START)
    fast.feed(
        [Reading(entity="testsite.inv1.ac_power", ts=START + timedelta(seconds=30), value=1.0)],
        START,
    )
    # at 30x: 10 wall s = 300 platform s for inv2, never read; inv1, read, has its 60-s limit
    lost = lambda rules, s: {c.device_id for c in rules.evaluate(START + timedelta(seconds=s))}  # noqa: E731
    assert "inv2" not in lost(fast, 299) and "inv2" in lost(fast, 301)
    limit_s = fast.limit_s("testsite", "inv1")
    assert limit_s < 300 and "inv1" in lost(fast, 30 + limit_s + 1)
    # real time: the grace (10 s) is inside the 60-s limit, nothing changes
    assert "inv2" not in lost(real, 59) and "inv2" in lost(real, 61)
