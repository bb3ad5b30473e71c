"""Commands that run a part of the platform: collector, simulator, broker, dashboard, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from pv_platform.cli.common import clock_flags, stop_event, use_clock, utc_time
from pv_platform.settings import get_settings


def cmd_collect(args: argparse.Namespace) -> int:
    from pv_platform.bus import parse_mqtt_url
    from pv_platform.collector import Collector
    from pv_platform.plant import load_plant

    settings = get_settings()
    plant = load_plant(settings.resolved_plant_file)
    broker = parse_mqtt_url(settings.mqtt_url) if settings.mqtt_url else None
    use_clock(settings, args.start, args.speed)

    async def main() -> None:
        stop = stop_event()
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
    use_clock(settings, args.start, args.speed)

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
        stop = stop_event()
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
        await run_amqtt(args.host, args.port, stop_event())

    asyncio.run(main())
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


def add_parsers(sub) -> None:
    """The subcommands of this module."""
    p = sub.add_parser("collect", help="run the collector on the plant file")
    clock_flags(p)
    p.set_defaults(func=cmd_collect)
    sub.add_parser(
        "health", help="ask the running collector's health endpoint (PVP_HEALTH_PORT)"
    ).set_defaults(func=cmd_health)
    p = sub.add_parser("simulate", help="serve the plant file's devices from the plant simulator")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-hours", type=float, default=0.0, help="land this much history first")
    p.add_argument(
        "--backfill-end", type=utc_time, help="end of that history (ISO, UTC; default: now)"
    )
    p.add_argument(
        "--history-only", nargs=2, type=utc_time, metavar=("START", "END"),
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
    clock_flags(p)
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("broker", help="run an embedded MQTT broker (amqtt)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.set_defaults(func=cmd_broker)
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
