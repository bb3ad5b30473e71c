"""The alert scorer's platform route (issue 17): a scenario through the platform as users run it. The
simulator and `pvp collect` on one accelerated clock land the readings; the real `dagster-daemon` (the
project's dagster.yaml and workspace, its own Dagster database) ingests them by the landing sensor and
computes the KPIs and the KPI alerts by `hourly_kpis_sensor` (the running hour's 10-minute windows as
they close), all on the same platform clock (PVP_CLOCK_START/SPEED/ANCHOR). Nobody launches a run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import psycopg

from pv_platform.services import stop_group

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STARTUP_S = 120.0
ACTIVE = "('QUEUED', 'NOT_STARTED', 'STARTING', 'STARTED', 'CANCELING')"


def daemon_env(env: dict, work: Path, dagster_url: str, spec: dict) -> dict:
    """The settings every process of the run shares: the Dagster instance, 5-s sensors and one
    accelerated clock that reads the live window's start STARTUP_S from now."""
    from pv_platform.storage.urls import sqlalchemy_url

    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    live0 = pd.Timestamp(spec["live"]["start"]).to_pydatetime()
    return env | {
        "DAGSTER_HOME": str(home),
        "PVP_DAGSTER_STORAGE_URL": sqlalchemy_url(dagster_url, "psycopg2"),
        "PVP_SENSOR_INTERVAL_S": "5",
        "PVP_KPI_SENSOR_INTERVAL_S": "5",
        "PVP_CLOCK_START": live0.isoformat(),
        "PVP_CLOCK_SPEED": str(float(spec.get("speed", 60))),
        # the live window starts STARTUP_S from now; the simulator and the collector are up before it
        # (the live data then start earlier) and the daemon starts once the history is landed
        "PVP_CLOCK_ANCHOR": f"{time.time() + STARTUP_S:.3f}",
    }


def start_daemon(env: dict, work: Path) -> subprocess.Popen:
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [BIN / "dagster-daemon", "run", "-w", REPO / "workspace.yaml"], env=env, cwd=work,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def stop_daemon(daemon: subprocess.Popen) -> None:
    stop_group(daemon)


def wait_settled(
    db_url: str, dagster_url: str, last_hour: datetime, daemon, timeout_s: float = 1500.0
) -> dict:
    """Until the KPIs of `last_hour` exist and no run has been active for 20 s: the runs by job."""
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "dagster-daemon exited"
        with psycopg.connect(dagster_url) as conn:
            active = conn.execute(f"SELECT count(*) FROM runs WHERE status IN {ACTIVE}").fetchone()[
                0
            ]
        with psycopg.connect(db_url) as conn:
            done = conn.execute(
                "SELECT count(*) FROM kpi_hourly WHERE period_start = %s", (last_hour,)
            ).fetchone()[0]
        if active == 0 and done:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 20:
                break
        else:
            quiet_since = None
        time.sleep(2)
    else:
        raise TimeoutError(f"the daemon had not settled after {timeout_s:.0f} s")
    with psycopg.connect(dagster_url) as conn:
        rows = conn.execute(
            "SELECT pipeline_name, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return {f"{job} {status}": n for job, status, n in rows}
