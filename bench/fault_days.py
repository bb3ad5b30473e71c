"""Randomized fault days (issue 17): scenarios the alert rules were never tuned on, drawn from a seed.

`fault_day(seed)` is a scenario spec like the files in bench/scenarios/: one plant of 3-5 inverters at a
random European site on a random summer day; history from 05:00 with two or three KPI-rule faults drawn
from efficiency drop, string degradation, soiling and a frozen weather sensor (each on its own device,
in daylight); a live window 12:40-15:00 with four real-time faults drawn from an inverter trip, a Modbus
gateway answering garbage, a grid outage, a string disconnect, a hot spot, a silent device and malformed
meter or weather payloads, one after the other with random starts and lengths. The expected rule of each
fault and the symptoms it may also raise are those of the hand-written scenarios.

`python -m bench.fault_days SEED` prints one as YAML.
"""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta

import yaml

SITES = [("zrh", 47.37, 8.54, "Europe/Zurich"), ("mad", 40.42, -3.70, "Europe/Madrid"),
         ("muc", 48.14, 11.58, "Europe/Berlin"), ("lyn", 45.76, 4.84, "Europe/Paris")]  # fmt: skip
# 30x: the silence limit's floor of 2 wall seconds (`alerts.realtime.STALL_WALL_S`, against a starved
# collector) is then 60 platform seconds, the rule's own limit; at 60x it was 120 s, and a silent device
# was scored on the harness's floor, not on the rule users run
SPEED = 30
TRIP_EVENTS = ["GROUND_FAULT", "OVER_TEMP", "DC_OVER_VOLT", "AC_OVER_VOLT"]


def _kpi_fault(kind: str, rng: random.Random, device: str, start: datetime) -> dict:
    """A KPI-rule fault of `kind` on `device` from `start` (UTC, daylight)."""
    hours = timedelta(minutes=rng.randint(90, 150))
    if kind == "efficiency_drop":
        return {"kind": kind, "device": device, "loss": round(rng.uniform(0.12, 0.25), 2),
                "start": start, "end": start + hours, "expect": ["underperformance"],
                "allow": ["low_efficiency"]}  # fmt: skip
    if kind == "string_degradation":
        return {"kind": kind, "device": device, "mppt": rng.randint(1, 2),
                "loss": round(rng.uniform(0.3, 0.5), 2), "start": start, "end": start + hours,
                "expect": ["string_outlier"], "allow": ["underperformance"]}  # fmt: skip
    if kind == "soiling_ramp":  # 20 % within about an hour
        return {"kind": kind, "device": device, "loss_per_day": 5.0, "max_loss": 0.2,
                "start": start, "end": start + hours, "expect": ["underperformance"]}  # fmt: skip
    return {"kind": "frozen_sensor", "device": "wx1", "metric": "poa_irradiance", "start": start,
            "end": start + timedelta(hours=1), "expect": ["data_quality"],
            "allow": ["underperformance", "availability_drop"]}  # fmt: skip


def _live_fault(kind: str, rng: random.Random, inverters: list[str], start: datetime) -> dict:
    """A real-time fault of `kind` from `start`, 10-30 minutes long."""
    inv = rng.choice(inverters)
    end = start + timedelta(minutes=rng.randint(12, 25))
    spec = {
        "inverter_trip": {"device": inv, "events": [rng.choice(TRIP_EVENTS)], "expect": ["equipment_fault"],
                          "allow": ["availability_drop", "underperformance"]},
        "modbus_garbage": {"device": inv, "expect": ["communication_lost"],
                           "allow": ["availability_drop", "data_quality", "quarantine_flood"]},
        "grid_outage": {"expect": ["grid_outage"], "allow": ["availability_drop", "data_quality",
                                                             "underperformance", "communication_lost"]},
        "string_disconnect": {"device": inv, "mppt": rng.randint(1, 2), "expect": ["string_fault"],
                              "allow": ["underperformance", "string_outlier"]},
        "hot_spot": {"device": inv, "mppt": rng.randint(1, 2), "delta_c": rng.randint(25, 35),
                     "expect": ["hot_spot"]},
        "device_silent": {"device": inv, "expect": ["communication_lost"],
                          "allow": ["availability_drop", "data_quality"]},
        "malformed_payloads": {"device": rng.choice(["wx1", "meter1"]), "every": 2,
                               "expect": ["data_quality"], "allow": ["quarantine_flood"]},
    }[kind]  # fmt: skip
    return {"kind": kind, **spec, "start": start, "end": end}


def fault_day(seed: int) -> dict:
    """A scenario spec (see the module docstring), the same for the same seed."""
    rng = random.Random(seed)
    site_id, lat, lon, tz = rng.choice(SITES)
    day = datetime(2026, 6, 1) + timedelta(days=rng.randrange(0, 75))
    at = lambda h, m=0: day.replace(hour=h, minute=m).isoformat() + "Z"  # noqa: E731
    n = rng.randint(3, 5)
    inverters = [f"inv{i + 1}" for i in range(n)]
    faults = []
    kinds = rng.sample(
        ["efficiency_drop", "string_degradation", "soiling_ramp", "frozen_sensor"], 3
    )
    devices = rng.sample(inverters, 3)
    slots = [
        7.0,
        9.0,
        10.5,
    ]  # UTC starts in daylight (random minutes added), before the live window
    for kind, device, hour in zip(kinds, devices, slots, strict=True):
        start = day + timedelta(hours=hour, minutes=rng.randint(0, 40))
        fault = _kpi_fault(kind, rng, device, start)
        fault["end"] = min(fault["end"], day + timedelta(hours=12, minutes=30))  # history only
        faults.append(fault)
    t = day + timedelta(hours=13, minutes=rng.randint(0, 10))
    for kind in rng.sample(["inverter_trip", "modbus_garbage", "grid_outage", "string_disconnect",
                            "hot_spot", "device_silent", "malformed_payloads"], 4):  # fmt: skip
        fault = _live_fault(kind, rng, inverters, t)
        faults.append(fault)
        t = fault["end"] + timedelta(minutes=rng.randint(8, 15))
    live_end = (faults[-1]["end"] + timedelta(minutes=10)).isoformat() + "Z"
    for f in faults:
        f["site"] = site_id
        f["start"], f["end"] = (f[k].isoformat() + "Z" for k in ("start", "end"))
    return {
        "name": f"random fault day (seed {seed})",
        "start": at(5),
        "live": {"start": at(12, 40), "end": max(at(15), live_end)},
        "speed": SPEED,
        "sites": [
            {"id": site_id, "latitude": lat, "longitude": lon, "timezone": tz, "inverters": n}
        ],
        "faults": faults,
    }


if __name__ == "__main__":
    print(yaml.safe_dump(fault_day(int(sys.argv[1])), sort_keys=False))
