"""The loss analytics under the real `dagster-daemon`: telemetry lands (two days of a simulated site with a
plant controller's curtailment episode), and nobody launches a run: the landing sensor ingests, the hourly
and rollup sensors compute the hours and local days, and `loss_analytics_sensor`, ticked by the daemon,
runs `loss_analytics` for the site, which writes the waterfall (curtailment priced apart from clipping) and
the degradation over the site's 800 earlier days."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from integrations.simulator.runner import backfill_landing
from integrations.simulator.scenarios import Scenario
from pv_platform.analytics.waterfall import CAUSES
from pv_platform.plant import dump_plant
from pv_platform.services import drop_database, ensure_database
from pv_platform.storage import Database
from tests.conftest import daemon_env, start_daemon, stop_daemon, wait_for
from tests.loss_seed import daily_kpis as seeded_daily_kpis

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def test_the_daemon_runs_the_loss_analytics_after_telemetry_lands(
    pg_admin_url, pg_url, plant, landing, tmp_path
):
    dagster_db = f"pvp_dagster_{uuid.uuid4().hex[:8]}"
    dagster_url = ensure_database(pg_admin_url, dagster_db)
    plant.sites[0].tariff_per_kwh = 0.1
    plant_file = tmp_path / "plant.yaml"
    dump_plant(plant, plant_file)
    env = daemon_env(tmp_path, pg_url, dagster_url, plant_file, landing)
    db = Database(pg_url)
    # 800 earlier days (2.2 years, −0.6 %/y, soiling, cleanings) as the rollups would have left them
    history, truth = seeded_daily_kpis(
        "testsite", (("inv1", 110.0), ("inv2", 110.0)), start="2023-06-01", days=800
    )
    db.kpis.replace(
        "kpi_daily", datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC), history
    )
    # two days of telemetry; yesterday 10:00-12:00 UTC a plant controller holds both at 10 % (10 kW)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    episode = (today - timedelta(hours=14), today - timedelta(hours=12))
    scenario = Scenario.model_validate(
        {
            "faults": [
                {"kind": "curtailment", "limit_pct": 10, "start": episode[0], "end": episode[1]}
            ]
        }
    )
    backfill_landing(
        plant, landing, seed=3, start=today - timedelta(days=2, hours=2), end=today, step_s=60,
        scenario=scenario,
    )  # fmt: skip
    daemon, log = start_daemon(env, tmp_path)
    yesterday = today - timedelta(days=1)
    try:

        def analysed() -> bool:
            """Yesterday's waterfall is stored for both inverters and the site, from the day's final
            KPIs (the curtailment in both tables agrees)."""
            daily = db.kpis.read(
                "kpi_daily", yesterday - timedelta(hours=2), today - timedelta(hours=2), "testsite"
            )
            losses = db.losses.read_daily(
                yesterday - timedelta(hours=2), today - timedelta(hours=2), "testsite"
            )
            if len(losses) != 3 or len(daily) != 3:
                return False
            kpi = daily.set_index("device_id")["energy_curtailed_kwh"].astype(float)
            loss = losses.set_index("device_id")["curtailment_kwh"].astype(float)
            return bool(kpi["inv1"] > 1.0 and np.allclose(kpi.sort_index(), loss.sort_index()))

        wait_for(analysed, timeout_s=1800, every_s=5, what="the loss analytics of the landed day",
                 progress=lambda: (tmp_path / "daemon.log").read_text()[-2000:])  # fmt: skip
        daily = db.kpis.read(
            "kpi_daily", yesterday - timedelta(hours=2), today - timedelta(hours=2), "testsite"
        )
        losses = db.losses.read_daily(
            yesterday - timedelta(hours=2), today - timedelta(hours=2), "testsite"
        )
        daily, losses = daily.set_index("device_id"), losses.set_index("device_id")
        for device in ("inv1", "inv2"):
            curtailed = daily.loc[device, "energy_curtailed_kwh"]
            assert curtailed > 1.0, daily.loc[device].to_dict()  # two hours above 10 kW
            assert losses.loc[device, "curtailment_kwh"] == pytest.approx(curtailed)
            assert losses.loc[device, "clipping_kwh"] == pytest.approx(
                daily.loc[device, "energy_clipped_kwh"]
            )
            parts = sum(losses.loc[device, f"{c}_kwh"] for c in CAUSES)
            gap = losses.loc[device, "reference_kwh"] - losses.loc[device, "measured_kwh"]
            assert parts == pytest.approx(gap, abs=1e-9)
        assert losses.loc["*", "curtailment_kwh"] == pytest.approx(
            losses.loc[["inv1", "inv2"], "curtailment_kwh"].sum()
        )
        degradation = db.losses.read_degradation("testsite").set_index("device_id")
        for device in ("inv1", "inv2", "*"):
            rate = degradation.loc[device, "rate_pct_per_year"]
            assert np.isfinite(rate) and abs(rate - truth["rd_pct"]) <= 0.1, (device, rate)
        time.sleep(15)  # the runs under way finish; then count them
    finally:
        stop_daemon(daemon, log)
    try:
        with psycopg.connect(dagster_url) as conn:
            runs = conn.execute(
                "SELECT status, count(*) FROM runs WHERE pipeline_name = 'loss_analytics_job'"
                " GROUP BY 1"
            ).fetchall()
            by_sensor = conn.execute(
                "SELECT count(DISTINCT run_id) FROM run_tags WHERE key = 'dagster/sensor_name'"
                " AND value = 'loss_analytics_sensor'"
            ).fetchone()[0]
        statuses = dict(runs)
        # one run per batch of changed days (2 local days and their month/year rollups): few, all fine
        assert 1 <= statuses.get("SUCCESS", 0) <= 4 and set(statuses) == {"SUCCESS"}, statuses
        assert by_sensor == statuses["SUCCESS"]  # each launched by the daemon ticking the sensor
    finally:
        db.dispose()
        time.sleep(1)
        drop_database(pg_admin_url, dagster_db)
