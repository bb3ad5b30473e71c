"""Ingest speed: landing segments -> `samples`, against a plain COPY of the same rows, and a year of
history end to end through `pvp import`.

Prints, measured in the same run on the same database:
  - landing -> samples: what the ingest job does per segment (read and check the file, COPY to staging,
    insert new samples with ON CONFLICT, record the ledger and the hours touched), in rows/s;
  - the limit: a plain COPY of the same rows, one COPY per segment, into an (entity_id, ts, value)
    table with a primary key (no ledger, no duplicate handling, no checks);
  - `pvp import` of a wide CSV of `--days` × `--inverters` 1-minute data (ac_power and ac_energy per
    inverter, POA and module temperature), run as the command, then its segments loaded as the ingest
    job loads them: file rows and readings per second, end to end.
Target: landing -> samples / plain COPY >= 0.5. Both are measured ROUNDS times on emptied tables, the
order alternating, and the best of each is compared (the machine is shared).

Usage: python -m bench.ingest [--segments 200] [--days 365] [--inverters 20] [--database-url URL]
(without --database-url an embedded PostgreSQL is started in a temporary folder).
"""

from __future__ import annotations

import argparse
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
from pv_platform.landing import (
    SegmentWriter,
    TimeLimits,
    archive,
    list_closed,
    read_segment,
    segment_path,
)
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import ensure_database, start_embedded_postgres
from pv_platform.storage import Database

SEGMENT_ROWS = 5000  # as the collector writes them (PVP_SEGMENT_MAX_ROWS default)
START = datetime(2025, 1, 1, tzinfo=UTC)
ROUNDS = 3
METRICS = ("ac_power", "ac_energy", "dc_power", "dc_voltage", "dc_current")


def write_segments(landing: Path, segments: int, inverters: int) -> tuple[int, list[str]]:
    """`segments` collector-like segments: every inverter's metrics of a minute together, in time order."""
    keys = [f"bench.inv{i:02d}.{m}" for i in range(1, inverters + 1) for m in METRICS]
    writer = SegmentWriter(landing, "bench", max_rows=SEGMENT_ROWS, max_age_s=1e9)
    minutes = segments * SEGMENT_ROWS // len(keys) + 1
    rng = np.random.default_rng(1)
    rows = 0
    for m in range(minutes):
        ts = (START + timedelta(minutes=m)).isoformat()
        values = rng.uniform(0, 1e5, len(keys)).tolist()
        writer.add_rows([f"{k},{ts},{v!r}\n" for k, v in zip(keys, values, strict=True)], {})
        rows += len(keys)
        if len(list_closed(landing)) >= segments:
            break
    writer.close()
    return rows, list_closed(landing)


def _empty(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE samples, ingest_ledger, telemetry_changes, quarantine, copy_baseline"
        )


def ingest_round(db: Database, landing: Path, ids: list[str]) -> tuple[int, float]:
    """What the ingest job does with each segment; (rows inserted, seconds)."""
    limits = TimeLimits.for_plant(None)
    t0 = time.perf_counter()
    inserted = 0
    for sid in ids:
        segment = read_segment(segment_path(landing, sid), limits)
        inserted += db.telemetry.ingest_segment(segment).inserted
    return inserted, time.perf_counter() - t0


def copy_round(db: Database, bodies: list[str]) -> tuple[int, float]:
    """A plain COPY per segment of the same rows (entity ids instead of keys) into a keyed table."""
    t0 = time.perf_counter()
    rows = 0
    for body in bodies:
        with db.engine.begin() as conn:
            raw = conn.connection.driver_connection
            with (
                raw.cursor() as cur,
                cur.copy("COPY copy_baseline (entity_id, ts, value) FROM STDIN (FORMAT csv)") as cp,
            ):
                cp.write(body)
                rows += body.count("\n")
    return rows, time.perf_counter() - t0


def bench_segments(db: Database, landing: Path, segments: int, inverters: int) -> dict:
    rows, ids = write_segments(landing, segments, inverters)
    with db.engine.begin() as conn:  # the entities exist, as they do after the first live segment
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS copy_baseline (entity_id integer, ts timestamptz,"
            " value double precision, PRIMARY KEY (entity_id, ts))"
        )
        for i in range(1, inverters + 1):
            for m in METRICS:
                conn.exec_driver_sql(
                    "INSERT INTO entities (key, site_id, device_id, metric) VALUES (%s, 'bench', %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (f"bench.inv{i:02d}.{m}", f"inv{i:02d}", m),
                )
        key_ids = dict(conn.exec_driver_sql("SELECT key, id FROM entities").all())
        db.dialect.ensure_partitions(conn, START, START + timedelta(days=60))
    limits = TimeLimits.for_plant(None)
    bodies = []
    for sid in ids:
        body = read_segment(segment_path(landing, sid), limits).csv_body
        bodies.append(
            "".join(
                f"{key_ids[k]},{rest}"
                for k, rest in (line.split(",", 1) for line in body.splitlines(keepends=True))
            )
        )
    best = {"ingest": float("inf"), "copy": float("inf")}
    for r in range(ROUNDS):
        for what in ("ingest", "copy") if r % 2 == 0 else ("copy", "ingest"):
            _empty(db)
            n, s = ingest_round(db, landing, ids) if what == "ingest" else copy_round(db, bodies)
            assert n == rows, f"{what} loaded {n} of {rows} rows"
            best[what] = min(best[what], s)
            print(f"round {r + 1} {what:<7} {rows / s:>10,.0f} rows/s", flush=True)
    return {"rows": rows, "ingest_rps": rows / best["ingest"], "copy_rps": rows / best["copy"]}


