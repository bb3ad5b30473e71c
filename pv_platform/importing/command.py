"""The `pvp import` command line: flags, the progress bar and the report."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pv_platform.settings import get_settings

HELP = """Import history from a CSV or Parquet file into the landing; the Dagster daemon loads it like live
data and computes its KPIs. Wide files have one column per signal, long files a row per reading
(timestamp, device, metric, value). Re-running an import lands nothing twice."""


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="import history from CSV or Parquet", description=HELP)
    p.add_argument("file", type=Path, help="a .csv or .parquet file")
    p.add_argument("-m", "--mapping", type=Path, help="YAML mapping of columns (see README)")
    p.add_argument("--site", help="site of every column (a mapping entry may name its own)")
    p.add_argument("--layout", choices=["wide", "long"], help="default wide (or the mapping's)")
    p.add_argument("--time-column", help="column of the time stamps (default timestamp)")
    p.add_argument(
        "--zone",
        help="zone of naive stamps: an IANA name (Europe/Zurich) or a fixed offset (+01:00)",
    )
    p.add_argument("--epoch", choices=["s", "ms", "us", "ns"], help="stamps are epoch numbers")
    p.add_argument(
        "--time-format", help="strptime format of the stamps, e.g. '%%d.%%m.%%Y %%H:%%M'"
    )
    p.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="COL=DEVICE.METRIC[:UNIT][*SCALE]",
        help="map a column (repeatable), e.g. 'P_kW=inv01.ac_power:kW'",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would land; write nothing")
    p.add_argument("--wait", action="store_true", help="wait until the daemon has loaded it all")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=command)


def _overrides(args: argparse.Namespace) -> dict:
    from pv_platform.importing.mapping import parse_column_flag

    time_spec = {
        k: v
        for k, v in (
            ("column", args.time_column),
            ("zone", args.zone),
            ("epoch", args.epoch),
            ("format", args.time_format),
        )
        if v
    }
    columns = dict(parse_column_flag(flag) for flag in args.column)
    return {"site": args.site, "layout": args.layout, "time": time_spec, "columns": columns}


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_report(report, dry_run: bool, out=sys.stdout) -> None:
    """Rows per entity with first and last stamp, refused rows by reason with examples."""
    verb = "would land" if dry_run else "landed"
    print(f"{report.rows:,} file rows read, {report.readings:,} readings {verb}"
          + (f" in {report.segments:,} segments" if not dry_run else "")
          + (f", {report.skipped_rows:,} rows already imported before (skipped)" if report.skipped_rows else "")
          + f" ({report.seconds:.1f} s)", file=out)  # fmt: skip
    if report.entities:
        print(f"{'entity':<48} {'rows':>10}  {'first (UTC)':<21} {'last (UTC)':<21}", file=out)
        for key, (rows, first, last) in sorted(report.entities.items()):
            print(f"{key:<48} {rows:>10,}  {_when(first):<21} {_when(last):<21}", file=out)
    if report.ignored_columns:
        print(f"columns not mapped (ignored): {', '.join(report.ignored_columns)}", file=out)
    verb = "would be quarantined" if dry_run else "quarantined"
    print(f"{report.rejected:,} rows/cells refused ({verb})", file=out)
    for kind, n in report.reasons.most_common(10):
        print(f"  {n:>10,}  {kind}", file=out)
    for example in report.examples:
        print(f"  e.g. {example}", file=out)


def _wait_ingested(landing_dir: Path, print_id: str) -> None:
    """Block until no segment of this import waits in the landing any more."""
    while True:
        waiting = [p for p in (landing_dir / "closed").glob(f"*-import-{print_id}-*")]
        if not waiting:
            print("all segments loaded by the ingest job", file=sys.stderr)
            return
        print(f"{len(waiting)} segment(s) waiting for the ingest job ...", file=sys.stderr)
        time.sleep(5)


def command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pv_platform.importing.mapping import MappingError, load_mapping
    from pv_platform.importing.run import fingerprint, import_file
    from pv_platform.plant import PlantFileError, load_plant

    settings = get_settings()
    if not args.file.exists():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    try:
        plant = load_plant(settings.resolved_plant_file)
        mapping = load_mapping(args.mapping, _overrides(args))
        landing_dir = None if args.dry_run else settings.resolved_landing_dir
        bar = tqdm(
            total=0, unit=" rows", unit_scale=True, file=sys.stderr, mininterval=0.5,
            disable=args.no_progress, desc=args.file.name,
        )  # fmt: skip
        with bar:
            report = import_file(args.file, mapping, plant, landing_dir, bar)
    except (MappingError, PlantFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print_report(report, args.dry_run)
    if not args.dry_run:
        print(f"landed in {landing_dir}; the Dagster daemon loads it and computes its KPIs")
        if args.wait:
            _wait_ingested(landing_dir, fingerprint(args.file, mapping)[0])
    return 0
