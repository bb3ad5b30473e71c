"""A 1,000-site fleet, modelled: does the Dagster side stay inside its limits at fleet scale?

Defines a plant file of `--sites` sites (20 inverters and a weather station each) spread over six time
zones, loads synthetic data through the storage layer's bulk paths (binary COPY), and measures:
  - definitions load: a fresh Python process loading the code location on that plant file, as the code
    server does (import + `Definitions.validate_loadable`);
  - the partitions: how many day, month and year partitions 10 years are (time-only: the same for
    any number of sites) against Dagster's advised 100,000 per asset;
  - one fleet hour's `hourly_kpis` run (1-minute samples of every inverter, `--step-s`), in process;
  - one fleet day's `daily_kpis` run: the local day of every site, in one run;
  - every sensor's and schedule's tick, evaluated against a PostgreSQL-backed Dagster instance holding
    three days of the fleet's hours (instance-backed evaluation of the sensor function, as the code
    server runs it for the daemon; not the gRPC round trip): the first tick after three fleet days
    landed at once (the heaviest one), and a steady tick after one more hour;
  - the History page's fleet view (`site=fleet`) in headless Chromium over `--history-days` days of
    every site's daily KPIs, from the deep link to the page's numbers.
Targets: each tick < 10 s (Dagster's limit is 60 s), partitions per asset < 100,000.

Usage: python -m bench.fleet [--sites 1000] [--step-s 60] [--history-days 365] [--database-url URL]
(without --database-url an embedded PostgreSQL is started in a temporary folder).
"""

from __future__ import annotations

import argparse
import atexit
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import emit

REPO = Path(__file__).resolve().parent.parent
ZONES = [  # (IANA zone, latitude, longitude) of the fleet's regions
    ("Europe/Zurich", 47.4, 8.5),
    ("Europe/London", 51.5, -0.1),
    ("America/New_York", 40.7, -74.0),
    ("America/Los_Angeles", 34.0, -118.2),
    ("Asia/Tokyo", 35.7, 139.7),
    ("Australia/Sydney", -33.9, 151.2),
]
INVERTERS = 20
HOUR = datetime(
    2026, 6, 21, 10, tzinfo=UTC
)  # the measured fleet hour (day in Europe and the US east)
DAY = "2026-06-21"  # the measured fleet day: every site's local 21 June
TICK_LIMIT_S = 10.0
ADVISED_PARTITIONS = 100_000


def _devices(site: int, step_s: int) -> list[dict]:
    wx = {"poa_irradiance": "poa", "module_temperature": "t_mod", "ambient_temperature": "t_amb"}
    return [
        {"id": f"inv{j:02d}", "kind": "inverter", "integration": "simulator", "p_dc_kw": 110.0,
         "p_ac_kw": 100.0, "config": {"poll_interval_s": step_s}}
        for j in range(1, INVERTERS + 1)
    ] + [{"id": "wx1", "kind": "weather_station", "integration": "mqtt",
          "config": {"topic": f"pvp/fleet/{site}/wx1", "fields": wx}}]  # fmt: skip


def fleet_plant(sites: int, step_s: int) -> dict:
    """`sites` sites round-robin over ZONES, each with INVERTERS inverters and a weather station."""
    return {
        "sites": [
            {
                "id": f"s{i:04d}",
                "name": f"Site {i}",
                "latitude": ZONES[i % 6][1] + (i % 7) * 0.1,
                "longitude": ZONES[i % 6][2] + (i % 5) * 0.1,
                "timezone": ZONES[i % 6][0],
                "commissioning_date": "2026-01-01",
                "devices": _devices(i, step_s),
            }  # fmt: skip
            for i in range(sites)
        ]
    }