def history_csv(path: Path, days: int, inverters: int) -> int:
    """A SCADA-style wide CSV: local time with offset, power in kW, energy counters in kWh."""
    from integrations.simulator.physics import energy_wh, inverter_output, weather

    plant = bench_plant(inverters)
    site = plant.sites[0]
    rows = 0
    first = True
    counters = {d.id: 1e6 for d in site.inverters}
    for day in range(0, days, 7):
        t0 = START + timedelta(days=day)
        times = pd.date_range(t0, t0 + timedelta(days=min(7, days - day)), freq="1min", inclusive="left")  # fmt: skip
        wx = weather(site, times, seed=1)
        frame = {"time": times.tz_convert(site.timezone).strftime("%Y-%m-%dT%H:%M:%S%z")}
        frame["POA W/m2"] = wx["poa_irradiance"].round(1).to_numpy()
        frame["T_mod C"] = wx["module_temperature"].round(2).to_numpy()
        for inv in site.inverters:
            out = inverter_output(inv, wx, 1, site.id)
            counter = energy_wh(out["ac_power"], counters[inv.id])
            counters[inv.id] = float(counter.iloc[-1])
            frame[f"{inv.id} P kW"] = (out["ac_power"] / 1e3).round(3).to_numpy()
            frame[f"{inv.id} E kWh"] = (counter / 1e3).round(3).to_numpy()
        pd.DataFrame(frame).to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False
        rows += len(times)
    return rows


def bench_plant(inverters: int):
    devices = [
        {"id": f"inv{i:02d}", "kind": "inverter", "integration": "simulator",
         "p_dc_kw": 110.0, "p_ac_kw": 100.0}
        for i in range(1, inverters + 1)
    ]  # fmt: skip
    devices.append({"id": "wx1", "kind": "weather_station", "integration": "simulator"})
    site = {"id": "hist", "name": "History", "latitude": 47.37, "longitude": 8.54,
            "timezone": "Europe/Zurich", "commissioning_date": "2024-12-01", "devices": devices}  # fmt: skip
    return parse_plant({"sites": [site]}, "<bench>")


def bench_import(db: Database, url: str, folder: Path, days: int, inverters: int) -> dict:
    """`pvp import` of the CSV as a subprocess, then its segments loaded as the ingest job does."""
    csv, plant_file, landing = (
        folder / "history.csv",
        folder / "plant.yaml",
        folder / "landing-hist",
    )
    file_rows = history_csv(csv, days, inverters)
    dump_plant(bench_plant(inverters), plant_file)
    columns = [f"--column=inv{i:02d} {q}=inv{i:02d}.{m}:{u}" for i in range(1, inverters + 1)
               for q, m, u in (("P kW", "ac_power", "kW"), ("E kWh", "ac_energy", "kWh"))]  # fmt: skip
    columns += [
        "--column=POA W/m2=wx1.poa_irradiance:W/m2",
        "--column=T_mod C=wx1.module_temperature",
    ]
    env = {**os.environ, "PVP_PLANT_FILE": str(plant_file), "PVP_LANDING_DIR": str(landing)}
    pvp = str(Path(sys.executable).with_name("pvp"))
    t0 = time.perf_counter()
    subprocess.run([pvp, "import", str(csv), "--site", "hist", "--time-column", "time",
                    "--no-progress", *columns], env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    landed_s = time.perf_counter() - t0
    limits = TimeLimits.for_plant(bench_plant(inverters))
    readings = 0
    for sid in list_closed(landing):
        readings += db.telemetry.ingest_segment(
            read_segment(segment_path(landing, sid), limits)
        ).inserted
        archive(landing, sid)
    total_s = time.perf_counter() - t0
    return {"file_rows": file_rows, "readings": readings, "landed_s": landed_s, "total_s": total_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--inverters", type=int, default=20)
    parser.add_argument("--days", type=int, default=365, help="of the `pvp import` history")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pvp-bench-ingest-"))
    server = None
    if args.database_url:
        url = ensure_database(args.database_url, f"pvp_bench_ingest_{os.getpid()}")
    else:
        server = start_embedded_postgres(folder / "pg")
        url = ensure_database(server.get_uri(), "pvp_bench_ingest")
    db = Database(url)
    db.migrations.migrate()
    try:
        seg = bench_segments(db, folder / "landing", args.segments, args.inverters)
        ratio = seg["ingest_rps"] / seg["copy_rps"]
        print(f"landing -> samples {seg['ingest_rps']:,.0f} rows/s, plain COPY {seg['copy_rps']:,.0f}"
              f" rows/s ({seg['rows']:,} rows in {args.segments} segments): ratio {ratio:.2f} (target >= 0.5)")  # fmt: skip
        emit("ingest", "landing -> samples (rows/s)", seg["ingest_rps"], "rows/s",
             "plain COPY into a keyed table", seg["copy_rps"], ">= 0.5", ratio >= 0.5)  # fmt: skip
        imp = bench_import(db, url, folder, args.days, args.inverters)
        rps = imp["readings"] / imp["total_s"]
        print(f"pvp import: {args.days} days x {args.inverters} inverters, {imp['file_rows']:,} file rows,"
              f" {imp['readings']:,} readings: landed in {imp['landed_s']:.0f} s, in samples after"
              f" {imp['total_s']:.0f} s: {rps:,.0f} readings/s end to end")  # fmt: skip
        emit("ingest", f"pvp import {args.days} d x {args.inverters} inv (rows/s)", rps, "rows/s",
             "plain COPY into a keyed table", seg["copy_rps"], "report", True)  # fmt: skip
    finally:
        db.dispose()
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
