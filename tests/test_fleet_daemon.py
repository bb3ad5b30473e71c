"""A plant of sites in three time zones under the real `dagster-daemon` (the project's dagster.yaml and
workspace): nobody launches a run. Two UTC days of history land; the landing sensor ingests, the history
sensor hands the hours to one backfill, which computes them and then every site's own local days in
one run per period (the days together in one range run), not one run per site and day. Each site's day is checked
against that site's hours in its own local window."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus

from integrations.simulator.runner import backfill_landing
from pv_platform.defs.kpis.jobs import site_reference_job
from pv_platform.defs.kpis.sensors import RANGE_END, RANGE_START
from pv_platform.defs.losses.jobs import loss_job
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database
from pv_platform.storage import Database
from tests.conftest import backfills, daemon_env, scalar, start_daemon, stop_daemon, wait_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ZONES = {"zrh": "Europe/Zurich", "nyc": "America/New_York", "tyo": "Asia/Tokyo"}
# 2024-06-15 00:00 .. 2024-06-17 00:00 UTC: Tokyo's and Zurich's 16 June and New York's 15 June are
# whole local days in it; the local days 14 .. 17 June are touched
START, END = datetime(2024, 6, 15, tzinfo=UTC), datetime(2024, 6, 17, tzinfo=UTC)
WHOLE_DAY = {"zrh": "2024-06-16", "nyc": "2024-06-15", "tyo": "2024-06-16"}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _plant():
    def site(site_id: str, lat: float, lon: float) -> dict:
        return {
            "id": site_id, "name": site_id, "latitude": lat, "longitude": lon,
            "timezone": ZONES[site_id], "commissioning_date": "2024-06-01",
            "devices": [
                {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 110, "p_ac_kw": 100},
                {"id": "wx1", "kind": "weather_station", "integration": "mqtt", "config": {
                    "topic": f"pvp/{site_id}/wx1",
                    "fields": {"poa_irradiance": "poa", "module_temperature": "t_mod"}}},
            ],
        }  # fmt: skip

    return parse_plant(
        {"sites": [site("zrh", 47.4, 8.5), site("nyc", 40.7, -74.0), site("tyo", 35.7, 139.7)]},
        "<test>",
    )


def _local_day(day: str, tz: str) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz))
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def test_each_sites_local_day_is_computed_in_one_run_per_period(
    pg_admin_url, pg_url, tmp_path, monkeypatch
):
    dagster_db = f"pvp_dagster_{uuid.uuid4().hex[:8]}"
    dagster_url = ensure_database(pg_admin_url, dagster_db)
    plant, plant_file, landing = _plant(), tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(plant, plant_file)
    landing.mkdir()
    env = daemon_env(tmp_path, pg_url, dagster_url, plant_file, landing)
    backfill_landing(plant, landing, seed=11, start=START, end=END, step_s=120)
    daemon, log = start_daemon(env, tmp_path)
    db = Database(pg_url)
    monkeypatch.setenv("PVP_DAGSTER_STORAGE_URL", env["PVP_DAGSTER_STORAGE_URL"])  # dagster.yaml's
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        # every site's four touched local days (14 .. 17 June) and its month and year
        wait_for(
            lambda: scalar(db, "SELECT count(*) FROM kpi_daily WHERE device_id = '*'") >= 3 * 3
            and scalar(db, "SELECT count(DISTINCT site_id) FROM kpi_yearly") == 3,
            timeout_s=900, every_s=5, what="every site's local days",
            progress=lambda: (tmp_path / "daemon.log").read_text()[-1500:],
        )  # fmt: skip
        time.sleep(15)  # more ticks: nothing more is launched
        for site_id, day in WHOLE_DAY.items():
            start, end = _local_day(day, ZONES[site_id])
            rows = db.kpis.read("kpi_daily", start, end, site_id, "*")
            hours = db.kpis.read("kpi_hourly", start, end, site_id, "*")
            # the site's own local day: starts at its local midnight, sums its 24 local hours
            assert rows["period_start"].tolist() == [start], (site_id, rows)
            assert len(hours) == 24, (site_id, len(hours))
            assert rows["energy_ac_kwh"].iloc[0] == pytest.approx(hours["energy_ac_kwh"].sum())
            assert rows["energy_ac_kwh"].iloc[0] > 100.0  # a sunny June day of a 100 kW inverter
            coverage = db.kpis.coverage("daily", start, end, site_id)
            assert coverage[["hours_expected", "hours_present"]].values.tolist() == [[24, 24]]
        # the two days are history: one backfill (made by history_backfill_sensor) computed them
        # (the backfill daemon marks it complete on its next iteration, every 30 s)
        done = wait_for(
            lambda: next(
                (b for b in backfills(instance)[:1] if b.status in BULK_ACTION_TERMINAL_STATUSES),
                None,
            ),
            timeout_s=120, every_s=2, what="the backfill's end",
        )  # fmt: skip
        assert done.status == BulkActionStatus.COMPLETED_SUCCESS, done.status
        ok = [
            run
            for run in instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])
            )
            # not the ingest runs, each new site's reference temperature, the loss analytics that
            # follow a site's changed days, nor the calendar schedule closing a site's real (2026) day
            # when the test crosses its midnight
            if run.job_name not in (ingest_job.name, site_reference_job.name, loss_job.name)
            and "dagster/schedule_name" not in run.tags
        ]
        assert {run.tags.get("dagster/backfill") for run in ok} == {done.backfill_id}
        by_assets = Counter(tuple(sorted(k.path[-1] for k in run.asset_selection)) for run in ok)
        # the 48 hours in one run, one run for the four local days of all three sites, one for
        # June, one for 2024
        assert by_assets == {
            ("alerts", "hourly_kpis"): 1,
            ("daily_kpis",): 1,
            ("monthly_kpis",): 1,
            ("yearly_kpis",): 1,
        }, by_assets
        day_run = next(run for run in ok if run.asset_selection == {dg.AssetKey("daily_kpis")})
        assert (day_run.tags[RANGE_START], day_run.tags[RANGE_END]) == ("2024-06-14", "2024-06-17")
    finally:
        instance.dispose()
        stop_daemon(daemon, log)
        db.dispose()
        time.sleep(1)
        drop_database(pg_admin_url, dagster_db)
