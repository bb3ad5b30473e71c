"""The Dagster side on a real instance and a real PostgreSQL: sensor → ingest run → hourly KPI partitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from integrations.simulator.devices import backfill_frames
from integrations.simulator.runner import backfill_landing
from pv_platform.defs import build_definitions, defs
from pv_platform.defs.ingest import ingest_job, landing_sensor
from pv_platform.defs.kpis import hourly_kpis
from pv_platform.defs.resources import PlatformResource
from pv_platform.kpi import counter_energy, integrate_rate
from pv_platform.landing import list_closed
from pv_platform.plant import dump_plant

NOON = datetime(2026, 6, 21, 9, tzinfo=UTC)  # 11:00 in Zurich, summer: a sunny hour


def test_definitions_load():
    repo = defs.get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {
        "landing_sensor",
        "kpi_automation",
        "kpi_rollup_sensor",
    }
    assert {s.name for s in repo.schedule_defs} == {"kpi_calendar_schedule"}
    assert repo.get_job("ingest_job") is not None
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"telemetry", "hourly_kpis", "daily_kpis", "monthly_kpis", "yearly_kpis"} <= keys


@pytest.fixture
def platform(pg_url, plant, landing, tmp_path) -> PlatformResource:
    plant_file = tmp_path / "plant.yaml"
    dump_plant(plant, plant_file)
    return PlatformResource(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )


def test_sensor_ingest_and_hourly_pr(platform, plant, landing):
    start, end = NOON - timedelta(hours=1), NOON + timedelta(hours=2)
    backfill_landing(plant, landing, seed=7, start=start, end=end)
    segments = list_closed(landing)
    assert segments

    test_defs = build_definitions(platform)
    with dg.instance_for_test() as instance:
        # 1. the sensor asks for one run covering every waiting segment
        ctx = dg.build_sensor_context(
            instance=instance, resources={"platform": platform}, definitions=test_defs
        )
        result = landing_sensor(ctx)
        assert len(result.run_requests) == 1
        request = result.run_requests[0]
        assert request.run_config["ops"]["ingest_segments"]["config"]["segment_ids"] == segments
        # evaluated again with its cursor, it asks for nothing new
        ctx2 = dg.build_sensor_context(
            instance=instance,
            resources={"platform": platform},
            definitions=test_defs,
            cursor=result.cursor,
        )
        assert landing_sensor(ctx2).run_requests == []

        # the automation sensor's first tick, before any data: nothing to do
        initial = dg.evaluate_automation_conditions(defs=test_defs, instance=instance)
        assert initial.total_requested == 0

        # 2. the ingest run loads the segments and reports the hours it touched
        run = ingest_job.execute_in_process(
            run_config=request.run_config, instance=instance, resources={"platform": platform}
        )
        assert run.success
        assert list_closed(landing) == []  # archived
        db = platform.db()
        rows = db.scalar("SELECT count(*) FROM samples")
        devices = len(plant.sites[0].devices)
        assert rows > 3 * 60 * devices * 3  # three hours of minute data, several metrics each
        touched = sorted(
            e.partition
            for e in instance.fetch_materializations(dg.AssetKey("telemetry"), limit=100).records
            for e in [e.asset_materialization]
        )
        assert touched == ["2026-06-21-08:00", "2026-06-21-09:00", "2026-06-21-10:00"]

        # offering the same segments again inserts nothing (ledger) and reports no rows
        again = ingest_job.execute_in_process(
            run_config=request.run_config, instance=instance, resources={"platform": platform}
        )
        assert again.success and db.scalar("SELECT count(*) FROM samples") == rows

        # 3. automation asks for exactly the hours whose telemetry changed
        evaluation = dg.evaluate_automation_conditions(
            defs=test_defs, instance=instance, cursor=initial.cursor
        )
        assert evaluation.get_requested_partitions(hourly_kpis.key) == set(touched)

        # 4. materializing one hour writes per-inverter and site rows whose PR matches an independent computation
        mat = dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-09:00",
            instance=instance,
            resources={"platform": platform},
        )
        assert mat.success
        kpis = db.kpi_hourly(NOON, NOON + timedelta(hours=1)).set_index("device_id")
        assert set(kpis.index) == {"inv1", "inv2", "*"}

        # 5. a backfill of a range runs once for all its hours (BackfillPolicy.multi_run)
        ranged = dg.materialize(
            [hourly_kpis], instance=instance, resources={"platform": platform},
            tags={"dagster/asset_partition_range_start": touched[0], "dagster/asset_partition_range_end": touched[-1]},
        )  # fmt: skip
        assert ranged.success
        assert len(db.kpi_hourly(start, end)) == 3 * 3  # 3 hours x (2 inverters + site)

    frames = backfill_frames(plant.sites[0], 7, start, end)
    poa_wh = integrate_rate(frames["wx1"]["poa_irradiance"], NOON, NOON + timedelta(hours=1))
    for inv in ("inv1", "inv2"):
        e_wh = counter_energy(frames[inv]["ac_energy"], NOON, NOON + timedelta(hours=1))
        expected_pr = (e_wh / 1000 / 110.0) / (poa_wh / 1000)
        assert kpis.loc[inv, "pr"] == pytest.approx(expected_pr, rel=1e-9)
        assert 0.7 < kpis.loc[inv, "pr"] < 0.98  # a healthy simulated inverter
    assert kpis.loc["*", "energy_ac_kwh"] == pytest.approx(
        kpis.loc[["inv1", "inv2"], "energy_ac_kwh"].sum()
    )
    # re-materializing is idempotent: same rows, same values
    first = db.kpi_hourly(NOON, NOON + timedelta(hours=1))
    with dg.instance_for_test() as instance:
        dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-09:00",
            instance=instance,
            resources={"platform": platform},
        )
    second = db.kpi_hourly(NOON, NOON + timedelta(hours=1))
    cols = ["site_id", "device_id", "energy_ac_kwh", "pr"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert json.loads(json.dumps(list(first["device_id"]))) == list(second["device_id"])
