"""Alert scoring harness (issue 17): run a scenario with known faults through the real platform and score
the alerts against the ground truth.

`python -m bench.alert_scores [NAME ...]` (scenario files in bench/scenarios/). Per scenario: the live
window runs `pvp simulate` and `pvp collect` in accelerated time (real-time rules in the collector, on
the clock they share), from a little before its start; the history up to the collector's first reading
is landed as by `pvp simulate --history-only` (KPI-rule faults sit there); every landed segment is
ingested; the Dagster assets `hourly_kpis` and `alerts` are materialized hour by hour (48-hour runs
for weeks). Then:

- recall per rule: expected (fault, rule) pairs found, an alert of that rule on the fault's device (any
  device of the site for a site-level fault) opened from 5 min (KPI rules: 1 h, the hour they judge)
  before the fault's start to 75 min after its end;
- precision per rule: alerts that match a fault (an expected or allowed rule of the fault, same window) over
  all alerts; incidents likewise (an incident is true when its cause matches a fault);
- detection delay: opened_at - fault start, median per rule, real-time and KPI rules apart.
Targets (issue 17): recall >= 0.95, precision >= 0.90, real-time median delay <= 2 min, KPI <= 30 min.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from bench.report import emit

SCENARIOS = Path(__file__).parent / "scenarios"
PVP = str(Path(sys.executable).parent / "pvp")
BEFORE_KPI, BEFORE_REALTIME, AFTER = timedelta(hours=1), timedelta(minutes=5), timedelta(minutes=75)
REALTIME = {"communication_lost", "equipment_fault", "over_temperature", "grid_outage", "string_fault",
            "hot_spot", "low_efficiency", "quarantine_flood"}  # fmt: skip
LEAD_S = 120.0  # the clock reads the live start this long after the launch (both routes)
LIVE_KINDS = {"inverter_trip", "modbus_garbage", "grid_outage", "string_disconnect", "hot_spot",
              "device_silent", "malformed_payloads"}  # fmt: skip
TARGETS = {"recall": 0.95, "precision": 0.90, "realtime_delay_min": 2.0, "kpi_delay_min": 30.0}


@dataclass
class Truth:
    kind: str
    site: str
    device: str | None  # None: the whole site
    start: datetime
    end: datetime
    expect: list[str]
    allow: list[str] = field(default_factory=list)


def load(source: Path | dict) -> tuple[dict, dict, list[Truth]]:
    """The scenario spec (a file or a generated spec), the simulator's fault schedule and the truth."""
    spec = yaml.safe_load(source.read_text()) if isinstance(source, Path) else source
    faults, truths = [], []
    for f in [dict(f) for f in spec.get("faults") or []]:
        expect, allow = f.pop("expect"), f.pop("allow", [])
        faults.append(f)
        start, end = (pd.Timestamp(f[k]).to_pydatetime() for k in ("start", "end"))
        truths.append(Truth(f["kind"], f["site"], f.get("device"), start, end, expect, allow))
    return spec, {"faults": faults}, truths


def plant_spec(spec: dict, ports) -> dict:
    """Each site: its inverters on Modbus TCP (polled 4 times a second), a grid meter and a weather
    station on MQTT topics of their own."""
    tag = uuid.uuid4().hex[:6]
    sites = []
    for s in spec["sites"]:
        devices = [
            {"id": f"inv{i + 1}", "kind": "inverter", "integration": "sunspec_modbus", "p_dc_kw": 110.0,
             "p_ac_kw": 100.0, "config": {"host": "127.0.0.1", "port": next(ports), "unit_id": 1,
                                          "poll_interval_s": 0.25}}
            for i in range(s["inverters"])
        ]  # fmt: skip
        devices += [
            {"id": "meter1", "kind": "meter", "integration": "mqtt",
             "config": {"topic": f"pvp/bench/{tag}/{s['id']}/meter1", "fields": {
                 "ac_power": "p_w", "export_energy": "e_export_wh", "import_energy": "e_import_wh",
                 "grid_frequency": "f_hz", "grid_voltage": "u_v", "power_factor": "pf"}}},
            {"id": "wx1", "kind": "weather_station", "integration": "mqtt",
             "config": {"topic": f"pvp/bench/{tag}/{s['id']}/wx1", "fields": {
                 "poa_irradiance": "poa", "module_temperature": "t_mod", "ambient_temperature": "t_amb"}}},
        ]  # fmt: skip
        sites.append({"id": s["id"], "name": s["id"], "latitude": s["latitude"], "longitude": s["longitude"],
                      "timezone": s["timezone"], "tilt_deg": 30, "azimuth_deg": 180, "devices": devices})  # fmt: skip
    return {"sites": sites}


