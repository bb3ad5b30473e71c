"""The fast KPI path (samples read from PostgreSQL as binary arrays into a SampleSet, KPI rows written by
binary COPY) gives exactly what the plain path gives (rows fetched one by one, long frames), on
irregular samples landed through the real ingest; and its kernels agree with an independent reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pv_platform.kpi.energy import step_means
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import aggregate, finish_periods
from pv_platform.kpi.quality import run_checks
from pv_platform.kpi.samples import SampleSet
from pv_platform.landing import SegmentWriter, read_segment, segment_path
from pv_platform.plant import parse_plant
from pv_platform.readings import Reading
from pv_platform.storage import Database, Rows
from tests.conftest import demo_plant_dict, scalar

H0 = datetime(2026, 6, 21, 8, tzinfo=UTC)
H1 = H0 + timedelta(hours=5)


def _plant():
    spec = demo_plant_dict([1502, 1503])
    spec["sites"][0]["devices"].append(
        {"id": "wx2", "kind": "weather_station", "integration": "simulator"}
    )
    spec["sites"][0]["maintenance"] = [
        {"start": "2026-06-21T11:00:00Z", "end": "2026-06-21T11:30:00Z", "devices": ["inv2"]}
    ]
    return parse_plant(spec)


def _irregular_samples(seed: int = 1) -> pd.DataFrame:
    """5 hours of a site at irregular intervals (3-120 s, µs-stamped), with a 25-minute weather gap, a
    counter reset, an inverter at zero for an hour, out-of-band grid frequency, and two samples
    stamped in the future."""
    rng = np.random.default_rng(seed)
    a, b = H0 - timedelta(minutes=20), H1 + timedelta(minutes=20)

    def times(lo: float, hi: float) -> list[datetime]:
        out, t = [], a + timedelta(microseconds=int(rng.integers(0, 1_000_000)))
        while t < b:
            out.append(t)
            t += timedelta(microseconds=int(rng.uniform(lo, hi) * 1e6))
        return out

    def sun(t: datetime) -> float:
        return max(0.0, 950.0 * np.sin(np.pi * ((t - H0).total_seconds() / 3600.0 + 1.0) / 8.0))

    rows = []
    for device in ("wx1", "wx2"):
        for t in times(5, 120):
            if device == "wx1" and H0 + timedelta(hours=2) < t < H0 + timedelta(
                hours=2, minutes=25
            ):
                continue
            g = sun(t) * (1 + 0.03 * rng.standard_normal())
            rows.append((device, "poa_irradiance", t, g))
            rows.append((device, "ambient_temperature", t, 12 + g / 100))
            if device == "wx1":
                rows.append((device, "module_temperature", t, 15 + g / 30))
    for i, inv in enumerate(("inv1", "inv2")):
        energy_wh, last = 1e6, None
        for t in times(3, 90 + 30 * i):
            zero = inv == "inv2" and H0 + timedelta(hours=3) < t < H0 + timedelta(hours=4)
            p_w = 0.0 if zero else min(100e3, 99.0 * sun(t))
            if last is not None:
                energy_wh += p_w * (t - last).total_seconds() / 3600.0
            last = t
            if inv == "inv1" and H0 + timedelta(hours=1) < t < H0 + timedelta(hours=1, seconds=90):
                energy_wh = 0.0  # counter reset
            rows += [(inv, "ac_power", t, p_w), (inv, "ac_energy", t, energy_wh)]
    export, imported = 5e5, 1e4
    for t in times(10, 60):
        export, imported = export + rng.uniform(0, 3000), imported + rng.uniform(0, 5)
        rows += [
            ("meter1", "export_energy", t, export),
            ("meter1", "import_energy", t, imported),
            ("meter1", "grid_frequency", t, 50.8 if rng.uniform() < 0.03 else 50.0),
            ("meter1", "grid_voltage", t, 230 + 3 * rng.standard_normal()),
            ("meter1", "power_factor", t, rng.uniform(0.9, 1.0)),
            ("meter1", "ac_power", t, 250.0 * sun(t)),
        ]
    future = H1 - timedelta(minutes=10)
    rows += [("wx2", "poa_irradiance", future + timedelta(seconds=0.5), 300.0)]
    rows += [("wx2", "ambient_temperature", future + timedelta(seconds=0.5), 15.0)]
    frame = pd.DataFrame(rows, columns=["device_id", "metric", "ts", "value"])
    frame.insert(0, "site_id", "testsite")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sample(frac=1.0, random_state=seed, ignore_index=True)  # any order


def _land(db: Database, landing, frame: pd.DataFrame) -> None:
    writer = SegmentWriter(landing, max_rows=len(frame) + 1)
    writer.add(
        [
            Reading(
                entity=f"{r.site_id}.{r.device_id}.{r.metric}",
                ts=r.ts.to_pydatetime(),
                value=r.value,
            )
            for r in frame.itertuples()
        ]
    )
    for segment_id in writer.close():
        db.telemetry.ingest_segment(read_segment(segment_path(landing, segment_id)))


@pytest.mark.parametrize("seed", [1, 2])
def test_kpis_and_checks_are_identical_from_binary_arrays_rows_and_frames(db, landing, seed):
    plant, frame = _plant(), _irregular_samples(seed)
    _land(db, landing, frame)
    window = (H0 - EDGE_MARGIN, H1 + EDGE_MARGIN, HOURLY_METRICS)
    fast = db.telemetry.sample_set(*window)
    by_rows = (
        Database(db.url, transfer=Rows()).telemetry.sample_set(*window).to_frame()
    )  # one row object per sample
    frame = frame[(frame["ts"] >= window[0]) & (frame["ts"] < window[1])]
    assert len(by_rows) == len(frame) > 6000
    now = H1 - timedelta(minutes=15)  # the two samples after H1 - 10 min are 'in the future'
    results = []
    for samples in (fast, by_rows, frame):
        kpis = hourly_kpis_range(samples, plant, H0, H1, {"testsite": 31.5})
        checks = [
            (o.hour, o.name, o.passed, o.detail)
            for o in run_checks(samples, kpis, plant, H0, H1, now)
        ]
        results.append((kpis, checks))
    for kpis, checks in results[1:]:
        pd.testing.assert_frame_equal(kpis, results[0][0], check_exact=True)
        assert checks == results[0][1]
    kpis, checks = results[0]
    assert len(kpis) == 5 * 3  # 5 hours x (2 inverters + the site)
    assert kpis["energy_ac_kwh"].notna().all()
    inv2 = kpis[
        (kpis["device_id"] == "inv2")
        & (kpis["period_start"] == pd.Timestamp(H0) + pd.Timedelta(hours=3))
    ]
    assert inv2["time_planned_s"].item() >= 1500 and inv2["time_forced_outage_s"].item() >= 1500
    failed = {(hour.hour, name) for hour, name, passed, _ in checks if not passed}
    assert (12, "future_timestamps") in failed and (10, "completeness") in failed


def _dense_reference(t_s, v, n_steps, step_s, max_gap_s):
    """Per-step means by brute force: the linear interpolant sampled every second (times are whole
    seconds, so the 1-s trapezoid is exact), stretches between samples further apart than max_gap_s
    left out."""
    grid = np.arange(0, n_steps * step_s + 1.0)
    values = np.interp(grid, t_s, v)
    pos = np.searchsorted(t_s, grid[:-1] + 0.5)
    inside = (pos > 0) & (pos < len(t_s))
    gap_ok = np.zeros(len(grid) - 1, bool)
    gap_ok[inside] = (t_s[pos[inside]] - t_s[pos[inside] - 1]) <= max_gap_s
    area = 0.5 * (values[1:] + values[:-1]) * gap_ok
    per_step = area.reshape(n_steps, int(step_s)).sum(axis=1)
    covered = gap_ok.reshape(n_steps, int(step_s)).sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(covered > 0, per_step / covered, np.nan), covered


@pytest.mark.parametrize("seed", range(5))
def test_step_means_equal_a_dense_reference(seed):
    rng = np.random.default_rng(seed)
    t_s = np.unique(np.cumsum(rng.integers(1, 400, 80)).astype(float) - 300.0)  # starts before 0
    v = rng.uniform(-50, 900, len(t_s))
    n_steps = int(t_s[-1] // 60) - 2  # ends before the last sample
    mean, covered = step_means(t_s, v, n_steps, 60.0, 300.0)
    ref_mean, ref_covered = _dense_reference(t_s, v, n_steps, 60.0, 300.0)
    np.testing.assert_allclose(covered, ref_covered, rtol=0, atol=1e-9)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-9)
    assert np.isnan(mean).any() and (covered == 60.0).any()  # the data has gaps and full minutes


def test_sample_set_orders_and_keeps_the_last_of_duplicates():
    t0 = pd.Timestamp("2026-06-21T10:00Z")
    frame = pd.DataFrame(
        {
            "site_id": "s", "device_id": ["a", "a", "a", "b"], "metric": "p",
            "ts": [t0 + pd.Timedelta(seconds=s) for s in (60, 0, 60, 0)],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )  # fmt: skip
    samples = SampleSet.from_frame(frame)
    assert list(samples[("s", "a", "p")].items()) == [
        (t0, 2.0),
        (t0 + pd.Timedelta(seconds=60), 3.0),
    ]
    back = samples.to_frame()
    assert len(back) == 3 and back["ts"].dt.tz is not None
    assert samples.seconds(("s", "b", "p"), t0 - pd.Timedelta(seconds=1.5))[0].tolist() == [1.5]


def test_binary_array_reads_are_exact(db):
    """float8 and timestamptz arrays decoded by numpy: special values, µs, times before 2000."""
    db.query_df("SELECT 1")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO entities (key, site_id, device_id, metric) VALUES ('s.d.x', 's', 'd', 'x')"
        )
        entity_id = conn.exec_driver_sql("SELECT id FROM entities WHERE key = 's.d.x'").scalar()
    stamps = pd.to_datetime(
        [
            "1999-12-31T23:59:59.999999Z",
            "2000-01-01T00:00:00.000000Z",
            "2026-06-21T10:00:00.000001Z",
        ]
    )
    values = [-0.0, 1e300, 0.1]
    with db.engine.begin() as conn:
        db.dialect.ensure_partitions(conn, stamps[0].to_pydatetime(), stamps[-1].to_pydatetime())
        for ts, value in zip(stamps, values, strict=True):
            conn.exec_driver_sql(
                "INSERT INTO samples (entity_id, ts, value) VALUES (%s, %s, %s)",
                (entity_id, ts.to_pydatetime(), value),
            )
    got = db.telemetry.sample_set(
        stamps[0].to_pydatetime(), datetime(2027, 1, 1, tzinfo=UTC), ["x"]
    )
    series = got[("s", "d", "x")]
    assert list(series.index) == list(stamps)
    assert series.tolist() == values and np.signbit(series.iloc[0])
    empty = db.telemetry.sample_set(
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), ["x"]
    )
    assert len(empty) == 0 and empty.to_frame().empty


def test_kpi_rows_by_binary_copy_read_back_exactly(db):
    hours = pd.date_range(H0, periods=3, freq="h")
    rows = pd.DataFrame(
        {
            "site_id": ["s-1", "s-1", 'site "2", ä'], "device_id": ["inv,1", "*", "*"],
            "period_start": hours, "period_h": 1.0, "energy_ac_kwh": [1.5, np.nan, 0.1],
            "pr": [0.81, None, 1e-300], "samples": [60, 0, 7],
        }
    )  # fmt: skip
    assert db.kpis.replace("kpi_hourly", H0, H1, rows) == 3
    fast = db.kpis.read("kpi_hourly", H0, H1)
    plain = Database(db.url, transfer=Rows()).kpis.read("kpi_hourly", H0, H1)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True, check_dtype=False)
    assert fast["site_id"].tolist() == rows["site_id"].tolist()
    assert fast["energy_ac_kwh"].isna().tolist() == [False, True, False]
    assert fast["pr"].tolist()[2] == 1e-300 and fast["samples"].tolist() == [60, 0, 7]
    nulls = scalar(
        db,
        "SELECT count(*) FROM kpi_hourly WHERE energy_ac_kwh IS NULL AND pr IS NULL AND p_dc_kw IS NULL",
    )
    assert nulls == 1  # NaN and None stored as NULL, never as 'NaN'
    assert (
        scalar(db, "SELECT count(*) FROM kpi_hourly WHERE pr = 'NaN' OR energy_ac_kwh = 'NaN'") == 0
    )
    # idempotent: the same window again replaces, never duplicates
    assert db.kpis.replace("kpi_hourly", H0, H1, rows) == 3
    assert scalar(db, "SELECT count(*) FROM kpi_hourly") == 3


@pytest.mark.parametrize("grain", ["daily", "monthly", "yearly"])
def test_sql_rollup_equals_the_pandas_aggregate_across_dst_and_time_zones(db, grain):
    """Daily/monthly/yearly rows summed by PostgreSQL in each site's local time equal
    `periods.aggregate` over the same hours: DST days (23 and 25 h), two time zones, empty columns."""
    rng = np.random.default_rng(7)
    hours = pd.date_range("2026-03-20T00:00Z", "2026-04-05T00:00Z", freq="h", inclusive="left")
    frames = []
    for site_id in ("zrh", "nyc"):
        for device_id, p_dc in (("inv1", 100.0), ("inv2", 50.0), ("*", 150.0)):
            energy = rng.uniform(0, 80, len(hours))
            energy[rng.uniform(size=len(hours)) < 0.1] = np.nan
            frames.append(
                pd.DataFrame(
                    {
                        "site_id": site_id, "device_id": device_id, "period_start": hours, "period_h": 1.0,
                        "p_dc_kw": p_dc, "p_ac_kw": p_dc * 0.9, "energy_ac_kwh": energy,
                        "insolation_poa_kwh_m2": rng.uniform(0, 1, len(hours)),
                        "ref_energy_stc_kwh": rng.uniform(0, 100, len(hours)),
                        "time_operating_s": rng.uniform(0, 3600, len(hours)),
                        "time_forced_outage_s": rng.uniform(0, 100, len(hours)),
                        "export_kwh": np.nan, "samples": rng.integers(0, 60, len(hours)),
                    }
                )
            )  # fmt: skip
    rows = pd.concat(frames, ignore_index=True)
    db.kpis.replace("kpi_hourly", hours[0], hours[-1] + pd.Timedelta(hours=1), rows)
    zones = {"zrh": "Europe/Zurich", "nyc": "America/New_York"}
    start, end = hours[0].to_pydatetime(), hours[-1].to_pydatetime() + timedelta(hours=1)
    expected = aggregate(db.kpis.read("kpi_hourly", start, end), zones, grain)
    got = finish_periods(db.kpis.period_sums(start, end, zones, grain), zones, grain)
    assert set(got.columns) == set(expected.columns)
    expected = expected.sort_values(["period_start", "site_id", "device_id"], ignore_index=True)
    pd.testing.assert_frame_equal(
        got[expected.columns], expected, check_exact=False, rtol=1e-12, check_dtype=False
    )
    if grain == "daily":  # 29 March in Zurich has 23 hours, and starts at 23:00 UTC the day before
        day = got[
            (got["site_id"] == "zrh") & (got["period_start"] == pd.Timestamp("2026-03-28T23:00Z"))
        ]
        assert day["period_h"].unique().tolist() == [23.0] and day["export_kwh"].isna().all()


def test_migration_removes_monthly_rows_split_by_the_old_dst_bug(db):
    db.plant.sync(_plant())  # site 'testsite' in Europe/Zurich
    good = pd.Timestamp("2026-02-28T23:00Z")  # 1 March 00:00 local
    split = pd.Timestamp("2026-02-28T22:00Z")  # what the old code gave the hours after 29 March
    rows = pd.DataFrame(
        {
            "site_id": "testsite",
            "device_id": "*",
            "period_start": [split, good],
            "energy_ac_kwh": [1.0, 2.0],
        }
    )
    db.kpis.replace("kpi_monthly", split, good + pd.Timedelta(hours=1), rows)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM schema_migrations WHERE version = 5")
    assert db.migrations.migrate() == [5]
    left = db.kpis.read("kpi_monthly", split, good + pd.Timedelta(hours=1))
    assert left["period_start"].tolist() == [good] and left["energy_ac_kwh"].tolist() == [2.0]
