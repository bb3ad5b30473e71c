"""Loss analytics speed beside the KPI backfill of the same data: N days × M inverters of 1-minute
samples in PostgreSQL (default: a year × 20, as bench.kpi).

Measured in the same run on the same rows:
  - the KPI backfill (hourly + its checks + daily, 2 processes: `bench.kpi.backfill`) — the limit;
  - the analytics: the detector checks of every hour (`mask_checks`: stale day and night, interpolated,
    clipping), run on the samples each weekly hourly run already holds, in 2 processes as the backfill;
    then the site's loss analytics (`loss_analytics` asset work: read `kpi_daily`, soiling, degradation,
    waterfall, write `loss_daily` / `degradation`, and the POA / clock detectors over 14 days of samples).
Target: analytics <= 1 x the KPI backfill. Each is measured twice, interleaved; the best of each counts.

Usage: python -m bench.losses [--days 365] [--inverters 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import pandas as pd

from bench.kpi import CHUNK_DAYS, START, backfill, bench_plant, load
from bench.report import emit
from pv_platform.analytics.hour_checks import mask_checks
from pv_platform.analytics.losses import analyse_site
from pv_platform.analytics.site_checks import site_findings
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS
from pv_platform.services import ensure_database, start_embedded_postgres
from pv_platform.storage import Database

ROUNDS = 2


def _mask_weeks(url: str, inverters: int, chunks: list[int], days: int) -> tuple[float, Counter]:
    """One worker's share of the hour checks: (seconds computing, failed site-hours per check); the
    samples are read outside the clock, as the hourly asset has them already."""
    db, plant = Database(url), bench_plant(inverters)
    spent, failed = 0.0, Counter()
    for chunk in chunks:
        start = START + timedelta(days=chunk)
        end = start + timedelta(days=min(CHUNK_DAYS, days - chunk))
        samples = db.telemetry.sample_set(start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS)
        t = time.perf_counter()
        failed.update(o.name for o in mask_checks(samples, plant, start, end) if not o.passed)
        spent += time.perf_counter() - t
    db.dispose()
    return spent, failed


def hour_checks(url: str, inverters: int, days: int, workers: int = 2) -> tuple[float, Counter]:
    """Wall time of the detector checks over the period in `workers` processes: the slowest worker's
    computing seconds (their reads belong to the backfill); and the failed site-hours found."""
    chunks = list(range(0, days, CHUNK_DAYS))
    shares = [chunks[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        results = list(
            pool.map(_mask_weeks, [url] * workers, [inverters] * workers, shares, [days] * workers)
        )
    return max(s for s, _ in results), sum((f for _, f in results), Counter())


def site_analytics(db: Database, plant, days: int) -> tuple[float, pd.DataFrame]:
    """The loss_analytics asset's work for the site; returns (seconds, degradation rows)."""
    site = plant.sites[0]
    t = time.perf_counter()
    end = START + timedelta(days=days + 1)
    daily = db.kpis.read("kpi_daily", START - timedelta(days=1), end, site.id)
    losses, degradation = analyse_site(daily, site.id)
    db.losses.replace_daily(site.id, losses)
    db.losses.replace_degradation(site.id, degradation)
    last = (START + timedelta(days=days)).replace(hour=0)
    samples = db.telemetry.sample_set(
        last - timedelta(days=14), last, ["poa_irradiance", "ac_power"], site.id
    )
    site_findings(samples, site, last - timedelta(days=14), last)
    return time.perf_counter() - t, degradation


def report(rows, args, kpi_runs, kpi_s, checks_s, site_s, failed, degradation_rows) -> None:
    """Print the table and emit the `make bench` row."""
    analytics_s = checks_s + site_s
    ratio = analytics_s / kpi_s
    print(
        f"rows: {rows:,} samples ({args.days} days x {args.inverters} inverters x 1 min, + weather)"
    )
    print(
        f"best of {ROUNDS}, interleaved: KPI backfills "
        + ", ".join(f"{x:.1f}" for x in kpi_runs)
        + " s"
    )
    print(f"{'what':<52} {'seconds':>9} {'x KPI backfill':>15}")
    print(f"{'KPI backfill: hourly+checks+daily, 2 procs':<52} {kpi_s:>9.1f} {1.0:>15.2f}")
    print(
        f"{'detector checks of every hour (2 procs)':<52} {checks_s:>9.1f} {checks_s / kpi_s:>15.2f}"
    )
    print(
        f"{'site loss analytics (soiling, YoY, waterfall, detectors)':<52} {site_s:>9.1f} {site_s / kpi_s:>15.2f}"
    )
    print(f"{'analytics total':<52} {analytics_s:>9.1f} {ratio:>15.2f}")
    print(
        f"site-hours flagged per detector check: {dict(failed) or 'none'}; degradation rows: {degradation_rows} (one year: no rate yet)"
    )
    print(f"target analytics <= 1.0 x KPI backfill: {'met' if ratio <= 1.0 else 'NOT met'}")
    emit(
        "losses",
        "loss analytics, a year x inverters",
        analytics_s,
        "s",
        "KPI backfill",
        kpi_s,
        "<= 1",
        ratio <= 1.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--inverters", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    plant = bench_plant(args.inverters)
    if args.database_url:
        url = args.database_url
    else:
        server = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="pvp-bench-")) / "pg")
        url = ensure_database(server.get_uri(), "bench")
    db = Database(url)
    db.migrations.migrate()
    db.plant.sync(plant)
    rows = load(db, plant, args.days)
    kpi_runs, check_runs, site_runs = [], [], []
    for _ in range(ROUNDS):
        with db.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE kpi_hourly, kpi_daily")
        hourly_s, daily_s, _, _ = backfill(url, args.inverters, args.days)
        kpi_runs.append(hourly_s + daily_s)
        check_runs.append(hour_checks(url, args.inverters, args.days))
        site_runs.append(site_analytics(db, plant, args.days))
    kpi_s = min(kpi_runs)
    checks_s, failed = min(check_runs, key=lambda r: r[0])
    site_s, degradation = min(site_runs, key=lambda r: r[0])
    report(rows, args, kpi_runs, kpi_s, checks_s, site_s, failed, len(degradation))
    db.dispose()


if __name__ == "__main__":
    main()