def load_samples(db, plant, step_s: int) -> tuple[int, float]:
    """1-minute (`step_s`) samples of every device for HOUR and its edges, simulated once per zone and
    given to each site of the zone, loaded per 50 sites as in-memory segments through
    `TelemetryStore.ingest_segment` (binary COPY). Returns (rows, seconds)."""
    from integrations.simulator.devices import backfill_frames
    from pv_platform.defs.kpis.assets import HOURLY_METRICS
    from pv_platform.landing.format import Segment
    from pv_platform.segment_rows import Columns
    from pv_platform.vocabulary import Metric

    wanted = {str(m) for m in [*HOURLY_METRICS, Metric.CABINET_TEMPERATURE]}
    start, end = HOUR - timedelta(minutes=20), HOUR + timedelta(minutes=80)
    rows, t0 = 0, time.perf_counter()
    for zone, _, _ in ZONES:
        sites = [s for s in plant.sites if s.timezone == zone]
        parts = []  # (device.metric, ts_us, values) of the zone's first site
        for device_id, frame in backfill_frames(sites[0], 3, start, end, step_s).items():
            ts_us = frame.index.as_unit("us").asi8
            for metric in [c for c in frame.columns if c in wanted]:
                parts.append((f"{device_id}.{metric}", ts_us, frame[metric].to_numpy(float)))
        for first in range(0, len(sites), 50):
            chunk = sites[first : first + 50]
            keys = [f"{s.id}.{k}" for s in chunk for k, _, _ in parts]
            n = len(parts)
            codes = np.concatenate(
                [
                    np.full(len(p[1]), i * n + j)
                    for i in range(len(chunk))
                    for j, p in enumerate(parts)
                ]
            )
            ts = np.concatenate([p[1] for _ in chunk for p in parts])
            values = np.concatenate([p[2] for _ in chunk for p in parts])
            cols = Columns(keys, codes.astype(np.int64), ts.astype(np.int64), values)
            segment = Segment(
                f"fleet-{zone}-{first}", Path("/dev/null"), {}, "\n" * len(cols), cols
            )
            rows += db.telemetry.ingest_segment(segment).inserted
    return rows, time.perf_counter() - t0


def copy_hours(db, hours: list[datetime]) -> tuple[int, float]:
    """HOUR's computed kpi_hourly rows copied to each of `hours` (binary COPY): the fleet's three days
    of hours for the rollups and the sensors, without computing each. Returns (rows, seconds)."""
    t0 = time.perf_counter()
    template = db.kpis.read("kpi_hourly", HOUR, HOUR + timedelta(hours=1))
    template = template.drop(columns=[c for c in ("computed_at",) if c in template.columns])
    written = 0
    for hour in hours:
        if hour == HOUR:
            continue
        rows = template.assign(period_start=pd.Timestamp(hour))
        written += db.kpis.replace("kpi_hourly", hour, hour + timedelta(hours=1), rows)
    return written, time.perf_counter() - t0


def definitions_load_s(env: dict) -> float:
    """A fresh process loading the code location on the fleet's plant file, as the code server does."""
    probe = (
        "import time; t = time.perf_counter(); import dagster as dg;"
        " from pv_platform.definitions import build_definitions;"
        " dg.Definitions.validate_loadable(build_definitions());"
        " print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=600, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def tick_all(defs, instance, resources, cursors: dict, at: datetime) -> dict[str, float]:
    """Every sensor and schedule evaluated once on the instance (cursors kept): name -> seconds."""
    import dagster as dg

    took = {}
    repo = defs.get_repository_def()
    for sensor in repo.sensor_defs:
        ctx = dg.build_sensor_context(
            instance=instance,
            resources=resources,
            definitions=defs,
            cursor=cursors.get(sensor.name),
        )
        # (the daemon's code server evaluates with the instance as its dynamic partitions store)
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            result, took[sensor.name] = timed(sensor.evaluate_tick, ctx)
        cursors[sensor.name] = result.cursor
        for request in result.dynamic_partitions_requests or []:  # as the daemon does
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        took[f"{sensor.name} requests"] = len(result.run_requests or [])
    for schedule in repo.schedule_defs:
        ctx = dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=at, repository_def=repo
        )
        result, took[schedule.name] = timed(schedule.evaluate_tick, ctx)
        took[f"{schedule.name} requests"] = len(result.run_requests or [])
    return took


