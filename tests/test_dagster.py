"""The Dagster side on a real instance and a real PostgreSQL: sensor → ingest run → hourly KPI partitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from integrations.simulator.devices import backfill_frames
from integrations.simulator.registers import as_served, inverter_models
from integrations.simulator.runner import backfill_landing
from pv_platform import clock
from pv_platform.definitions import build_definitions
from pv_platform.defs.kpis.assets import hourly_kpis, monthly_kpis
from pv_platform.defs.resources import platform_resources
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.defs.telemetry.sensors import landing_sensor
from pv_platform.kpi import counter_energy, integrate_rate
from pv_platform.landing import list_closed
from pv_platform.plant import dump_plant
from pv_platform.storage import Database
from tests.conftest import scalar

NOON = datetime(2026, 6, 21, 9, tzinfo=UTC)  # 11:00 in Zurich, summer: a sunny hour


def test_definitions_load():
    defs = build_definitions()  # what `pv_platform.definitions` gives the code server
    dg.Definitions.validate_loadable(defs)  # every job, schedule and sensor resolves
    repo = defs.get_repository_def()
    for job in repo.get_all_jobs():
        assert job.name
    for schedule in repo.schedule_defs:
        assert repo.get_job(schedule.job_name) is not None
    assert {s.name for s in repo.sensor_defs} == {
        "landing_sensor",
        "hourly_kpis_sensor",
        "history_backfill_sensor",
        "kpi_rollup_sensor",
        "report_sensor",
        "loss_analytics_sensor",
    }
    assert {s.name for s in repo.schedule_defs} == {"kpi_calendar_schedule", "kpi_monthly_schedule"}
    assert repo.get_job("ingest_job") is not None
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"telemetry", "hourly_kpis", "daily_kpis", "monthly_kpis", "yearly_kpis"} <= keys
    assert {"monthly_report", "yearly_report"} <= keys
    assert "loss_analytics" in keys


def _current(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """Point Dagster's defs-state context variable back at `instance`. Dagster reads it whenever it builds
    a repository (`materialize`, implicit jobs); something created along a long session can leave it on a
    storage whose instance was collected ("undefined DagsterInstance weakref", seen twice in full runs).
    Uses a private Dagster API: a test-harness workaround, not platform code."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(instance.defs_state_storage)
    return instance


def hourly_tick(instance, test_defs, cursor=None) -> tuple[set[str], str]:
    """One tick of `hourly_kpis_sensor`: the hour keys it requests (ranges expanded) and its cursor."""
    from pv_platform.defs.kpis.planning import hours_between
    from pv_platform.defs.kpis.sensors import RANGE_END, RANGE_START, hourly_kpis_sensor

    ctx = dg.build_sensor_context(instance=_current(instance), definitions=test_defs, cursor=cursor)
    # on the day after NOON's: its hours are recent, this sensor's (older ones are history, handed
    # to a backfill by `history_backfill_sensor`: tests/test_import_daemon.py)
    clock.set_clock(datetime(2026, 6, 22, 6, tzinfo=UTC))
    try:
        result = hourly_kpis_sensor(ctx)
    finally:
        clock.set_clock()
    keys = set()
    for r in result.run_requests:
        if r.asset_graph_subset is not None:  # history (older than 48 h): one backfill
            subset = r.asset_graph_subset.partitions_subsets_by_asset_key[
                dg.AssetKey("hourly_kpis")
            ]
            keys.update(subset.get_partition_keys())
        else:
            keys.update(hours_between(r.tags[RANGE_START], r.tags[RANGE_END]))
    return keys, result.cursor


