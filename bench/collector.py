"""Collector throughput: N simulated SunSpec inverters (default 200) polled every second over Modbus TCP
into the landing, beside the raw landing-write limit measured in the same run.

The simulator runs in a child process (the other core); the collector runs here, on one core.
Prints readings per second, the poll-cycle time (p50/p95 of one device's update), the fraction of
device-seconds that got their poll, and the ratio to the raw SegmentWriter limit.

Usage: python -m bench.collector [--devices 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.report import emit
from pv_platform.collector import Collector
from pv_platform.landing import SegmentWriter
from pv_platform.plant import parse_plant
from pv_platform.readings import Reading
from pv_platform.services import free_port
from pv_platform.settings import Settings

DEVICES_PER_SERVER = 50  # unit ids 1..50 behind one TCP port, like an RS-485 gateway


def bench_plant(devices: int, ports: list[int]) -> dict:
    inverters = [
        {
            "id": f"inv{i:03d}", "kind": "inverter", "integration": "sunspec_modbus", "p_dc_kw": 110.0, "p_ac_kw": 100.0,
            "config": {"host": "127.0.0.1", "port": ports[i // DEVICES_PER_SERVER], "unit_id": i % DEVICES_PER_SERVER + 1,
                       "poll_interval_s": 1.0, "timeout_s": 2.0},
        }
        for i in range(devices)
    ]  # fmt: skip
    return {
        "sites": [
            {
                "id": "bench",
                "name": "Bench",
                "latitude": 47.4,
                "longitude": 8.5,
                "devices": inverters,
            }
        ]
    }


def _serve(plant_dict: dict, ready, stop_after_s: float) -> None:
    from integrations.simulator.runner import run_simulator

    plant = parse_plant(plant_dict)

    async def main() -> None:
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run_simulator(plant, None, stop, update_interval_s=5.0, ready=started)
        )
        await started.wait()
        ready.set()
        await asyncio.sleep(stop_after_s)
        stop.set()
        await task

    asyncio.run(main())


def raw_landing_rate(landing: Path, seconds: float = 3.0) -> float:
    """Readings per second the SegmentWriter takes when nothing else happens (fsync'd segments included)."""
    writer = SegmentWriter(landing / "raw", writer_name="raw")
    now = datetime.now(UTC)
    batch = [
        Reading(entity=f"bench.inv{i:03d}.ac_power", ts=now, value=float(i)) for i in range(16)
    ]
    meta = {r.entity: {"unit": "W", "device_class": "power"} for r in batch}
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fresh = [
            Reading(entity=r.entity, ts=datetime.now(UTC), value=r.value) for r in batch
        ]  # as a poll makes them
        writer.add(fresh, meta)
        writer.tick()
        n += len(fresh)
    writer.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    ports = [
        free_port() for _ in range((args.devices + DEVICES_PER_SERVER - 1) // DEVICES_PER_SERVER)
    ]
    plant_dict = bench_plant(args.devices, ports)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    sim = ctx.Process(target=_serve, args=(plant_dict, ready, args.seconds + 60), daemon=True)
    sim.start()
    assert ready.wait(120), "simulator did not start"
    os.sched_setaffinity(0, {0})  # the collector on one core
    landing = Path(tempfile.mkdtemp(prefix="pvp-bench-"))
    raw_rate = raw_landing_rate(landing)

    plant = parse_plant(plant_dict)
    collector = Collector(plant, Settings(), landing / "collector", None)
    durations: list[float] = []
    for c in collector.coordinators:
        original = c.poll_once

        async def timed(original=original):
            t = time.perf_counter()
            result = await original()
            durations.append(time.perf_counter() - t)
            return result

        c.poll_once = timed

    async def run() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(5.0)  # connect and scan every device first
        before, polls_before = collector.readings_total, len(durations)
        t0 = time.perf_counter()
        await asyncio.sleep(args.seconds)
        elapsed = time.perf_counter() - t0
        readings, polls = collector.readings_total - before, len(durations) - polls_before
        stop.set()
        await task
        return readings / elapsed, polls / (args.devices * elapsed), elapsed

    cpu0 = time.process_time()
    rate, poll_fraction, elapsed = asyncio.run(run())
    cpu_share = (time.process_time() - cpu0) / (elapsed + 5.0)
    cycle = sorted(durations[-int(args.devices * args.seconds) :])
    p50, p95 = statistics.median(cycle), cycle[int(0.95 * (len(cycle) - 1))]
    available = sum(c.available for c in collector.coordinators)
    print(
        f"{args.devices} SunSpec devices on Modbus TCP, polled every 1 s for {elapsed:.0f} s; collector on one core"
    )
    print(f"{'what':<44} {'value':>14}")
    print(f"{'raw landing write limit (readings/s)':<44} {raw_rate:>14,.0f}")
    print(f"{'collector into the landing (readings/s)':<44} {rate:>14,.0f}")
    print(f"{'  ratio to the raw limit':<44} {rate / raw_rate:>14.3f}")
    print(f"{'device polls per device-second (target 1.0)':<44} {poll_fraction:>14.3f}")
    print(
        f"{'poll-cycle time of one device p50 / p95 [ms]':<44} {p50 * 1000:>6.1f} / {p95 * 1000:>5.1f}"
    )
    print(f"{'devices available at the end':<44} {available:>14d}")
    print(f"{'collector CPU use (share of its one core)':<44} {cpu_share:>14.2f}")
    emit(
        "collector",
        "readings/s into the landing",
        rate,
        "/s",
        "raw landing write",
        raw_rate,
        "info",
        True,
    )
    emit(
        "collector",
        "polls per device-second",
        poll_fraction,
        "",
        "one poll a second",
        1.0,
        ">= 0.99",
        poll_fraction >= 0.99,
    )
    emit(
        "collector",
        "collector CPU (share of one core)",
        cpu_share,
        "",
        "one core",
        1.0,
        "< 1",
        cpu_share < 1.0,
    )
    sim.terminate()


if __name__ == "__main__":
    main()
