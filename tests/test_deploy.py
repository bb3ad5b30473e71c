"""The production layout, checked where it can be run here: no Docker engine exists on these machines, so
the compose file is checked for what it promises (logins everywhere, least-privilege roles, health
checks, localhost-only admin ports, secrets only from the environment), and its init step — `pvp migrate
--roles --create-database dagster` — runs for real against PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import yaml
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = [name for name, s in SERVICES.items() if not name.endswith("-init")]


def test_every_long_running_service_restarts_and_the_important_ones_report_health():
    for name in LONG_RUNNING:
        assert SERVICES[name].get("restart") == "unless-stopped", name
    for name in (
        "timescaledb",
        "mosquitto",
        "collector",
        "dagster-code",
        "dagster-webserver",
        "dashboard",
    ):
        assert "test" in SERVICES[name]["healthcheck"], name


def test_no_secret_is_written_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    for url in re.findall(r"\w+://[^\s\"']+", text):
        credentials = re.match(r"\w+(\+\w+)?://([^@/]+)@", url)
        if credentials and ":" in credentials.group(2):
            assert "${" in credentials.group(2), f"literal password in {url}"
    for service in SERVICES.values():
        env = service.get("environment") or {}
        for key, value in env.items() if isinstance(env, dict) else []:
            if "PASSWORD" in key or "SECRET" in key:
                assert str(value).startswith("${"), key


def test_logins_everywhere_and_admin_ports_on_localhost():
    conf = (REPO / "deploy" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file" in conf and "certfile" in conf
    assert SERVICES["mosquitto"]["ports"] == ["8883:8883"]  # TLS only from outside
    for name in ("dagster-webserver", "dashboard"):
        assert all(p.startswith("127.0.0.1:") for p in SERVICES[name]["ports"]), name
    dash = SERVICES["dashboard"]["environment"]
    assert "PVP_DASHBOARD_USERS_FILE" in dash and "pvp_reader" in dash["PVP_DATABASE_URL"]
    assert "pvp_ingest" in COMPOSE["x-pvp-env"]["PVP_DATABASE_URL"]
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "dagster-code"
    assert SERVICES["db-init"]["command"] == [
        "pvp",
        "migrate",
        "--roles",
        "--create-database",
        "dagster",
    ]


def test_the_init_step_runs_migrations_roles_and_dagster_database(pg_url, pg_admin_url):
    u = make_url(pg_url)
    dagster_db = f"{u.database}_dagster"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATABASE_URL=pg_url, PVP_INGEST_DB_PASSWORD="i-pw", PVP_READER_DB_PASSWORD="r-pw"
    )
    pvp = str(Path(sys.executable).parent / "pvp")
    done = subprocess.run(
        [pvp, "migrate", "--roles", "--create-database", dagster_db], env=env, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "roles pvp_ingest" in done.stdout and "i-pw" not in done.stdout + done.stderr
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (dagster_db,)
        ).fetchone()
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('pvp_ingest', 'pvp_reader')"
        ).fetchone() == (2,)
        conn.execute(f'DROP DATABASE "{dagster_db}"')
    env.pop("PVP_READER_DB_PASSWORD")
    refused = subprocess.run(
        [pvp, "migrate", "--roles"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "PVP_READER_DB_PASSWORD" in refused.stderr
