"""`pvp alerts`: list, show, acknowledge or resolve alerts; list incidents."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from pv_platform.settings import get_settings


def cmd_alerts(args: argparse.Namespace) -> int:

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
    from pv_platform.storage.incidents import IncidentStore

    state = {"open": "open", "resolved": "resolved"}.get(args.state or "")
    plant = load_plant(settings.resolved_plant_file)
    report = incident_report(db, plant, now(), state, args.site, args.limit)
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
    total = IncidentStore(db.engine).count(state, args.site)
    if len(report) < total:
        print(f"-- the newest {len(report)} of {total} incidents shown; more with --limit")
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


def add_parsers(sub) -> None:
    """The subcommands of this module."""
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
    p.add_argument(
        "--limit", type=int, default=200, help="alerts (or incidents) per page, newest first"
    )
    p.add_argument("--offset", type=int, default=0, help="skip this many (the next page)")
    p.set_defaults(func=cmd_alerts)