def run_live(spec: dict, work: Path, env: dict, then=None) -> None:
    """The live window, then the history before it, with neither a gap nor an overlap between them:
    the simulator and, once it serves (as on site, the plant answers before the collector starts), the
    collector on one accelerated clock, which reads the live window's start at PVP_CLOCK_ANCHOR (set
    ahead: both are up before it); the history is then landed (as by `pvp simulate --history-only`)
    from the scenario's start to the moment the collector started (its counters ending where the live ones
    start), before anything reads the landing: `then()` (the daemon's start) runs after it. (Before,
    the simulator back-filled up to the clock's "now" and served only when that was done, and the
    collector started after it: the simulated minutes in between were neither history nor live.)"""
    live0, live1 = (pd.Timestamp(spec["live"][k]).to_pydatetime() for k in ("start", "end"))
    speed = float(spec.get("speed", 60))
    env = (
        env
        if "PVP_CLOCK_ANCHOR" in env
        else env | {"PVP_CLOCK_ANCHOR": f"{time.time() + LEAD_S:.3f}"}
    )
    anchor = float(env["PVP_CLOCK_ANCHOR"])
    clock = ["--start", live0.isoformat(), "--speed", str(speed)]
    procs = []
    for name, args in (
        ("simulate", ["simulate", *clock, "--scenario", str(work / "faults.yaml"),
                      "--weather-interval", "0.25"]),
        ("collect", ["collect", *clock]),
    ):  # fmt: skip
        if procs:
            _wait_log(work / "simulate.log", "serving", procs, timeout_s=600.0)
        log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([PVP, *args], env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        running = _wait_log(work / "collect.log", "collector running", procs, timeout_s=600.0)
        live_from = live0 + timedelta(seconds=(running - anchor) * speed)
        _land_history(work, pd.Timestamp(spec["start"]).to_pydatetime(), live_from, procs)
        (work / "live_from.txt").write_text(live_from.isoformat())
        faults = yaml.safe_load((work / "faults.yaml").read_text())["faults"]
        live = [pd.Timestamp(f["start"]) for f in faults if f["kind"] in LIVE_KINDS]
        if live and live_from >= min(live):
            print(f"warning: the live run began at {live_from:%H:%M}, after a real-time fault")
        if then is not None:
            then()
        while time.time() < anchor + (live1 - live0).total_seconds() / speed:
            assert all(p.poll() is None for p in procs), (work / "collect.log").read_text()[-2000:]
            time.sleep(0.5)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def _land_history(work: Path, start: datetime, end: datetime, procs) -> None:
    """The history [start, end) at a 60-s step, as `pvp simulate --history-only` lands it, but with
    its lifetime counters ending where the collector's first readings of them start (the simulator
    ran, and counted energy, before the collector read it: ending at the simulator's initial values
    put that energy into one hour, PR 1.23)."""
    from integrations.simulator.runner import COUNTERS, backfill_landing
    from integrations.simulator.scenarios import load_scenario
    from pv_platform.landing import list_closed, read_segment, segment_path
    from pv_platform.plant import load_plant

    plant, landing = load_plant(work / "plant.yaml"), work / "pvp" / "landing"
    wanted = {f"{s.id}.{d.id}.{c}" for s in plant.sites for d in s.devices for c in COUNTERS
              if d.kind in ("inverter", "meter") and (c == "ac_energy") == (d.kind == "inverter")}  # fmt: skip
    first: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + 120.0
    while set(first) < wanted and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "simulator or collector exited at start"
        time.sleep(1.0)
        for sid in list_closed(landing):
            for line in read_segment(segment_path(landing, sid)).csv_body.splitlines():
                entity, ts, value = line.split(",", 2)
                if entity in wanted and (entity not in first or ts < first[entity][0]):
                    first[entity] = (ts, float(value))
    ends = {k: v for k, (_, v) in first.items()}
    backfill_landing(plant, landing, 42, start, end, 60, load_scenario(work / "faults.yaml"),
                     counters_end_at_start=True, counters_end_at=ends)  # fmt: skip


def _wait_log(path: Path, text: str, procs, timeout_s: float = 120.0) -> float:
    """Until `text` is in the log: the wall time [Unix s] its line was logged at (the log's local
    time stamp, else now)."""
    deadline = time.monotonic() + timeout_s
    while text not in (found := path.read_text(errors="replace")):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, found
        time.sleep(0.2)
    line = next(x for x in found.splitlines() if text in x)
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return time.time()


def kpi_rules(db_url: str, work: Path, start: datetime, end: datetime, step_h: int) -> None:
    """Ingest every segment, then the Dagster `hourly_kpis` and `alerts` assets over [start, end)."""
    import dagster as dg

    from pv_platform.defs.alerts.assets import alerts
    from pv_platform.defs.kpis.assets import hourly_kpis
    from pv_platform.defs.resources import platform_resources
    from pv_platform.landing import list_closed, read_segment, segment_path
    from pv_platform.storage import Database

    landing = work / "pvp" / "landing"
    db = Database(db_url)
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    db.dispose()
    resources = platform_resources(db_url, str(landing), str(work / "plant.yaml"))
    fmt = "%Y-%m-%d-%H:%M"
    with dg.instance_for_test() as instance:
        t = start
        while t < end:
            last = min(t + timedelta(hours=48), end) - timedelta(hours=1)
            dg.materialize([hourly_kpis], instance=instance, resources=resources, raise_on_error=False,
                           tags={"dagster/asset_partition_range_start": f"{t:{fmt}}",
                                 "dagster/asset_partition_range_end": f"{last:{fmt}}"})  # fmt: skip
            t = last + timedelta(hours=1)
        t = start
        while t < end:
            last = min(t + timedelta(hours=step_h), end) - timedelta(hours=1)
            dg.materialize([alerts], instance=instance, resources=resources, raise_on_error=False,
                           tags={"dagster/asset_partition_range_start": f"{t:{fmt}}",
                                 "dagster/asset_partition_range_end": f"{last:{fmt}}"})  # fmt: skip
            t = last + timedelta(hours=1)


def matches(alert, truth: Truth, rules: list[str]) -> bool:
    """Is `alert` one of `rules` on the truth's device (any device of its site for a site-level fault),
    opened from 5 min (a KPI rule: 1 h, its judged hour) before the fault to 75 min after it?"""
    if alert.rule not in rules or alert.site_id != truth.site:
        return False
    if truth.device is not None and alert.device_id not in (truth.device, "*"):
        return False
    opened = pd.Timestamp(alert.opened_at).to_pydatetime()
    before = BEFORE_REALTIME if alert.rule in REALTIME else BEFORE_KPI
    # a KPI alert about an hour of the fault judged late (the hour re-run) is still about the fault
    evidence = min(opened, _evidence(alert) or opened)
    return truth.start - before <= opened and evidence <= truth.end + AFTER


def _after(alert, live1: pd.Timestamp) -> bool:
    """Is a finding about the time after the plant was switched off (evidence from the live end on,
    or an hourly KPI finding opened after it about the hour the plant was switched off in)?"""
    evidence = _evidence(alert)
    if evidence is None:
        return pd.Timestamp(alert.opened_at) >= live1
    partial = alert.rule not in REALTIME and pd.Timestamp(alert.opened_at) > live1
    return pd.Timestamp(evidence) >= live1 or (
        partial and pd.Timestamp(evidence) + pd.Timedelta(hours=1) > live1
    )


def before_switch_off(alerts: pd.DataFrame, live1: pd.Timestamp) -> pd.DataFrame:
    """The alerts scored: the plant is switched off at the live window's end while the platform runs
    on, so findings about the time after it (missing data) are the harness's, not alarms. (No alert at
    all - a clean week's best result - is an empty frame with every column.)"""
    after = [_after(a, live1) for a in alerts.itertuples()]
    return alerts[~pd.Series(after, index=alerts.index, dtype=bool)]


def _evidence(alert) -> datetime | None:
    """When a KPI alert's evidence starts (its judged hour or window), else None."""
    hour = (getattr(alert, "context", None) or {}).get("hour")
    return pd.Timestamp(hour).to_pydatetime() if hour else None


def score(alerts: pd.DataFrame, incidents: pd.DataFrame, truths: list[Truth]) -> dict:
    """Recall, precision and delays per rule, and overall (see the module docstring)."""
    rules = sorted({r for t in truths for r in t.expect} | set(alerts["rule"]))
    per_rule = {
        r: {"expected": 0, "found": 0, "alerts": 0, "true": 0, "delays_min": []} for r in rules
    }
    for t in truths:
        for rule in t.expect:
            found = [a for a in alerts.itertuples() if matches(a, t, [rule])]
            per_rule[rule]["expected"] += 1
            if found:
                per_rule[rule]["found"] += 1
                first = min(pd.Timestamp(a.opened_at).to_pydatetime() for a in found)
                per_rule[rule]["delays_min"].append(
                    max(0.0, (first - t.start).total_seconds() / 60)
                )
    for a in alerts.itertuples():
        per_rule[a.rule]["alerts"] += 1
        per_rule[a.rule]["true"] += any(matches(a, t, t.expect + t.allow) for t in truths)
    causes = alerts.set_index("id")
    if not incidents.empty:  # those caused by an alert scored (not one after the live window)
        incidents = incidents[incidents["cause_alert_id"].isin(causes.index)]
    true_incidents = sum(
        any(matches(causes.loc[i.cause_alert_id], t, t.expect + t.allow) for t in truths)
        for i in incidents.itertuples()
    ) if not incidents.empty else 0  # fmt: skip
    expected = sum(v["expected"] for v in per_rule.values())
    delays = {kind: [d for r, v in per_rule.items() if (r in REALTIME) == (kind == "realtime")
                     for d in v["delays_min"]] for kind in ("realtime", "kpi")}  # fmt: skip
    return {
        "per_rule": per_rule,
        "recall": sum(v["found"] for v in per_rule.values()) / expected if expected else None,
        "precision": sum(v["true"] for v in per_rule.values()) / len(alerts)
        if len(alerts)
        else 1.0,
        "alerts": len(alerts),
        "incidents": len(incidents),
        "incident_precision": true_incidents / len(incidents) if len(incidents) else 1.0,
        "realtime_delay_min": statistics.median(delays["realtime"]) if delays["realtime"] else None,
        "kpi_delay_min": statistics.median(delays["kpi"]) if delays["kpi"] else None,
    }


def run_scenario(source: Path | dict, admin_url: str, mqtt_url: str, daemon: bool = True) -> dict:
    """Score one scenario. daemon: through the real `dagster-daemon` (bench.alert_daemon: what users
    run); else the KPI rules by `dg.materialize` after the live window (fast, in-process)."""
    from pv_platform.plant import dump_plant, parse_plant
    from pv_platform.services import drop_database, ensure_database, free_port
    from pv_platform.storage import Database
    from pv_platform.storage.alerts import AlertStore
    from pv_platform.storage.incidents import IncidentStore

    spec, faults, truths = load(source)
    stem = source.stem if isinstance(source, Path) else f"seed{abs(hash(spec['name'])) % 10**6}"
    work = Path(tempfile.mkdtemp(prefix=f"pvp-score-{stem}-"))
    (work / "faults.yaml").write_text(yaml.safe_dump(faults))
    dump_plant(
        parse_plant(plant_spec(spec, iter(free_port() for _ in range(99)))), work / "plant.yaml"
    )
    name = f"pvp_score_{os.getpid()}_{stem}"
    url = ensure_database(admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env |= {"PVP_DATA_DIR": str(work / "pvp"), "PVP_PLANT_FILE": str(work / "plant.yaml"),
            "PVP_DATABASE_URL": url, "PVP_MQTT_URL": mqtt_url}  # fmt: skip
    t0, runs = time.monotonic(), {}
    start = pd.Timestamp(spec["start"]).to_pydatetime()
    end = pd.Timestamp(spec["live"]["end"]).to_pydatetime().replace(minute=0)
    try:
        if daemon:
            runs = _through_daemon(spec, work, env, admin_url, name, url, end)
        else:
            run_live(spec, work, env)
            kpi_rules(url, work, start, end, 1 if (end - start) <= timedelta(hours=24) else 48)
        alerts, incidents = AlertStore(db.engine).list(limit=None), IncidentStore(db.engine).list()
        alerts = before_switch_off(alerts, pd.Timestamp(spec["live"]["end"]))
    finally:
        db.dispose()
        drop_database(admin_url, name)
    result = score(alerts, incidents, truths) | {
        "name": spec["name"] + (" [daemon]" if daemon else " [in-process]"),
        "wall_s": time.monotonic() - t0,
        "runs": runs,
    }
    result["listing"] = [f"{a.opened_at:%m-%d %H:%M} {a.rule} {a.site_id}/{a.device_id} incident {a.incident_id}:"
                         f" {a.message.splitlines()[0][:110]}"
                         for a in alerts.sort_values("opened_at").itertuples()]  # fmt: skip
    result["false_alarms"] = [f"{a.rule} {a.site_id}/{a.device_id} {a.opened_at:%H:%M}: {a.message[:90]}"
                              for a in alerts.itertuples()
                              if not any(matches(a, t, t.expect + t.allow) for t in truths)]  # fmt: skip
    return result


def _through_daemon(spec, work: Path, env: dict, admin_url: str, name: str, url: str, end) -> dict:
    """The live window with the daemon started once the history before it is landed (so it never
    judges an hour whose older part is still to come), then until it has computed the last hour."""
    from bench.alert_daemon import daemon_env, start_daemon, stop_daemon, wait_settled
    from pv_platform.services import drop_database, ensure_database

    dagster_url = ensure_database(admin_url, f"{name}_dagster")
    env = daemon_env(env, work, dagster_url, spec)
    subprocess.run([PVP, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    daemons: list[subprocess.Popen] = []
    try:
        run_live(spec, work, env, then=lambda: daemons.append(start_daemon(env, work)))
        return wait_settled(url, dagster_url, end - timedelta(hours=1), daemons[0])
    finally:
        for daemon in daemons:
            stop_daemon(daemon)
        time.sleep(1)
        drop_database(admin_url, f"{name}_dagster")


def report(r: dict) -> None:
    print(
        f"\n{r['name']}: {r['alerts']} alerts in {r['incidents']} incidents ({r['wall_s']:.0f} s)"
    )
    print(f"  {'rule':<20} {'found/expected':>14} {'true/alerts':>12} {'median delay':>13}")
    for rule, v in r["per_rule"].items():
        delay = f"{statistics.median(v['delays_min']):.1f} min" if v["delays_min"] else "—"
        print(
            f"  {rule:<20} {v['found']:>6}/{v['expected']:<7} {v['true']:>5}/{v['alerts']:<6} {delay:>13}"
        )
    fmt = lambda x, unit="": "—" if x is None else f"{x:.2f}{unit}"  # noqa: E731
    print(f"  recall {fmt(r['recall'])}, precision {fmt(r['precision'])} (incidents"
          f" {fmt(r['incident_precision'])}), median delay real-time {fmt(r['realtime_delay_min'], ' min')},"
          f" KPI {fmt(r['kpi_delay_min'], ' min')}")  # fmt: skip
    for line in r["false_alarms"]:
        print(f"  false alarm: {line}")
    for line in r["listing"]:
        print(f"  alert: {line}")
    if r.get("runs"):
        print(f"  Dagster runs: {r['runs']}")


def main(args: list[str]) -> int:
    """`python -m bench.alert_scores [--in-process] [--seeds N,M,...] [NAME ...]`: the named scenario
    files (default: all, or none with --seeds) and randomized fault days of the given seeds (default: 3
    fresh ones, printed), through the daemon unless --in-process."""
    from bench.fault_days import fault_day
    from pv_platform.services import port_is_open, start_embedded_postgres

    daemon = "--in-process" not in args
    seeds = [int(time.time()) % 100000 + i for i in range(3)]
    names = [a for a in args if not a.startswith("--")]
    if "--seeds" in args:
        given = args[args.index("--seeds") + 1]
        seeds, names = [int(x) for x in given.split(",") if x], [n for n in names if n != given]
    files = sorted(SCENARIOS.glob("*.yaml")) if names or "--seeds" not in args else []
    sources: list[Path | dict] = [p for p in files if not names or p.stem in names]
    sources += [fault_day(seed) for seed in seeds]
    print(
        f"scenarios: {[s.stem if isinstance(s, Path) else s['name'] for s in sources]}", flush=True
    )
    admin, server = os.environ.get("PVP_BENCH_ADMIN_URL"), None
    if admin is None:
        server = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="pvp-score-pg-")) / "pg")
        admin = server.get_uri()
    mqtt = os.environ.get("PVP_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
    if not port_is_open("127.0.0.1", 1883) and "PVP_BENCH_MQTT_URL" not in os.environ:
        raise SystemExit("an MQTT broker on 127.0.0.1:1883 (or PVP_BENCH_MQTT_URL) is needed")
    results = []
    try:
        for source in sources:
            results.append(run_scenario(source, admin, mqtt, daemon))
            report(results[-1])  # as each finishes
    finally:
        if server is not None:
            server.cleanup()
    for r in results:
        for key, target in TARGETS.items():
            value = r[key]
            if value is None:
                continue
            met = value >= target if key in ("recall", "precision") else value <= target
            unit = "min" if "delay" in key else ""
            emit("alert_scores", f"{r['name']}: {key}", value, unit, "target", target,
                 f"{'>=' if unit == '' else '<='} {target:g}", met)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
