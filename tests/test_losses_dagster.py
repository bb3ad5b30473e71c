"""The loss analytics in Dagster on a real instance and PostgreSQL: the daily KPIs of a site change (the
rollup chain materializes a day of simulated telemetry) → `loss_analytics_sensor` asks for that site →
the run writes soiling, degradation and the waterfall and reports the POA and clock detectors as asset
checks; a plant file whose longitude is off by 15° (the data then run an hour behind the sun) fails the
clock check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from integrations.simulator.runner import backfill_landing
from pv_platform.definitions import build_definitions
from pv_platform.defs.kpis.assets import daily_kpis, hourly_kpis
from pv_platform.defs.losses.assets import loss_analytics
from pv_platform.defs.losses.jobs import loss_job
from pv_platform.defs.losses.sensors import loss_analytics_sensor
from pv_platform.defs.resources import platform_resources
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.landing import list_closed
from pv_platform.plant import dump_plant
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.loss_seed import daily_kpis as seeded_daily_kpis
from tests.test_dagster import _current


@pytest.fixture
def platform(pg_url, plant, landing, tmp_path) -> dict:
    plant.sites[0].tariff_per_kwh = 0.1
    plant_file = tmp_path / "plant.yaml"
    dump_plant(plant, plant_file)
    Database(pg_url).migrations.migrate()
    return platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )


def _tick(instance, defs, cursor=None):
    ctx = dg.build_sensor_context(instance=_current(instance), definitions=defs, cursor=cursor)
    return loss_analytics_sensor(ctx)


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_daily_kpis_change_then_the_sensor_runs_the_sites_loss_analytics(
    platform, plant, landing, tmp_path
):
    db = Database(platform["kpi_store"].database_url)
    # 800 days of history (2.2 years, −0.6 %/y, soiling, cleanings) as the rollups would have left it
    history, truth = seeded_daily_kpis(
        "testsite", (("inv1", 110.0), ("inv2", 110.0)), start="2023-06-01", days=800
    )
    db.kpis.replace(
        "kpi_daily", datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC), history
    )
    # and the last three days of telemetry through the real chain: ingest → hourly → daily
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    backfill_landing(
        plant, landing, seed=3, start=today - timedelta(days=3, minutes=30), end=today, step_s=120
    )
    defs = build_definitions(platform)
    with dg.instance_for_test() as instance:
        run_config = {"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}}
        assert ingest_job.execute_in_process(
            run_config=run_config, instance=_current(instance), resources=platform
        ).success
        tags = {"dagster/asset_partition_range_start": f"{today - timedelta(days=3):%Y-%m-%d-%H:%M}",
                "dagster/asset_partition_range_end": f"{today - timedelta(hours=1):%Y-%m-%d-%H:%M}"}  # fmt: skip
        assert dg.materialize(
            [hourly_kpis], instance=_current(instance), resources=platform, tags=tags
        ).success
        instance.add_dynamic_partitions("sites", ["testsite"])
        assert _tick(instance, defs).run_requests == []  # no daily KPIs materialized yet
        cursor = _tick(instance, defs).cursor
        day = f"{today - timedelta(days=2):%Y-%m-%d}"
        assert dg.materialize(
            [daily_kpis], partition_key=day, instance=_current(instance), resources=platform
        ).success

        result = _tick(instance, defs, cursor)
        assert [(r.partition_key, r.job_name) for r in result.run_requests] == [("testsite", None)]
        run = defs.resolve_job_def(loss_job.name).execute_in_process(
            instance=_current(instance), partition_key="testsite"
        )
        assert run.success
        checks = _checks(run)
        assert checks["clock_shift"].passed, checks["clock_shift"].description
        assert checks["irradiance_clearsky"].passed, checks["irradiance_clearsky"].description
        # analysed: cursor moved on, nothing pending
        assert _tick(instance, defs, result.cursor).run_requests == []

        degradation = db.losses.read_degradation("testsite").set_index("device_id")
        for device in ("inv1", "inv2", "*"):
            rate = degradation.loc[device, "rate_pct_per_year"]
            assert abs(rate - truth["rd_pct"]) <= 0.1, (device, rate)
        losses = db.losses.read_daily(
            datetime(2000, 1, 1, tzinfo=UTC), today + timedelta(days=1), "testsite"
        )
        assert len(losses) == 3 * (
            800 + 1
        )  # two inverters and the site, every day incl. the simulated one
        mat = (
            instance.fetch_materializations(loss_analytics.key, limit=1)
            .records[0]
            .asset_materialization
        )
        assert mat.metadata["rate_pct_per_year"].value == pytest.approx(
            degradation.loc["*", "rate_pct_per_year"], abs=1e-4
        )

        # the plant file says the site is 15° further east: the sun there peaks an hour before the data
        plant.sites[0].longitude += 15.0
        dump_plant(plant, platform["plant"].plant_file)
        run = defs.resolve_job_def(loss_job.name).execute_in_process(
            instance=_current(instance), partition_key="testsite"
        )
        clock_check = _checks(run)["clock_shift"]
        assert not clock_check.passed and "timestamps shifted" in clock_check.description, (
            clock_check.description
        )
        # ... and the clock_shift rule opened an alert through the engine
        opened = AlertStore(db.engine).active()
        assert "clock_shift:testsite:*" in opened, list(opened)
        assert "timestamps shifted" in opened["clock_shift:testsite:*"]["message"]
