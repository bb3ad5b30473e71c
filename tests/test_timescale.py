"""The storage module's TimescaleDB dialect against a real TimescaleDB build, compared number for number
with the plain-PostgreSQL dialect on the same day of simulated readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from integrations.simulator.runner import backfill_landing
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import finish_periods
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.storage import Database, Rows
from tests.conftest import scalar

DAY = datetime(2026, 6, 21, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)
MARGIN = EDGE_MARGIN


@pytest.fixture(scope="module")
def day_of_segments(tmp_path_factory, request):
    from pv_platform.plant import parse_plant
    from tests.conftest import demo_plant_dict

    plant = parse_plant(demo_plant_dict([15020, 15021]))
    landing = tmp_path_factory.mktemp("landing")
    backfill_landing(plant, landing, seed=3, start=DAY - MARGIN, end=NEXT + MARGIN)
    return plant, [read_segment(segment_path(landing, sid)) for sid in list_closed(landing)]


@pytest.fixture(scope="module")
def ts_db(timescale_url):
    # one connection at a time: a pool of one; COPY FROM STDIN would kill this server, so unnest inserts
    db = Database(timescale_url, pool_size=1, max_overflow=0, transfer=Rows())
    db.migrations.migrate(chunk_interval="1 day", compress_after="7 days")
    yield db
    db.dispose()


def bucketed_mean(db: Database, start, end, width: str, metrics: list[str]) -> pd.DataFrame:
    """Mean value per entity and bucket of any width, bucketed by the dialect's own function."""
    df = db.query_df(
        f"SELECT e.site_id, e.device_id, e.metric, {db.dialect.bucket_sql(width, 's.ts')} AS bucket,"
        " avg(s.value) AS avg_value, count(*) AS n FROM samples s JOIN entities e ON e.id = s.entity_id"
        " WHERE s.ts >= :start AND s.ts < :end AND e.metric = ANY(:metrics)"
        " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        {"start": start, "end": end, "metrics": metrics},
    )
    if not df.empty:
        df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
        df["avg_value"] = df["avg_value"].astype(float)
    return df


def run_policies_now(db: Database) -> list[str]:
    """Run the TimescaleDB policy jobs at once (no background worker runs them here); returns their
    names. Order: compression, then the rollup refresh, then retention."""
    order = {
        "policy_compression": 0,
        "policy_refresh_continuous_aggregate": 1,
        "policy_retention": 2,
    }
    with db.engine.connect() as conn:
        jobs = conn.exec_driver_sql(
            "SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE proc_name = ANY(%s)",
            (list(order),),
        ).all()
        conn.commit()
    ran = []
    for job_id, name in sorted(jobs, key=lambda j: order[j[1]]):
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"CALL run_job({int(job_id)})")
        ran.append(name)
    return ran


def _kpis(db: Database, plant) -> pd.DataFrame:
    samples = db.telemetry.sample_set(DAY - MARGIN, NEXT + MARGIN, HOURLY_METRICS).to_frame()
    return (
        hourly_kpis_range(samples, plant, DAY, NEXT)
        .sort_values(["period_start", "device_id"])
        .reset_index(drop=True)
    )


