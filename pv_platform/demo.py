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
from datetime import UTC, datetime
from pathlib import Path

from pv_platform import clock
from pv_platform.dashboard_server import login_configured, panel_command, panel_env
from pv_platform.demo_history import HISTORY_STEP_S, History, history_window
from pv_platform.plant import dump_plant, load_plant, parse_plant
from pv_platform.services import ensure_database, free_port, port_is_open, start_embedded_postgres
from pv_platform.settings import Settings
from pv_platform.storage import Database, redact, sqlalchemy_url
from pv_platform.vocabulary import Metric

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


# Where the demo plant may stand: real places spread around the globe, so that one has the sun up now.
DEMO_SITES = (
    ("zurich", "Demo Plant Zurich", 47.37, 8.54, 410, "Europe/Zurich"),
    ("delhi", "Demo Plant Delhi", 28.61, 77.21, 216, "Asia/Kolkata"),
    ("sydney", "Demo Plant Sydney", -33.87, 151.21, 40, "Australia/Sydney"),
    ("tokyo", "Demo Plant Tokyo", 35.68, 139.69, 40, "Asia/Tokyo"),
    ("capetown", "Demo Plant Cape Town", -33.92, 18.42, 20, "Africa/Johannesburg"),
    ("saopaulo", "Demo Plant Sao Paulo", -23.55, -46.63, 760, "America/Sao_Paulo"),
    ("phoenix", "Demo Plant Phoenix", 33.45, -112.07, 331, "America/Phoenix"),
    ("honolulu", "Demo Plant Honolulu", 21.31, -157.86, 5, "Pacific/Honolulu"),
)


def sunniest_site(when: datetime | None = None) -> tuple:
    """The demo site with the sun highest in the sky at `when` (now), so live power is not a night-time 0."""
    import pandas as pd
    import pvlib

    ts = pd.DatetimeIndex([pd.Timestamp(when or datetime.now(UTC))])

    def elevation(site: tuple) -> float:
        return float(
            pvlib.solarposition.get_solarposition(ts, site[2], site[3])["apparent_elevation"].iloc[
                0
            ]
        )

    return max(DEMO_SITES, key=elevation)