def history_page_s(env: dict, sites: int, days: int, tmp: Path) -> tuple[float, float]:
    """The History page's fleet view in headless Chromium, from the deep link to 'rows of N sites':
    (best cold load of 3 over 7 days, best of 3 over `days` days) [s]."""
    from playwright.sync_api import sync_playwright

    from bench.dashboard import CHROMIUM_ARGS
    from pv_platform.services import free_port, port_is_open

    port = free_port(5360)
    panel = subprocess.Popen(
        [str(Path(sys.executable).parent / "pvp"), "dashboard", "--port", str(port)],
        env=env, cwd=REPO, stdout=open(tmp / "panel.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    try:
        while not port_is_open("127.0.0.1", port):
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}/app"
        best = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for span in (7, days):
                loads = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    page.goto(f"{base}?page=1&site=fleet&days={span}&grain=day", timeout=300_000)
                    page.wait_for_selector(f"text=rows of {sites} sites", timeout=180_000)
                    loads.append(time.perf_counter() - t0)
                best[span] = min(loads)
            browser.close()
    finally:
        panel.terminate()
        panel.wait(30)
    return best[7], best[days]


def _prepare(args, tmp: Path) -> tuple[str, dict, object]:
    """The database, the plant file and the environment the code location and dashboard read."""
    from pv_platform.plant import dump_plant, parse_plant
    from pv_platform.services import ensure_database, start_embedded_postgres

    if args.database_url:
        url = args.database_url
    else:
        server = start_embedded_postgres(tmp / "pg")
        atexit.register(server.cleanup)  # stopped when the bench ends, however it ends
        url = ensure_database(server.get_uri(), "bench")
    t0 = time.perf_counter()
    plant = parse_plant(fleet_plant(args.sites, args.step_s), "<bench>")
    dump_plant(plant, tmp / "plant.yaml")
    print(f"plant file: {args.sites} sites x {INVERTERS + 1} devices in {len(ZONES)} zones"
          f" ({(tmp / 'plant.yaml').stat().st_size / 1e6:.1f} MB), {time.perf_counter() - t0:.1f} s")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp / "plant.yaml"),
               PVP_LANDING_DIR=str(tmp / "landing"))  # fmt: skip
    os.environ.update(env)  # the in-process definitions read the same
    return url, env, plant


def _partitions() -> dict[str, int]:
    """Partitions per asset over 10 years of days, months and years (time-only: any fleet size)."""
    from pv_platform.defs.partitions import daily, hourly, monthly, yearly

    years = 10
    return {
        "hourly": years * 8766,
        "daily": years * 366 if daily.cron_schedule else 0,
        "monthly": years * 12 if monthly.cron_schedule else 0,
        "yearly": years if yearly.cron_schedule else 0,
        "hourly (defined now)": len(hourly.get_partition_keys()),
    }


def _history(db, plant, days: int) -> float:
    """`days` of daily site rows per site (bench.dashboard's plausible ones) into kpi_daily."""
    from bench.dashboard import daily_rows

    t0 = time.perf_counter()
    rows = daily_rows(plant, days)
    db.kpis.replace("kpi_daily", rows["period_start"].min(),
                    rows["period_start"].max() + timedelta(days=1), rows)  # fmt: skip
    return time.perf_counter() - t0