def test_timescale_and_plain_postgres_agree(ts_db, db, day_of_segments):
    plant, segments = day_of_segments
    assert ts_db.dialect.name == "timescale" and db.dialect.name == "postgres"
    interval = scalar(
        ts_db,
        "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'samples'",
    )
    assert interval == timedelta(days=1)  # chunk interval from the setting
    assert scalar(ts_db, "SELECT count(*) FROM timescaledb_information.continuous_aggregates") == 1

    rows = 0
    for segment in segments:
        a, b = ts_db.telemetry.ingest_segment(segment), db.telemetry.ingest_segment(segment)
        assert (a.inserted, a.hours) == (b.inserted, b.hours)
        rows += a.inserted
    # what the ingest job does after loading: materialize the touched hours (no-op on plain PostgreSQL)
    ts_db.telemetry.refresh_rollup(DAY - timedelta(hours=1), NEXT + timedelta(hours=1))
    db.telemetry.refresh_rollup(DAY - timedelta(hours=1), NEXT + timedelta(hours=1))
    assert (
        rows
        == scalar(ts_db, "SELECT count(*) FROM samples")
        == scalar(db, "SELECT count(*) FROM samples")
    )
    assert (
        scalar(
            ts_db,
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'samples'",
        )
        == 3
    )  # 3 UTC days touched

    # hourly KPIs: the same numbers from both dialects
    kpis_ts, kpis_pg = _kpis(ts_db, plant), _kpis(db, plant)
    assert len(kpis_ts) == 24 * 3
    assert kpis_ts["pr"].notna().sum() >= 3 * 8  # daylight hours have a PR
    pd.testing.assert_frame_equal(kpis_ts, kpis_pg, check_exact=False, rtol=1e-12)
    # what the KPI assets do: read a SampleSet, write the hours, sum local days in SQL
    from_set = hourly_kpis_range(
        ts_db.telemetry.sample_set(DAY - MARGIN, NEXT + MARGIN, HOURLY_METRICS), plant, DAY, NEXT
    )
    pd.testing.assert_frame_equal(
        from_set.sort_values(["period_start", "device_id"]).reset_index(drop=True),
        kpis_pg,
        check_exact=True,
    )
    zones = {site.id: site.timezone for site in plant.sites}
    days = []
    for d, kpis in ((ts_db, kpis_ts), (db, kpis_pg)):
        d.plant.sync(plant)
        assert d.kpis.replace("kpi_hourly", DAY, NEXT, kpis) == len(kpis)
        summed = d.kpis.period_sums(
            DAY - timedelta(days=1), NEXT + timedelta(days=1), zones, "daily"
        )
        days.append(finish_periods(summed, zones, "daily"))
    assert (
        len(days[0]) == 2 * 3
    )  # UTC 21 June is parts of two Zurich days, x (2 inverters + the site)
    pd.testing.assert_frame_equal(days[0], days[1], check_exact=False, rtol=1e-12)

    # the hourly rollup: a continuous aggregate vs a plain view
    def rollup(d: Database) -> pd.DataFrame:
        return (
            d.telemetry.hourly_rollup(DAY, NEXT)
            .sort_values(["device_id", "metric", "bucket"])
            .reset_index(drop=True)
        )

    pd.testing.assert_frame_equal(rollup(ts_db), rollup(db), check_exact=False, rtol=1e-12)
    # time_bucket and date_bin agree on any width
    for width in ("15 minutes", "1 day"):
        a = bucketed_mean(ts_db, DAY, NEXT, width, ["poa_irradiance", "ac_power"])
        b = bucketed_mean(db, DAY, NEXT, width, ["poa_irradiance", "ac_power"])
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)

    # policies: compression, then the rollup refresh (no background workers here: run the jobs now)
    ran = run_policies_now(ts_db)
    assert ran == ["policy_compression", "policy_refresh_continuous_aggregate"]
    compressed = scalar(
        ts_db,
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'samples' AND is_compressed",
    )
    assert compressed == 3  # the June chunks are older than 7 days
    segment_by = scalar(
        ts_db,
        "SELECT attname FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'samples' AND segmentby_column_index = 1",
    )
    assert segment_by == "entity_id"
    # after compression and refresh, the same numbers
    pd.testing.assert_frame_equal(_kpis(ts_db, plant), kpis_pg, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(rollup(ts_db), rollup(db), check_exact=False, rtol=1e-12)
    # a re-delivered segment into compressed chunks inserts nothing
    again = ts_db.telemetry.ingest_segment(segments[0])
    assert again.already_loaded
    with ts_db.engine.begin() as conn:  # forget the ledger: ON CONFLICT must still hold
        conn.exec_driver_sql("DELETE FROM ingest_ledger")
    assert ts_db.telemetry.ingest_segment(segments[0]).inserted == 0
    assert scalar(ts_db, "SELECT count(*) FROM samples") == rows


def test_exports_read_the_same_from_timescale_as_from_plain_postgres(ts_db, db, day_of_segments):
    """`pvp export`'s streaming reads (server-side cursors, date_bin buckets) on the production
    dialect (before the retention test below drops the raw samples): the same CSV, raw and downsampled, as from plain PostgreSQL."""
    import csv
    import io
    import math

    from pv_platform.export import ExportRequest, export

    _, segments = day_of_segments
    for target in (ts_db, db):
        for segment in segments:  # already loaded ones are skipped by the ledger
            target.telemetry.ingest_segment(segment)
    texts = {}
    for name, target in (("timescale", ts_db), ("postgres", db)):
        for bucket_s in (None, 900):
            out = io.StringIO()
            export(
                target.engine, ExportRequest("samples", DAY, NEXT, bucket_s=bucket_s), "csv", out
            )
            texts[(name, bucket_s)] = list(csv.reader(io.StringIO(out.getvalue())))
    raw = texts[("timescale", None)]
    assert len(raw) == 1 + 1440 and raw == texts[("postgres", None)]  # a day of minutes, exactly
    ts_rows, pg_rows = texts[("timescale", 900)], texts[("postgres", 900)]
    assert len(ts_rows) == 1 + 96 and ts_rows[0] == pg_rows[0]
    for a, b in zip(ts_rows[1:], pg_rows[1:], strict=True):  # means: summation order may differ
        assert a[0] == b[0]
        assert all(
            (x == y == "") or math.isclose(float(x), float(y), rel_tol=1e-12)
            for x, y in zip(a[1:], b[1:], strict=True)
        )


def test_retention_drops_raw_samples_but_keeps_the_rollup(ts_db):
    before = scalar(ts_db, "SELECT count(*) FROM samples_hourly")
    assert before > 0
    ts_db.migrations.migrate(
        chunk_interval="1 day", compress_after="7 days", raw_retention="30 days"
    )
    assert "policy_retention" in run_policies_now(ts_db)
    assert scalar(ts_db, "SELECT count(*) FROM samples") == 0  # June is older than 30 days
    # the materialized hourly rollup outlives the raw rows it came from
    assert scalar(ts_db, "SELECT count(*) FROM samples_hourly") == before
