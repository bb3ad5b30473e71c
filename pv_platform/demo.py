"""`pvp demo`: the whole platform on embedded defaults, every child in its own process group, all stopped
on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pv_platform import clock
from pv_platform.dashboard_server import login_configured, panel_command, panel_env
from pv_platform.demo_history import HISTORY_STEP_S, History, history_window
from pv_platform.demo_plant import demo_plant, sunniest_site
from pv_platform.plant import dump_plant, load_plant, parse_plant
from pv_platform.services import (
    ensure_database,
    free_port,
    mqtt_broker_answers,
    port_is_open,
    start_embedded_postgres,
)
from pv_platform.settings import Settings
from pv_platform.storage import Database, redact, sqlalchemy_url

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


# Where the demo plant may stand: real places spread around the globe, so that one has the sun up now.
class Children:
    """Child processes, each in its own session so a signal reaches its whole tree."""

    def __init__(self, log_dir: Path, groups_file: Path | None = None) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.groups_file = groups_file  # the reaper reads it if this process dies

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        logfile = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        if self.groups_file is not None:
            with open(self.groups_file, "a") as fh:
                fh.write(f"{proc.pid}\n")
        return proc

    def dead(self, one_shot: tuple[str, ...] = ("history",)) -> list[str]:
        """Children that exited; a one-shot child only when it failed."""
        return [
            name
            for name, p in self.procs.items()
            if p.poll() is not None and not (name in one_shot and p.returncode == 0)
        ]

    def stop_all(
        self,
        timeout_s: float = 20.0,
        last: tuple[str, ...] = ("broker",),
        alone_first: tuple[str, ...] = ("dagster-daemon",),
    ) -> None:
        """SIGTERM every child group, those in `last` (the broker its clients talk to) after the
        others have stopped; SIGKILL whatever is left after `timeout_s`. Those in `alone_first` are
        asked first, without their group: the Dagster daemon stops launching runs before its code
        server and run workers stop (stopped together, a launch under way failed with a traceback
        in the daemon's log: 'Subprocess ... terminated unexpectedly with exit code -15')."""
        deadline = time.monotonic() + timeout_s
        for name in alone_first:
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(max(0.1, deadline - time.monotonic()) / 2)
        first = [p for name, p in self.procs.items() if name not in last]
        for group in (first, [p for name, p in self.procs.items() if name in last]):
            for p in group:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGTERM)
            for p in group:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(max(0.1, deadline - time.monotonic()))
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # the group too: no grandchild left behind
            p.wait()