@pytest.fixture
def platform(pg_url, plant, landing, tmp_path) -> dict:
    plant_file = tmp_path / "plant.yaml"
    dump_plant(plant, plant_file)
    Database(pg_url).migrations.migrate()  # `pvp migrate`: the resources never migrate
    return platform_resources(
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
            instance=_current(instance), resources=platform, definitions=test_defs
        )
        result = landing_sensor(ctx)
        assert len(result.run_requests) == 1
        request = result.run_requests[0]
        assert request.run_config["ops"]["ingest_segments"]["config"]["segment_ids"] == segments
        # evaluated again with its cursor, it asks for nothing new
        ctx2 = dg.build_sensor_context(
            instance=_current(instance),
            resources=platform,
            definitions=test_defs,
            cursor=result.cursor,
        )
        assert landing_sensor(ctx2).run_requests == []

        # the hourly KPI sensor's first tick, before any data: nothing to do
        requested, cursor = hourly_tick(instance, test_defs)
        assert requested == set()

        # 2. the ingest run loads the segments and reports the hours it touched
        run = ingest_job.execute_in_process(
            run_config=request.run_config,
            instance=_current(instance),
            resources=platform,
        )
        assert run.success
        assert list_closed(landing) == []  # archived
        db = Database(platform["kpi_store"].database_url)
        rows = scalar(db, "SELECT count(*) FROM samples")
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
            run_config=request.run_config,
            instance=_current(instance),
            resources=platform,
        )
        assert again.success and scalar(db, "SELECT count(*) FROM samples") == rows

        # 3. the KPI sensor asks for exactly the hours whose telemetry changed, in one run
        requested, cursor = hourly_tick(instance, test_defs, cursor)
        assert requested == set(touched)

        # 4. materializing one hour writes per-inverter and site rows whose PR matches an independent computation
        mat = dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-09:00",
            instance=_current(instance),
            resources=platform,
        )
        assert mat.success
        kpis = db.kpis.read("kpi_hourly", NOON, NOON + timedelta(hours=1)).set_index("device_id")
        assert set(kpis.index) == {"inv1", "inv2", "*"}

        # 5. a backfill of a range runs once for all its hours (BackfillPolicy.multi_run)
        ranged = dg.materialize(
            [hourly_kpis], instance=_current(instance), resources=platform,
            tags={"dagster/asset_partition_range_start": touched[0], "dagster/asset_partition_range_end": touched[-1]},
        )  # fmt: skip
        assert ranged.success
        assert (
            len(db.kpis.read("kpi_hourly", start, end)) == 3 * 3
        )  # 3 hours x (2 inverters + site)

    frames = backfill_frames(plant.sites[0], 7, start, end)
    models = inverter_models(plant)  # landed as the collector reads them: at register resolution
    frames = {d: as_served(f, models[("testsite", d)]) if ("testsite", d) in models else f
              for d, f in frames.items()}  # fmt: skip
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
    first = db.kpis.read("kpi_hourly", NOON, NOON + timedelta(hours=1))
    with dg.instance_for_test() as instance:
        dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-09:00",
            instance=_current(instance),
            resources=platform,
        )
    second = db.kpis.read("kpi_hourly", NOON, NOON + timedelta(hours=1))
    cols = ["site_id", "device_id", "energy_ac_kwh", "pr"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert json.loads(json.dumps(list(first["device_id"]))) == list(second["device_id"])


def test_late_data_recomputes_the_hour_and_its_local_day_month_year(platform, plant, landing):
    from pv_platform.defs.kpis.assets import daily_kpis
    from pv_platform.defs.kpis.schedules import kpi_calendar_schedule, kpi_monthly_schedule
    from pv_platform.defs.kpis.sensors import kpi_rollup_sensor
    from pv_platform.landing import SegmentWriter
    from pv_platform.readings import Reading

    test_defs = build_definitions(platform)
    db = Database(platform["kpi_store"].database_url)
    with dg.instance_for_test() as instance:
        # resolve the definitions while this instance's state storage is the current one (Dagster reads
        # it from a context variable when a repository is first built; later in a long session another,
        # already collected instance may be current there: "undefined DagsterInstance weakref")
        job_defs = test_defs.get_implicit_global_asset_job_def()
        # a day of history in Zurich local time: 2026-06-20 22:00 UTC .. 2026-06-21 22:00 UTC
        backfill_landing(
            plant,
            landing,
            seed=5,
            start=datetime(2026, 6, 20, 21, 30, tzinfo=UTC),
            end=datetime(2026, 6, 21, 22, 30, tzinfo=UTC),
        )
        run_config = {"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}}
        assert ingest_job.execute_in_process(
            run_config=run_config, instance=_current(instance), resources=platform
        ).success
        tags = {
            "dagster/asset_partition_range_start": "2026-06-20-22:00",
            "dagster/asset_partition_range_end": "2026-06-21-21:00",
        }
        assert dg.materialize(
            [hourly_kpis], instance=_current(instance), resources=platform, tags=tags
        ).success

        # the rollup sensor registers the site and asks for the local day 2026-06-21, June and 2026
        ctx = dg.build_sensor_context(
            instance=_current(instance), resources=platform, definitions=test_defs
        )
        result = kpi_rollup_sensor(ctx)
        keys = {
            (r.job_name, str(r.partition_key), json.dumps(r.run_config))
            for r in result.run_requests
        }
        # and, the site being new, its reference temperature (NREL T_ref) as an asset of its own;
        # one run per period, for every site (no `sites` config: the plant's one site is all of them)
        every_site = json.dumps({"ops": {"daily_kpis": {"config": {"sites": []}}}})
        assert keys == {
            ("site_reference_job", "None", "{}"),
            ("daily_kpis_job", "2026-06-21", every_site),
            ("monthly_kpis_job", "2026-06-01", every_site.replace("daily", "monthly")),
            ("yearly_kpis_job", "2026", every_site.replace("daily", "yearly")),
        }
        for request in result.run_requests:
            if request.job_name == "site_reference_job":
                continue
            assert job_defs.execute_in_process(
                instance=_current(instance),
                partition_key=request.partition_key,
                asset_selection=[dg.AssetKey(request.job_name.removesuffix("_job"))],
                run_config=request.run_config,
            ).success
        local_day = (datetime(2026, 6, 20, 22, tzinfo=UTC), datetime(2026, 6, 21, 22, tzinfo=UTC))
        day = db.kpis.read("kpi_daily", *local_day).set_index("device_id")
        hours = db.kpis.read("kpi_hourly", *local_day)
        assert len(hours["period_start"].unique()) == 24
        site_hours = hours[hours["device_id"] == "*"]
        # the day is the sum of its hours, its PR the ratio of the sums
        assert day.loc["*", "energy_ac_kwh"] == pytest.approx(site_hours["energy_ac_kwh"].sum())
        assert day.loc["*", "pr"] == pytest.approx(
            site_hours["energy_ac_kwh"].sum() / site_hours["ref_energy_stc_kwh"].sum()
        )
        assert 0.7 < day.loc["inv1", "pr"] < 0.98
        assert day.loc["inv1", "availability_time"] == pytest.approx(1.0)
        # grid meter: export is the plant's AC energy less 0.3 % auxiliaries while producing; import at night
        energy = day.loc["*", "energy_ac_kwh"]
        aux_kwh = 0.003 * 200.0 * 24.0
        assert energy - aux_kwh < day.loc["*", "export_kwh"] < energy
        assert 0.0 < day.loc["*", "import_kwh"] < aux_kwh
        assert day.loc["*", "time_freq_out_s"] == 0.0 and 0.95 < day.loc["*", "power_factor"] <= 1.0
        month = db.kpis.read(
            "kpi_monthly",
            datetime(2026, 5, 31, 22, tzinfo=UTC),
            datetime(2026, 6, 30, 22, tzinfo=UTC),
        )
        assert month.set_index("device_id").loc["*", "energy_ac_kwh"] == pytest.approx(
            day.loc["*", "energy_ac_kwh"]
        )

        # late data for 14:05 UTC: only that hour (and its neighbour) is re-requested, then its day again
        # (the edge hours 2026-06-20 21:00 and 2026-06-21 22:00, requested on this first tick and not
        # computed since, wait for their retry delay)
        first_requested, cursor0 = hourly_tick(instance, test_defs)
        assert {"2026-06-20-21:00", "2026-06-21-22:00"} <= first_requested
        writer = SegmentWriter(landing, writer_name="late")
        writer.add(
            [
                Reading(
                    entity="testsite.inv1.ac_power",
                    ts=datetime(2026, 6, 21, 14, 5, 30, tzinfo=UTC),
                    value=1234.0,
                )
            ]
        )
        late = writer.close()
        assert ingest_job.execute_in_process(
            run_config={"ops": {"ingest_segments": {"config": {"segment_ids": late}}}},
            instance=_current(instance),
            resources=platform,
        ).success
        requested, _ = hourly_tick(instance, test_defs, cursor0)
        # 14:05:30 is within 15 min of the 14:00 edge, across which the KPIs interpolate: 13:00 changes too
        assert requested == {"2026-06-21-13:00", "2026-06-21-14:00"}
        assert dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-14:00",
            instance=_current(instance),
            resources=platform,
        ).success
        again = kpi_rollup_sensor(
            dg.build_sensor_context(
                instance=_current(instance),
                resources=platform,
                definitions=test_defs,
                cursor=result.cursor,
            )
        )
        assert {str(r.partition_key) for r in again.run_requests if r.partition_key} == {
            "2026-06-21",
            "2026-06-01",
            "2026",
        }

        # an impossible value makes an hour fail an ERROR check; the day is then blocked, with the reason
        writer.add(
            [
                Reading(
                    entity="testsite.wx1.poa_irradiance",
                    ts=datetime(2026, 6, 21, 10, 0, 30, tzinfo=UTC),
                    value=5000.0,
                )
            ]
        )
        bad = writer.close()
        ingest_job.execute_in_process(
            run_config={"ops": {"ingest_segments": {"config": {"segment_ids": bad}}}},
            instance=_current(instance),
            resources=platform,
        )
        hour = dg.materialize(
            [hourly_kpis],
            partition_key="2026-06-21-10:00",
            instance=_current(instance),
            resources=platform,
            raise_on_error=False,
        )
        evaluations = hour.get_asset_check_evaluations()
        physical = next(e for e in evaluations if e.check_name == "physical_ranges")
        assert not physical.passed and physical.severity == dg.AssetCheckSeverity.ERROR
        assert "testsite.wx1.poa_irradiance" in physical.description

        def blocked_by_error_check(asset, partition_key: str) -> bool:
            """The site is left out of the period (its rows kept) and the ERROR check says why."""
            run = dg.materialize(
                [asset],
                partition_key=partition_key,
                instance=_current(instance),
                resources=platform,
                raise_on_error=False,
            )
            check = next(
                e for e in run.get_asset_check_evaluations() if e.check_name == "hours_not_blocked"
            )
            states = run.asset_materializations_for_node(asset.op.name)[0].metadata["sites"].value
            return (
                run.success
                and not check.passed
                and check.severity == dg.AssetCheckSeverity.ERROR
                and "failed with ERROR" in check.description
                and "testsite" in check.description
                and states == {"testsite": "blocked"}
            )

        def closing(schedule, at: datetime) -> list[str]:
            context = dg.build_schedule_context(
                instance=_current(instance),
                resources=platform,
                scheduled_execution_time=at,
            )
            result = schedule(context)
            return (
                [] if isinstance(result, dg.SkipReason) else [str(r.partition_key) for r in result]
            )

        assert blocked_by_error_check(daily_kpis, "2026-06-21")
        # the calendar schedule closes the local day after local midnight (00:20 Zurich = 22:20 UTC in summer)
        daily = kpi_calendar_schedule
        assert closing(daily, datetime(2026, 6, 21, 22, 20, tzinfo=UTC)) == ["2026-06-21"]
        assert closing(daily, datetime(2026, 6, 30, 22, 20, tzinfo=UTC)) == ["2026-06-30"]
        # the monthly schedule closes June at 00:40 local on July 1st (22:40 UTC on June 30th) and
        # nothing on any other hour or day
        monthly = kpi_monthly_schedule
        assert closing(monthly, datetime(2026, 6, 30, 22, 40, tzinfo=UTC)) == ["2026-06-01"]
        assert closing(monthly, datetime(2026, 6, 30, 23, 40, tzinfo=UTC)) == []
        assert closing(monthly, datetime(2026, 6, 21, 22, 40, tzinfo=UTC)) == []
        # ...and the month holding the hour that failed its ERROR check is blocked like the day
        assert blocked_by_error_check(monthly_kpis, "2026-06-01")


def test_a_history_backfill_that_fails_before_its_days_leaves_them_to_the_rollup_sensor(
    platform, plant, landing
):
    """A database outage can fail a history backfill after its hours (Dagster's backfill daemon fails
    it when the code location cannot load): its days, month and year were never computed. While it
    runs they are its own; once it failed, the rollup sensor requests them."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    from pv_platform.defs.kpis.history import history_backfill
    from pv_platform.defs.kpis.sensors import RANGE_END, RANGE_START, kpi_rollup_sensor

    test_defs = build_definitions(platform)
    with dg.instance_for_test() as instance:
        test_defs.get_implicit_global_asset_job_def()  # resolved while this instance is current
        backfill_landing(plant, landing, seed=6, start=datetime(2026, 6, 20, 21, 30, tzinfo=UTC),
                         end=datetime(2026, 6, 21, 22, 30, tzinfo=UTC))  # fmt: skip
        run_config = {"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}}
        assert ingest_job.execute_in_process(
            run_config=run_config, instance=_current(instance), resources=platform
        ).success
        hours = [f"2026-06-{d}-{h:02d}:00" for d, h in [(20, 22), (20, 23)]] + [
            f"2026-06-21-{h:02d}:00" for h in range(22)
        ]
        request = history_backfill(hours, {"testsite": "Europe/Zurich"}, 1)
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id="histfail", backfill_timestamp=0.0, tags=request.tags,
            dynamic_partitions_store=instance, asset_graph_subset=request.asset_graph_subset,
            title=None, description=None, run_config=None,
        )  # fmt: skip
        instance.add_backfill(backfill)
        tags = {**request.tags, "dagster/backfill": "histfail", RANGE_START: hours[0],
                RANGE_END: hours[-1]}  # fmt: skip
        assert dg.materialize(
            [hourly_kpis], instance=_current(instance), resources=platform, tags=tags
        ).success

        def tick(cursor=None):
            context = dg.build_sensor_context(
                instance=_current(instance), resources=platform, definitions=test_defs,
                cursor=cursor,
            )  # fmt: skip
            result = kpi_rollup_sensor(context)
            periods = {
                (r.job_name, str(r.partition_key))
                for r in result.run_requests
                if r.job_name != "site_reference_job"
            }
            return periods, result.cursor

        running, cursor = tick()
        assert running == set()  # the backfill's own, while it runs
        assert json.loads(cursor)["deferred"]["histfail"][1] == [[hours[0], hours[-1]]]
        instance.update_backfill(backfill.with_status(BulkActionStatus.FAILED))
        failed, cursor = tick(cursor)
        assert failed == {
            ("daily_kpis_job", "2026-06-21"),
            ("monthly_kpis_job", "2026-06-01"),
            ("yearly_kpis_job", "2026"),
        }
        assert json.loads(cursor)["deferred"] == {}  # handed over once