def demo_plant(inverter_ports: list[int], where: tuple = DEMO_SITES[0]) -> dict:
    """The demo plant: one site, N SunSpec inverters on Modbus TCP, a weather station on MQTT."""
    devices = [
        {
            "id": f"inv{i + 1}",
            "name": f"Inverter {i + 1}",
            "kind": "inverter",
            "integration": "sunspec_modbus",
            "p_dc_kw": 110.0,
            "p_ac_kw": 100.0,
            "gamma_pdc_per_c": -0.0037,
            "config": {"host": "127.0.0.1", "port": port, "unit_id": 1, "poll_interval_s": 1.0},
        }
        for i, port in enumerate(inverter_ports)
    ]
    devices.append(
        {
            "id": "wx1",
            "name": "Weather station",
            "kind": "weather_station",
            "integration": "mqtt",
            "config": {
                "topic": f"pvp/sim/{where[0]}/wx1",
                "fields": {
                    Metric.POA_IRRADIANCE: "poa",
                    Metric.GHI_IRRADIANCE: "ghi",
                    Metric.MODULE_TEMPERATURE: "t_mod",
                    Metric.AMBIENT_TEMPERATURE: "t_amb",
                    Metric.WIND_SPEED: "wind",
                },
            },
        }
    )
    devices.append(
        {
            "id": "meter1",
            "name": "Grid meter",
            "kind": "meter",
            "integration": "mqtt",
            "config": {
                "topic": f"pvp/sim/{where[0]}/meter1",
                "fields": {
                    Metric.AC_POWER: "p_w",
                    Metric.EXPORT_ENERGY: "e_export_wh",
                    Metric.IMPORT_ENERGY: "e_import_wh",
                    Metric.GRID_FREQUENCY: "f_hz",
                    Metric.GRID_VOLTAGE: "u_v",
                    Metric.POWER_FACTOR: "pf",
                },
            },
        }
    )
    site_id, name, latitude, longitude, altitude_m, timezone = where
    site = {
        "id": site_id, "name": name, "latitude": latitude, "longitude": longitude, "altitude_m": altitude_m,
        "timezone": timezone, "tilt_deg": 30, "azimuth_deg": 180 if latitude >= 0 else 0, "devices": devices,
    }  # fmt: skip
    return {"sites": [site]}


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

    def stop_all(self, timeout_s: float = 20.0, last: tuple[str, ...] = ("broker",)) -> None:
        """SIGTERM every child group, those in `last` (the broker its clients talk to) after the
        others have stopped; SIGKILL whatever is left after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
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


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_is_open("127.0.0.1", port):
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


def run_demo(
    settings: Settings,
    inverters: int = 2,
    backfill_hours: float = 24.0,
    scenario: Path | None = None,
    history_month: bool = True,
) -> int:
    data_dir = settings.data_dir.resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    pg_server = None
    if settings.database_url:
        admin_url = settings.database_url
        database_url = settings.database_url
    else:
        print(f"starting embedded PostgreSQL (data in {data_dir / 'pg'}) …", flush=True)
        pg_server = start_embedded_postgres(data_dir / "pg")
        admin_url = pg_server.get_uri()
        database_url = ensure_database(admin_url, "pvp")
    dagster_url = settings.dagster_database_url or ensure_database(admin_url, "dagster")

    groups_file, reaper = start_reaper(data_dir, data_dir / "pg" if pg_server is not None else None)
    children = Children(data_dir / "logs", groups_file)
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if settings.mqtt_url:
        mqtt_url = settings.mqtt_url
    else:
        mqtt_port = free_port(1883)
        mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}"
        children.start("broker", [str(bin_dir / "pvp"), "broker", "--port", str(mqtt_port)], env)
        if not wait_for_port(mqtt_port, 20):
            children.stop_all()
            print(f"the embedded MQTT broker did not start; see {data_dir / 'logs' / 'broker.log'}")
            return 1

    plant_file = settings.plant_file.resolve() if settings.plant_file else data_dir / "plant.yaml"
    if not settings.plant_file:
        ports: list[int] = []
        for i in range(inverters):
            port = free_port(15020 + i)
            while port in ports:
                port = free_port()
            ports.append(port)
        where = sunniest_site()
        print(f"demo plant: {where[1]} (the sun is highest there now)", flush=True)
        dump_plant(parse_plant(demo_plant(ports, where), "<demo>"), plant_file)
    landing_dir = (settings.landing_dir or data_dir / "landing").resolve()

    db = Database(database_url)
    db.migrations.migrate(settings.timescale_chunk_interval)
    db.plant.sync(load_plant(plant_file))
    db.dispose()

    dagster_home = data_dir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
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
    demo_env = (
        data_dir / "demo.env"
    )  # the Python API (get_settings) finds the running demo through it
    demo_env.write_text(
        "".join(
            f"{k}={env[k]}\n"
            for k in ("PVP_DATABASE_URL", "PVP_MQTT_URL", "PVP_PLANT_FILE", "PVP_LANDING_DIR")
        )
    )
    dagster_port, panel_port = free_port(3000), free_port(5006)
    # Prometheus endpoints: the collector's (its health port) and the ingest/KPI side's (`pvp metrics`)
    env.setdefault("PVP_HEALTH_PORT", str(free_port(8790)))
    metrics_port = free_port(9108)
    api_port = free_port(8100)
    api_token_file = demo_api_token(data_dir, env)
    pvp = str(bin_dir / "pvp")
    now = clock.use_settings(settings).now()  # the simulator's clock (accelerated time too)
    zones = [site.timezone for site in load_plant(plant_file).sites]
    window = history_window(zones, now, backfill_hours) if history_month else None
    history = History(window, database_url)
    simulate = [pvp, "simulate", "--backfill-hours", str(backfill_hours)]
    if window is not None:  # the recent back-fill ends where the demo decided: the month joins it
        simulate += ["--backfill-end", window[2].isoformat()]
    children.start(
        "simulator", simulate + (["--scenario", str(scenario.resolve())] if scenario else []), env
    )
    children.start("collector", [pvp, "collect"], env)
    # the webserver and the daemon as two children (not `dagster dev`, which did not always pass a
    # SIGTERM on): each stops on its own signal, and the reaper knows both process groups
    workspace = str(REPO / "workspace.yaml")
    children.start("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env)
    children.start(
        "dagster-webserver",
        [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(dagster_port)],
        env,
    )  # fmt: skip
    children.start("metrics", [pvp, "metrics", "--port", str(metrics_port)], env)
    children.start("api", [pvp, "api", "--port", str(api_port)], env)
    children.start(
        "panel", panel_command(settings, "127.0.0.1", panel_port), panel_env(settings, env)
    )

    stopping = {"flag": False}

    def _stop(signum, frame) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(
        f"\nPV Platform demo is starting (logs in {data_dir / 'logs'}/):\n"
        f"  Dashboard (Panel):   http://127.0.0.1:{panel_port}/app\n"
        f"  Dagster UI:          http://127.0.0.1:{dagster_port}\n"
        f"  Metrics (Prometheus): http://127.0.0.1:{env['PVP_HEALTH_PORT']}/metrics (collector),"
        f" http://127.0.0.1:{metrics_port}/metrics (ingest, KPIs)\n"
        f"  HTTP API:            http://127.0.0.1:{api_port}/api/v1/openapi.json"
        f" ({api_token_file})\n"
        f"  MQTT broker:         {mqtt_url}   (live bus: {settings.live_topic_prefix}/#)\n"
        f"  Telemetry database:  {redact(database_url)}\n"
        f"  Plant file:          {plant_file}\n"
        + (
            "  The dashboard asks for a login (PVP_DASHBOARD_USERS_FILE).\n"
            if login_configured(settings)
            else "  The dashboard runs open (no login) in demo mode; set PVP_DASHBOARD_USERS_FILE to require one.\n"
        )
        + "Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    if wait_for_port(panel_port, 60) and wait_for_port(dagster_port, 120):
        print("all services answer.", flush=True)
    code = 0
    while not stopping["flag"]:
        dead = children.dead()
        if dead:
            print(f"stopped because {', '.join(dead)} exited; see {data_dir / 'logs'}/", flush=True)
            code = 1
            break
        if history.due():
            start, end, _ = window
            print(f"landing the last closed month: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
                  f" UTC, every {HISTORY_STEP_S // 60} min (its report follows)", flush=True)  # fmt: skip
            children.start("history", history.command(pvp), env)
        time.sleep(1)
    print("stopping …", flush=True)
    demo_env.unlink(missing_ok=True)
    children.stop_all()
    if pg_server is not None:
        pg_server.cleanup()
    reaper.kill()  # a clean stop left it nothing to do
    reaper.wait()
    groups_file.unlink(missing_ok=True)
    print("stopped.", flush=True)
    return code