def wait_for_port(port: int, timeout_s: float, answers=port_is_open) -> bool:
    """True once `answers("127.0.0.1", port)` (default: a TCP connect) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port):
            return True
        time.sleep(0.5)
    return False


def start_reaper(data_dir: Path, pgdata: Path | None) -> tuple[Path, subprocess.Popen]:
    """The watchdog that stops every child and the embedded PostgreSQL when this process ends, however
    it ends (kill -9 included). Returns the file it reads the children's process groups from, and it."""
    groups_file = data_dir / "demo.groups"
    groups_file.write_text("")  # never trust old ids: process ids are reused
    reaper = subprocess.Popen(
        [sys.executable, "-m", "pv_platform.reaper", str(os.getpid()), str(groups_file), str(pgdata or "")],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    return groups_file, reaper


def demo_api_token(data_dir: Path, env: dict[str, str]) -> str:
    """A demo API token with every scope, kept in `<data_dir>/api-token.txt` (mode 600) and
    its hash in `api-tokens.json` (unless PVP_API_TOKENS_FILE names the user's own); returns where
    the token is, for the banner."""
    from pv_platform.http_api import SCOPES, new_token, token_hash

    token_txt, tokens_json = data_dir / "api-token.txt", data_dir / "api-tokens.json"
    if "PVP_API_TOKENS_FILE" in env:
        return f"tokens of {env['PVP_API_TOKENS_FILE']}"
    if not token_txt.exists() or not tokens_json.exists():
        token = new_token()
        token_txt.touch(mode=0o600)
        token_txt.write_text(token + "\n")
        entry = {"name": "demo", "sha256": token_hash(token), "scopes": list(SCOPES)}
        tokens_json.write_text(json.dumps({"tokens": [entry]}, indent=2) + "\n")
    env["PVP_API_TOKENS_FILE"] = str(tokens_json)
    return f"a token with every scope in {token_txt}"


def _databases(settings: Settings, data_dir: Path):
    """(embedded server or None, telemetry database URL, Dagster storage URL)."""
    pg_server = None
    if settings.database_url:
        admin_url = database_url = settings.database_url
    else:
        print(f"starting embedded PostgreSQL (data in {data_dir / 'pg'}) …", flush=True)
        pg_server = start_embedded_postgres(data_dir / "pg")
        admin_url = pg_server.get_uri()
        database_url = ensure_database(admin_url, "pvp")
    return (
        pg_server,
        database_url,
        settings.dagster_database_url or ensure_database(admin_url, "dagster"),
    )


def _broker(settings: Settings, children: Children, env: dict, pvp: str) -> str | None:
    """The MQTT URL: the configured broker, or an embedded one started here (None: it did not start)."""
    if settings.mqtt_url:
        return settings.mqtt_url
    mqtt_port = free_port(1883)
    children.start("broker", [pvp, "broker", "--port", str(mqtt_port)], env)
    return (
        f"mqtt://127.0.0.1:{mqtt_port}"
        if wait_for_port(mqtt_port, 20, mqtt_broker_answers)
        else None
    )


def _plant_file(settings: Settings, data_dir: Path, inverters: int) -> Path:
    """The configured plant file, or a demo plant written where the sun is highest now."""
    if settings.plant_file:
        return settings.plant_file.resolve()
    plant_file = data_dir / "plant.yaml"
    ports: list[int] = []
    for i in range(inverters):
        port = free_port(15020 + i)
        while port in ports:
            port = free_port()
        ports.append(port)
    where = sunniest_site()
    print(f"demo plant: {where[1]} (the sun is highest there now)", flush=True)
    dump_plant(parse_plant(demo_plant(ports, where), "<demo>"), plant_file)
    return plant_file


def _prepare(settings: Settings, database_url: str, plant_file: Path, data_dir: Path) -> Path:
    """Migrate the database, mirror the plant, and give Dagster its home (returned)."""
    db = Database(database_url)
    db.migrations.migrate(settings.timescale_chunk_interval)
    db.plant.sync(load_plant(plant_file))
    db.dispose()
    dagster_home = data_dir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    return dagster_home


def _write_demo_env(data_dir: Path, env: dict) -> Path:
    """`demo.env`: how the Python API (get_settings) finds the running demo."""
    demo_env = data_dir / "demo.env"
    keys = ("PVP_DATABASE_URL", "PVP_MQTT_URL", "PVP_PLANT_FILE", "PVP_LANDING_DIR")
    demo_env.write_text("".join(f"{k}={env[k]}\n" for k in keys))
    return demo_env


def _start_services(
    children: Children, settings: Settings, env: dict, bin_dir: Path, simulate: list[str]
) -> dict:
    """Simulator, collector, Dagster daemon and webserver, metrics, API and Panel; their ports."""
    pvp = str(bin_dir / "pvp")
    ports = {"dagster": free_port(3000), "panel": free_port(5006), "metrics": free_port(9108),
             "api": free_port(8100)}  # fmt: skip
    children.start("simulator", simulate, env)
    children.start("collector", [pvp, "collect"], env)
    # the webserver and the daemon as two children (not `dagster dev`, which did not always pass a
    # SIGTERM on): each stops on its own signal, and the reaper knows both process groups
    workspace = str(REPO / "workspace.yaml")
    children.start("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env)
    children.start(
        "dagster-webserver",
        [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(ports["dagster"])],
        env,
    )  # fmt: skip
    children.start("metrics", [pvp, "metrics", "--port", str(ports["metrics"])], env)
    children.start("api", [pvp, "api", "--port", str(ports["api"])], env)
    children.start(
        "panel", panel_command(settings, "127.0.0.1", ports["panel"]), panel_env(settings, env)
    )
    return ports


def _banner(
    settings, data_dir, ports, env, api_token_file, mqtt_url, database_url, plant_file
) -> str:
    login = (
        "  The dashboard asks for a login (PVP_DASHBOARD_USERS_FILE).\n"
        if login_configured(settings)
        else "  The dashboard runs open (no login) in demo mode; set PVP_DASHBOARD_USERS_FILE to require one.\n"
    )
    return (
        f"\nPV Platform demo is starting (logs in {data_dir / 'logs'}/):\n"
        f"  Dashboard (Panel):   http://127.0.0.1:{ports['panel']}/app\n"
        f"  Dagster UI:          http://127.0.0.1:{ports['dagster']}\n"
        f"  Metrics (Prometheus): http://127.0.0.1:{env['PVP_HEALTH_PORT']}/metrics (collector),"
        f" http://127.0.0.1:{ports['metrics']}/metrics (ingest, KPIs)\n"
        f"  HTTP API:            http://127.0.0.1:{ports['api']}/api/v1/openapi.json"
        f" ({api_token_file})\n"
        f"  MQTT broker:         {mqtt_url}   (live bus: {settings.live_topic_prefix}/#)\n"
        f"  Telemetry database:  {redact(database_url)}\n"
        f"  Plant file:          {plant_file}\n" + login + "Press Ctrl-C to stop everything.\n"
    )


def _stop_flag() -> dict:
    """A flag Ctrl-C and SIGTERM set (instead of raising in the middle of a start)."""
    stopping = {"flag": False}

    def _stop(signum, frame) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    return stopping


def _supervise(children: Children, history: History, window, env: dict, stopping: dict) -> int:
    """Until Ctrl-C / SIGTERM (0) or a child's death (1); lands the history month when it is due."""
    pvp, logs = env["PVP_BIN"], Path(env["PVP_DATA_DIR"]) / "logs"
    while not stopping["flag"]:
        dead = children.dead()
        if dead:
            print(f"stopped because {', '.join(dead)} exited; see {logs}/", flush=True)
            return 1
        if history.due():
            start, end, _ = window
            print(f"landing the last closed month: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
                  f" UTC, every {HISTORY_STEP_S // 60} min (its report follows)", flush=True)  # fmt: skip
            children.start("history", history.command(pvp), env)
        time.sleep(1)
    return 0


def _simulate_command(pvp: str, backfill_hours: float, window, scenario: Path | None) -> list[str]:
    simulate = [pvp, "simulate", "--backfill-hours", str(backfill_hours)]
    if window is not None:  # the recent back-fill ends where the demo decided: the month joins it
        simulate += ["--backfill-end", window[2].isoformat()]
    return simulate + (["--scenario", str(scenario.resolve())] if scenario else [])


def _shutdown(children: Children, pg_server, reaper, groups_file: Path, demo_env: Path) -> None:
    print("stopping …", flush=True)
    demo_env.unlink(missing_ok=True)
    children.stop_all()
    if pg_server is not None:
        pg_server.cleanup()
    reaper.kill()  # a clean stop left it nothing to do
    reaper.wait()
    groups_file.unlink(missing_ok=True)
    print("stopped.", flush=True)


def run_demo(
    settings: Settings,
    inverters: int = 2,
    backfill_hours: float = 24.0,
    scenario: Path | None = None,
    history_month: bool = True,
) -> int:
    """Run the whole platform on embedded defaults until Ctrl-C; the exit code of the run."""
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pg_server, database_url, dagster_url = _databases(settings, data_dir)
    groups_file, reaper = start_reaper(data_dir, data_dir / "pg" if pg_server is not None else None)
    children = Children(logs, groups_file)
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    pvp = str(bin_dir / "pvp")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    mqtt_url = _broker(settings, children, env, pvp)
    if mqtt_url is None:
        children.stop_all()
        print(f"the embedded MQTT broker did not start; see {logs / 'broker.log'}")
        return 1
    plant_file = _plant_file(settings, data_dir, inverters)
    landing_dir = (settings.landing_dir or data_dir / "landing").resolve()
    dagster_home = _prepare(settings, database_url, plant_file, data_dir)
    env.update(
        PVP_DATABASE_URL=database_url,
        PVP_MQTT_URL=mqtt_url,
        PVP_DATA_DIR=str(data_dir),
        PVP_PLANT_FILE=str(plant_file),
        PVP_LANDING_DIR=str(landing_dir),
        PVP_DAGSTER_STORAGE_URL=sqlalchemy_url(dagster_url, "psycopg2"),
        DAGSTER_HOME=str(dagster_home),
    )
    # first KPIs fast: the sensors look often (a user's own settings win)
    env.setdefault("PVP_SENSOR_INTERVAL_S", "5")
    env.setdefault("PVP_KPI_SENSOR_INTERVAL_S", "5")
    demo_env = _write_demo_env(data_dir, env)
    # Prometheus endpoints: the collector's (its health port) and the ingest/KPI side's (`pvp metrics`)
    env.setdefault("PVP_HEALTH_PORT", str(free_port(8790)))
    api_token_file = demo_api_token(data_dir, env)
    now = clock.use_settings(settings).now()  # the simulator's clock (accelerated time too)
    zones = [site.timezone for site in load_plant(plant_file).sites]
    window = history_window(zones, now, backfill_hours) if history_month else None
    history = History(window, database_url)
    simulate = _simulate_command(pvp, backfill_hours, window, scenario)
    ports = _start_services(children, settings, env, bin_dir, simulate)
    stopping = _stop_flag()
    print(
        _banner(settings, data_dir, ports, env, api_token_file, mqtt_url, database_url, plant_file),
        flush=True,
    )
    if wait_for_port(ports["panel"], 60) and wait_for_port(ports["dagster"], 120):
        print("all services answer.", flush=True)
    code = _supervise(children, history, window, {**env, "PVP_BIN": pvp}, stopping)
    _shutdown(children, pg_server, reaper, groups_file, demo_env)
    return code
