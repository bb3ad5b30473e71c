"""A plant's history brought in as a user does: `pvp import` of a year of 1-minute SCADA data, then the
real `dagster-daemon` alone ingests it and computes its hours, alerts, local days, months and year
(`history_backfill_sensor`: one backfill), nobody launching anything.

Prints, from the command's start: when the import had landed, when the daemon had loaded every segment,
when the backfill covered every hour (hourly KPIs and KPI alerts) and when it completed (the site's
days, months and year); the backfill's runs with their durations; and the KPI hours per second of the
hourly runs against the readings per second of the ingest, measured in the same run.

Usage: python -m bench.history [--days 365] [--inverters 20] [--database-url URL]
(without --database-url an embedded PostgreSQL is started in a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

from bench.alert_daemon import start_daemon, stop_daemon
from bench.ingest import bench_plant, history_csv
from bench.report import emit
from pv_platform.plant import dump_plant
from pv_platform.services import ensure_database, start_embedded_postgres
from pv_platform.storage import Database
from pv_platform.storage.urls import sqlalchemy_url

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT_S = 4 * 3600


def _environment(folder: Path, url: str, dagster_url: str, plant_file: Path, landing: Path) -> dict:
    """The daemon's and the command's environment: the repository's dagster.yaml in a new home."""
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(plant_file), PVP_LANDING_DIR=str(landing),
        PVP_DAGSTER_STORAGE_URL=sqlalchemy_url(dagster_url, "psycopg2"), DAGSTER_HOME=str(home),
    )  # fmt: skip
    return env


def _count(db: Database, sql: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar() or 0)


def _runs(env: dict) -> list[tuple[str, float]]:
    """(assets, duration [s]) of each finished run of the history backfill."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    from pv_platform.defs.kpis.backfills import history_backfills

    os.environ["PVP_DAGSTER_STORAGE_URL"] = env["PVP_DAGSTER_STORAGE_URL"]  # dagster.yaml's
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        out = []
        for backfill in history_backfills(instance, list(BulkActionStatus)):
            for record in instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
            ):
                assets = "+".join(
                    sorted(k.path[-1] for k in record.dagster_run.asset_selection or ())
                )
                if record.start_time and record.end_time:
                    out.append((assets, record.end_time - record.start_time))
        return out
    finally:
        instance.dispose()


def run(folder: Path, url: str, dagster_url: str, days: int, inverters: int) -> dict:
    """The import and the daemon's work on it, timed from the command's start."""
    csv, plant_file, landing = folder / "history.csv", folder / "plant.yaml", folder / "landing"
    file_rows = history_csv(csv, days, inverters)
    dump_plant(bench_plant(inverters), plant_file)
    env = _environment(folder, url, dagster_url, plant_file, landing)
    subprocess.run([BIN / "pvp", "migrate"], env=env, check=True, capture_output=True)
    columns = [f"--column=inv{i:02d} {q}=inv{i:02d}.{m}:{u}" for i in range(1, inverters + 1)
               for q, m, u in (("P kW", "ac_power", "kW"), ("E kWh", "ac_energy", "kWh"))]  # fmt: skip
    columns += [
        "--column=POA W/m2=wx1.poa_irradiance:W/m2",
        "--column=T_mod C=wx1.module_temperature",
    ]
    daemon = start_daemon(env, folder)
    db = Database(url, pool_size=1)
    marks: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        command = subprocess.Popen(
            [BIN / "pvp", "import", str(csv), "--site", "hist", "--time-column", "time",
             "--no-progress", "--wait", *columns], env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        for line in command.stdout:
            if "landed" in line and "landed" not in marks:
                marks["landed"] = time.perf_counter() - t0
        if command.wait() != 0:
            raise RuntimeError(f"pvp import failed with {command.returncode}")
        marks["ingested"] = time.perf_counter() - t0
        marks.setdefault("landed", marks["ingested"])
        hours = days * 24
        while time.perf_counter() - t0 < TIMEOUT_S:
            done = _count(db, "SELECT count(DISTINCT period_start) FROM kpi_hourly")
            if "hours" not in marks and done >= hours:
                marks["hours"] = time.perf_counter() - t0
            if _count(db, "SELECT count(*) FROM kpi_yearly WHERE device_id = '*'"):
                marks["year"] = time.perf_counter() - t0
                break
            time.sleep(10)
        else:
            raise RuntimeError(f"the year was not computed within {TIMEOUT_S} s")
        readings = _count(db, "SELECT count(*) FROM samples")
        alerts = _count(db, "SELECT count(*) FROM alerts")
    finally:
        db.dispose()
        stop_daemon(daemon)
    return {"file_rows": file_rows, "readings": readings, "alerts": alerts, **marks,
            "runs": _runs(env)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--inverters", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pvp-bench-history-"))
    server = None
    if args.database_url:
        admin = args.database_url
    else:
        server = start_embedded_postgres(folder / "pg")
        admin = server.get_uri()
    url = ensure_database(admin, f"pvp_bench_history_{os.getpid()}")
    dagster_url = ensure_database(admin, f"pvp_bench_history_dagster_{os.getpid()}")
    try:
        r = run(folder, url, dagster_url, args.days, args.inverters)
    finally:
        if server is not None:
            server.cleanup()
    by_assets: dict[str, list[float]] = defaultdict(list)
    for assets, seconds in r["runs"]:
        by_assets[assets].append(seconds)
    hours = args.days * 24
    hourly = sum(by_assets.get("alerts+hourly_kpis", []))
    ingest_rps = r["readings"] / (r["ingested"] - r["landed"] + 1e-9)
    print(f"{args.days} days x {args.inverters} inverters: {r['file_rows']:,} file rows, {r['readings']:,}"
          f" readings; from `pvp import`: landed after {r['landed']:.0f} s, loaded by the daemon after"
          f" {r['ingested']:.0f} s, every hour's KPIs and alerts after {r['hours']:.0f} s, the year after"
          f" {r['year']:.0f} s; {r['alerts']} alerts")  # fmt: skip
    for assets, seconds in sorted(by_assets.items()):
        print(f"  backfill runs of {assets}: {len(seconds)}, {sum(seconds):.0f} s in all"
              f" ({min(seconds):.0f}-{max(seconds):.0f} s each)")  # fmt: skip
    hours_ps = hours / hourly if hourly else 0.0
    print(f"hourly KPIs + alerts: {hours_ps:.1f} hours/s summed over their runs; ingest"
          f" {ingest_rps:,.0f} readings/s after landing")  # fmt: skip
    emit("history", f"import {args.days} d x {args.inverters} inv: the year (s)", r["year"], "s",
         "landed by pvp import (s)", r["landed"], "report", True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
