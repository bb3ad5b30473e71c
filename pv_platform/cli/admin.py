"""Commands that set up and serve the platform's side doors: schema and roles, integrations,
metrics, the HTTP API and its tokens."""

from __future__ import annotations

import argparse
import os
import sys

from pv_platform.cli.common import serve_until_stopped
from pv_platform.settings import get_settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from pv_platform.plant import load_plant
    from pv_platform.storage import Database

    settings = get_settings()
    if not settings.database_url:
        print(
            "PVP_DATABASE_URL is not set (example: postgresql://user@127.0.0.1:5432/pvp)",
            file=sys.stderr,
        )
        return 2
    if args.create_database:  # e.g. Dagster's own database beside the telemetry one
        from sqlalchemy.engine import make_url

        from pv_platform.services import ensure_database

        admin = make_url(settings.database_url).set(database="postgres")
        for name in args.create_database:
            ensure_database(admin.render_as_string(hide_password=False), name)
    db = Database(settings.database_url)
    applied = db.migrations.migrate(settings.timescale_chunk_interval)
    if settings.resolved_plant_file.exists():
        db.plant.sync(load_plant(settings.resolved_plant_file))
    print(f"dialect {db.dialect.name}; applied migrations {applied or 'none (up to date)'}")
    if args.roles:
        passwords = {
            role: os.environ.get(f"PVP_{role.removeprefix('pvp_').upper()}_DB_PASSWORD", "")
            for role in ("pvp_ingest", "pvp_reader")
        }
        missing = [r for r, p in passwords.items() if not p]
        if missing:
            names = ", ".join(f"PVP_{r.removeprefix('pvp_').upper()}_DB_PASSWORD" for r in missing)
            print(f"--roles needs the passwords in {names}", file=sys.stderr)
            return 2
        db.migrations.ensure_roles(passwords)
        print("roles pvp_ingest (collector, Dagster) and pvp_reader (dashboards) granted")
    return 0


def cmd_integrations(args: argparse.Namespace) -> int:
    from pv_platform.loader import discover, load_integration

    if args.action == "check":
        from pv_platform.device_check import check_device

        if not args.device:
            print("pvp integrations check: give the device as SITE.DEVICE", file=sys.stderr)
            return 2
        return check_device(get_settings(), args.device, args.timeout)

    print(f"{'domain':<16} {'iot_class':<15} {'version':<8} name")
    for domain in sorted(discover()):
        m = load_integration(domain).manifest
        print(
            f"{domain:<16} {m.get('iot_class', ''):<15} {m.get('version', ''):<8} {m.get('name', '')}"
        )
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from pv_platform.metrics import MetricsServer
    from pv_platform.storage import Database

    settings = get_settings()
    if not settings.database_url:
        print("PVP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    db = Database(settings.database_url, pool_size=2)  # no migrate: only `pvp migrate` migrates
    server = MetricsServer((args.address, args.port), db.engine, settings.resolved_landing_dir)
    print(f"metrics on http://{args.address}:{server.server_address[1]}/metrics", flush=True)
    return serve_until_stopped(server, db)


def _plant_or_none(settings):
    """The plant file, or None (said on stderr) when it cannot be read: the API still serves the rest."""
    from pv_platform.plant import PlantFileError, load_plant

    try:
        return load_plant(settings.resolved_plant_file)
    except (PlantFileError, OSError) as exc:
        print(f"warning: no plant file ({exc}): /incidents and /losses answer 503", file=sys.stderr)
        return None


def cmd_api(args: argparse.Namespace) -> int:
    from pv_platform.http_api import Api, ApiServer, load_tokens
    from pv_platform.storage import Database

    settings = get_settings()
    if not settings.database_url:
        print("PVP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    if not settings.api_tokens_file:
        print(
            "PVP_API_TOKENS_FILE is not set (make an entry with `pvp api-token`)", file=sys.stderr
        )
        return 2
    try:
        tokens = load_tokens(settings.api_tokens_file)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url, pool_size=4)  # no migrate: only `pvp migrate` migrates
    from pv_platform.alerts.service import alert_engine

    alerts = alert_engine(db.engine, settings)  # acknowledgements reach the notifiers
    plant = _plant_or_none(settings)  # incidents' lost energy needs each site's inverters
    api = Api(db.engine, tokens, alerts=alerts, db=db, plant=plant)
    server = ApiServer((args.address, args.port), api)
    print(
        f"API on http://{args.address}:{server.server_address[1]}/api/v1 ({len(tokens)} token(s))",
        flush=True,
    )
    return serve_until_stopped(server, db)


def cmd_api_token(args: argparse.Namespace) -> int:
    import json

    from pv_platform.http_api import new_token, token_hash

    token = new_token()
    entry = {"name": args.name, "sha256": token_hash(token), "scopes": args.scope}
    if args.site:
        entry["sites"] = args.site
    print(f"token (shown once; give it to the integrator): {token}", file=sys.stderr)
    print(json.dumps(entry))  # add this to the "tokens" list of PVP_API_TOKENS_FILE
    return 0


def add_parsers(sub) -> None:
    """The subcommands of this module."""
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument(
        "--roles",
        action="store_true",
        help="also create the least-privilege roles pvp_ingest and pvp_reader"
        " (passwords from PVP_INGEST_DB_PASSWORD, PVP_READER_DB_PASSWORD)",
    )
    p.add_argument(
        "--create-database",
        action="append",
        metavar="NAME",
        help="also create this database (repeatable)",
    )
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser(
        "integrations",
        help="list installed integrations; `check SITE.DEVICE` connects to a configured device",
    )
    p.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    p.add_argument("device", nargs="?", help="check: the device, as SITE.DEVICE of the plant file")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="check: seconds to wait for the device"
    )
    p.set_defaults(func=cmd_integrations)
    p = sub.add_parser(
        "metrics",
        help="serve the ingest/KPI side's Prometheus metrics (ingest lag, rows/s, hours waiting"
        " for KPIs, failed checks) on http://ADDRESS:PORT/metrics",
    )
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9108)
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("api", help="serve the read-only HTTP API (tokens from PVP_API_TOKENS_FILE)")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.set_defaults(func=cmd_api)
    p = sub.add_parser(
        "api-token",
        help="make an API token: prints the token once (stderr) and its entry for the tokens file",
    )
    p.add_argument("--name", required=True, help="who the token is for")
    p.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["sites:read", "kpis:read", "samples:read", "alerts:read", "alerts:ack"],
    )
    p.add_argument("--site", action="append", help="only this site (repeatable; default all)")
    p.set_defaults(func=cmd_api_token)
