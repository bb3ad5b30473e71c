"""The report chain under the real `dagster-daemon`: once a month's KPIs are materialized after the month
closed, `report_sensor` (ticked by the daemon) launches `monthly_report`, which stores the PDF and HTML
and e-mails the PDF to a real SMTP server, once; the running month gets no report."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import dagster as dg
import pytest

from pv_platform.defs.kpis.assets import monthly_kpis
from pv_platform.defs.resources import platform_resources
from pv_platform.plant import dump_plant
from pv_platform.services import drop_database, ensure_database
from pv_platform.storage import sqlalchemy_url
from tests.conftest import start_daemon, stop_daemon, wait_for
from tests.report_seed import END, START, seed_november
from tests.test_reports import _plant, pdf_pages

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def dagster_home(pg_admin_url, tmp_path, monkeypatch):
    name = f"pvp_test_dagster_{uuid.uuid4().hex[:8]}"
    url = sqlalchemy_url(ensure_database(pg_admin_url, name), "psycopg2")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("PVP_DAGSTER_STORAGE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield home
    drop_database(pg_admin_url, name)


@pytest.mark.slow
def test_daemon_makes_and_mails_the_report_of_a_closed_month(
    db,
    dagster_home,
    smtp_server,
    tmp_path,
    monkeypatch,
):
    port, received = smtp_server
    plant = _plant()
    seed_november(db, plant, missing_hour=False)  # complete: reported at once
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    landing.mkdir()
    env = dict(
        os.environ, PVP_DATABASE_URL=db.url, PVP_PLANT_FILE=str(plant_file),
        PVP_LANDING_DIR=str(landing), PVP_KPI_SENSOR_INTERVAL_S="3", PVP_SENSOR_INTERVAL_S="30",
        PVP_SMTP_HOST="127.0.0.1", PVP_SMTP_PORT=str(port), PVP_SMTP_SECURITY="none",
        PVP_SMTP_USER="reports", PVP_SMTP_PASSWORD="s3cret-pw", PVP_SMTP_FROM="pv@example.org",
        PVP_REPORT_RECIPIENTS='["owner@example.org"]', PATH=f"{BIN}:{os.environ['PATH']}",
    )  # fmt: skip
    resources = platform_resources(db.url, str(landing), str(plant_file))
    with dg.DagsterInstance.get() as instance:
        for month in ("2026-11-01", "2026-12-01"):  # closed, and the running month
            result = dg.materialize(
                [monthly_kpis], partition_key=month, resources=resources, instance=instance,
            )  # fmt: skip
            assert result.success
    daemon, log = start_daemon(env, tmp_path)
    try:
        wait_for(lambda: received, 240, "the report e-mail", every_s=2,
                 progress=lambda: (tmp_path / "daemon.log").read_text()[-2000:])  # fmt: skip
        reports = db.reports.list(["testsite"])
        assert [(r.grain, r.period) for r in reports.itertuples()] == [("monthly", "2026-11")]
        stored = db.kpis.read("kpi_monthly", START, END, "testsite").set_index("device_id").loc["*"]
        assert reports.iloc[0].summary["energy_ac_kwh"] == pytest.approx(stored.energy_ac_kwh)
        msg = message_from_bytes(received[0]["data"], policy=policy.default)
        pdf = next(msg.iter_attachments()).get_content()
        assert pdf == db.reports.document("testsite", "monthly", "2026-11", "pdf")
        assert f"{stored.energy_ac_kwh:,.1f}" in pdf_pages(pdf)[0][0]
        time.sleep(10)  # more ticks: nothing more is sent, and the running month gets no report
        assert len(received) == 1 and len(db.reports.list(["testsite"])) == 1
    finally:
        stop_daemon(daemon, log)
    assert "s3cret-pw" not in (tmp_path / "daemon.log").read_text()
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="monthly_report_job"))
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        assert runs[0].tags["dagster/partition"] == "2026-11-01"  # one run per month, all its sites
