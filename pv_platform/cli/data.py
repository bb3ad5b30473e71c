"""Data in and out: `pvp export` (samples or KPIs as CSV/Parquet) and `pvp import` (history)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pv_platform.settings import get_settings


def cmd_export(args: argparse.Namespace) -> int:
    from pv_platform.export import (
        ExportError,
        ExportRequest,
        default_output,
        export,
        parse_bucket,
        parse_time,
    )
    from pv_platform.storage import Database

    settings = get_settings()
    if not settings.database_url:
        print("PVP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    try:
        request = ExportRequest(
            grain=args.grain,
            start=parse_time(args.start),
            end=parse_time(args.end),
            site_id=None if args.site in (None, "all") else args.site,
            device_id=args.device,
            bucket_s=parse_bucket(args.bucket) if args.bucket else None,
            metrics=tuple(args.metric or ()),
        )
        if args.output == "-" and args.format == "parquet":
            raise ExportError("Parquet cannot go to standard output: give a file with -o")
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url, pool_size=1)
    target = (
        None if args.output == "-" else Path(args.output or default_output(request, args.format))
    )
    try:
        if target is None:
            summary = export(db.engine, request, "csv", sys.stdout)
        else:  # written beside the target and renamed when complete: never a half file
            partial = target.with_name(target.name + ".part")
            with open(
                partial,
                "w" if args.format == "csv" else "wb",
                newline="" if args.format == "csv" else None,
            ) as out:
                summary = export(db.engine, request, args.format, out)
            partial.replace(target)
    except ExportError as exc:
        if target is not None:
            target.with_name(target.name + ".part").unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    where = "standard output" if target is None else str(target)
    print(f"{summary.rows} rows x {len(summary.columns)} columns to {where}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "export", help="export samples or KPIs of a range as CSV or Parquet (units in the headers)"
    )
    p.add_argument("--grain", choices=["samples", "hour", "day", "month", "year"], default="day")
    p.add_argument("--site", help="a site id, or all (default)")
    p.add_argument("--device", help="one device of the site (KPIs: * is the site total)")
    p.add_argument(
        "--start",
        required=True,
        help="ISO date or time; without an offset it is each site's local time (2026-06-01)",
    )
    p.add_argument("--end", required=True, help="exclusive, like --start (2026-07-01)")
    p.add_argument("--bucket", help="samples: downsample to buckets, e.g. 1min, 15min, 1h")
    p.add_argument(
        "--metric", action="append", help="samples: only this metric (repeatable, e.g. ac_power)"
    )
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument(
        "-o",
        "--output",
        help="file to write (default pvp-<site>-<grain>-<start>-<end>.<format>; - is standard output)",
    )
    p.set_defaults(func=cmd_export)
    from pv_platform.importing.command import add_parser as add_import

    add_import(sub)