def _runs(defs, instance, resources, db, plant, step_s: int) -> dict:
    """Samples in, one fleet hour computed, three days of hours copied, one fleet day rolled up."""
    import dagster as dg

    from pv_platform.defs.kpis.assets import daily_kpis, hourly_kpis
    from pv_platform.defs.kpis.planning import hour_key

    out: dict = {}
    out["sample rows"], out["sample load s"] = load_samples(db, plant, step_s)
    cpu0 = time.process_time()
    run, out["hourly_kpis run s"] = timed(
        dg.materialize, [hourly_kpis], partition_key=hour_key(HOUR), instance=instance,
        resources=resources,
    )  # fmt: skip
    assert run.success
    out["hourly_kpis run CPU s"] = (
        time.process_time() - cpu0
    )  # the wall time waits on a busy machine
    first = datetime(2026, 6, 20, 12, tzinfo=UTC)  # every zone's 21 June, and more
    hours = [first + timedelta(hours=i) for i in range(72)]
    out["hourly rows copied"], out["hourly copy s"] = copy_hours(db, hours)
    for hour in hours:  # as ingest and the hourly runs would have reported them
        for key in ("telemetry", "hourly_kpis"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=hour_key(hour))
            )
    cpu0 = time.process_time()
    run, out["daily_kpis run s"] = timed(
        dg.materialize, [daily_kpis], partition_key=DAY, instance=instance, resources=resources
    )
    assert run.success
    out["daily_kpis run CPU s"] = time.process_time() - cpu0
    out["daily sites"] = len(
        run.asset_materializations_for_node("daily_kpis")[0].metadata["sites"].value
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--step-s", type=int, default=60)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pvp-bench-fleet-"))
    url, env, plant = _prepare(args, tmp)
    import dagster as dg

    from pv_platform.definitions import build_definitions
    from pv_platform.defs.resources import platform_resources
    from pv_platform.storage import Database, sqlalchemy_url

    load_s = definitions_load_s(env)
    print(f"definitions load (fresh process, {args.sites} sites): {load_s:.1f} s", flush=True)
    parts = _partitions()
    print(f"partitions per asset over 10 years: {parts}")
    db = Database(url)
    db.migrations.migrate()
    db.plant.sync(plant)
    history_s = _history(db, plant, args.history_days)
    resources = platform_resources(url, str(tmp / "landing"), str(tmp / "plant.yaml"))
    defs = build_definitions(resources)
    storage = {"postgres": {"postgres_url": sqlalchemy_url(url, "psycopg2")}}
    with dg.instance_for_test(overrides={"storage": storage}) as instance:
        out = _runs(defs, instance, resources, db, plant, args.step_s)
        for k, v in out.items():
            print(f"  {k}: {v:,.1f}" if isinstance(v, float) else f"  {k}: {v:,}", flush=True)
        cursors: dict = {}
        # the sites as the rollup sensor's first tick registers them (the loss sensor may tick first)
        instance.add_dynamic_partitions("sites", [s.id for s in plant.sites])
        at = datetime(2026, 6, 21, 22, 20, tzinfo=UTC)  # Zurich's 21 June just closed
        first = tick_all(defs, instance, resources, cursors, at)
        # steady state: the live hour's telemetry lands, an earlier hour is recomputed
        instance.report_runless_asset_event(
            dg.AssetMaterialization("telemetry", partition="2026-06-23-12:00")
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization("hourly_kpis", partition="2026-06-23-11:00")
        )
        steady = tick_all(defs, instance, resources, cursors, at + timedelta(hours=1))
    for name, took in first.items():
        print(f"  tick {name}: first {took:,.2f}, steady {steady[name]:,.2f}")
    seven_s, year_s = history_page_s(env, args.sites, args.history_days, tmp)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"History fleet view, {args.sites} sites by day: 7 days {seven_s:.2f} s, "
          f"{args.history_days} days {year_s:.2f} s (daily history loaded in {history_s:.1f} s)")  # fmt: skip
    worst = max(v for k, v in {**first, **steady}.items() if not k.endswith("requests"))
    emit("fleet", f"slowest sensor/schedule tick, {args.sites} sites", worst, "s", "limit",
         TICK_LIMIT_S, f"< {TICK_LIMIT_S:.0f} s", worst < TICK_LIMIT_S)  # fmt: skip
    emit("fleet", "day partitions over 10 years (any fleet)", parts["daily"], "", "advised max",
         ADVISED_PARTITIONS, "< 100,000", parts["daily"] < ADVISED_PARTITIONS)  # fmt: skip
    emit("fleet", "definitions load", load_s, "s", "tick limit", TICK_LIMIT_S,
         "informational", True)  # fmt: skip
    emit("fleet", "one fleet hour: hourly_kpis run", out["hourly_kpis run s"], "s", "an hour",
         3600.0, "< 3600 s", out["hourly_kpis run s"] < 3600)  # fmt: skip
    emit("fleet", "one fleet day: daily_kpis run", out["daily_kpis run s"], "s", "an hour",
         3600.0, "< 3600 s", out["daily_kpis run s"] < 3600)  # fmt: skip
    emit("fleet", f"History fleet view, {args.history_days} days", year_s, "s", "7 days", seven_s,
         "informational", True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
