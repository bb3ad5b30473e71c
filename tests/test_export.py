"""`pvp export` run as users run it (the installed command, PVP_DATABASE_URL in its environment) on a
real PostgreSQL holding simulated history and the KPIs computed from it: every value in the CSV and
Parquet files is compared with the database, and every refusal names what is wrong."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from integrations.simulator.runner import backfill_landing
from pv_platform.export import KPI_HEADERS
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import aggregate
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.storage.schema import KPI_VALUE_COLUMNS

PVP = str(Path(sys.executable).parent / "pvp")
# Europe/Zurich is UTC+2 in summer: the local day 2026-06-30 is [06-29 22:00Z, 06-30 22:00Z)
DAY_START = datetime(2026, 6, 29, 22, tzinfo=UTC)
DAY_END = datetime(2026, 6, 30, 22, tzinfo=UTC)


def pvp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PVP, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture
def history(db, plant, landing, tmp_path):
    """Two local days of simulated minute data around 2026-06-30, their hourly and daily KPIs."""
    db.plant.sync(plant)
    start, end = DAY_START - timedelta(days=1), DAY_END + timedelta(hours=2)
    backfill_landing(plant, landing, 7, start - timedelta(minutes=15), end, 60)
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
    hourly = hourly_kpis_range(
        db.telemetry.sample_set(start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS),
        plant,
        start,
        end,
    )
    db.kpis.replace("kpi_hourly", start, end, hourly)
    daily = aggregate(hourly, {s.id: s.timezone for s in plant.sites}, "daily")
    db.kpis.replace("kpi_daily", start - timedelta(days=1), end + timedelta(days=1), daily)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env["PVP_DATABASE_URL"] = db.url
    return {"db": db, "env": env, "tmp": tmp_path}


def stored_samples(db, start, end, metrics) -> dict[tuple[str, str], float]:
    """(ISO time, entity key) -> value, straight from the tables."""
    rows = db.query_df(
        "SELECT s.ts, e.key, s.value FROM samples s JOIN entities e ON e.id = s.entity_id"
        " WHERE s.ts >= :a AND s.ts < :b AND e.metric = ANY(:m) AND e.site_id = 'testsite'",
        {"a": start, "b": end, "m": metrics},
    )
    return {
        (ts.astimezone(UTC).isoformat().replace("+00:00", "Z"), key): float(v)
        for ts, key, v in rows.itertuples(index=False)
    }


def test_samples_of_a_local_day_are_every_stored_value(history):
    db, env = history["db"], history["env"]
    metrics = ["ac_power", "ac_energy", "poa_irradiance"]
    out = pvp(env, "export", "--grain", "samples", "--site", "testsite",
              "--start", "2026-06-30", "--end", "2026-07-01", "-o", "-",
              *(a for m in metrics for a in ("--metric", m)))  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = list(csv.reader(io.StringIO(out.stdout)))
    header, rows = table[0], table[1:]
    assert header == [
        "ts [UTC]",
        "testsite.inv1.ac_energy [Wh]",
        "testsite.inv1.ac_power [W]",
        "testsite.inv2.ac_energy [Wh]",
        "testsite.inv2.ac_power [W]",
        "testsite.meter1.ac_power [W]",
        "testsite.wx1.poa_irradiance [W/m²]",
    ]
    # the site's local day: from local midnight (22:00 UTC the day before) to the next, exclusive
    assert rows[0][0] == "2026-06-29T22:00:00Z" and rows[-1][0] == "2026-06-30T21:59:00Z"
    exported = {
        (r[0], h.split(" ")[0]): float(cell)
        for r in rows
        for h, cell in zip(header[1:], r[1:], strict=True)
        if cell != ""
    }
    expected = stored_samples(db, DAY_START, DAY_END, metrics)
    assert len(expected) == 6 * 1440
    assert exported == expected  # exact: every float written in its shortest round-trip form
    assert f"{len(rows)} rows x 7 columns to standard output" in out.stderr


def test_downsampled_samples_are_bucket_means_and_last_counter_values(history):
    db, env, tmp = history["db"], history["env"], history["tmp"]
    target = tmp / "quarter-hours.parquet"
    out = pvp(env, "export", "--grain", "samples", "--site", "testsite", "--device", "inv1",
              "--metric", "ac_power", "--metric", "ac_energy", "--bucket", "15min",
              "--start", "2026-06-30T10:00Z", "--end", "2026-06-30T12:00Z",
              "--format", "parquet", "-o", str(target))  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = pq.read_table(target)
    assert table.column_names == [
        "ts [UTC]",
        "testsite.inv1.ac_energy [Wh] (last)",
        "testsite.inv1.ac_power [W] (mean)",
    ]
    assert table.schema.field("testsite.inv1.ac_power [W] (mean)").metadata == {b"unit": b"W"}
    frame = table.to_pandas()
    assert len(frame) == 8  # two hours of 15-min buckets
    raw = stored_samples(
        db,
        datetime(2026, 6, 30, 10, tzinfo=UTC),
        datetime(2026, 6, 30, 12, tzinfo=UTC),
        ["ac_power", "ac_energy"],
    )
    for row in frame.itertuples(index=False):
        bucket = row[0].to_pydatetime()
        inside = sorted(
            (t, k, v)
            for (t, k), v in raw.items()
            if bucket <= datetime.fromisoformat(t) < bucket + timedelta(minutes=15)
        )
        powers = [v for _, k, v in inside if k == "testsite.inv1.ac_power"]
        energies = [v for _, k, v in inside if k == "testsite.inv1.ac_energy"]
        assert len(powers) == 15
        assert math.isclose(row[2], sum(powers) / len(powers), rel_tol=1e-12)
        assert row[1] == energies[-1]  # the counter's last value, not a mean


def test_daily_kpis_as_csv_and_parquet_equal_the_kpi_table(history):
    db, env, tmp = history["db"], history["env"], history["tmp"]
    stored = db.kpis.read("kpi_daily", DAY_START, DAY_END, site_id="testsite")
    assert (
        len(stored) == 3 and stored["energy_ac_kwh"].max() > 100
    )  # site + 2 inverters, a sunny day
    for fmt in ("csv", "parquet"):
        target = tmp / f"days.{fmt}"
        out = pvp(env, "export", "--grain", "day", "--site", "testsite", "--start", "2026-06-30",
                  "--end", "2026-07-01", "--format", fmt, "-o", str(target))  # fmt: skip
        assert out.returncode == 0, out.stderr
        if fmt == "csv":
            rows = list(csv.DictReader(target.open(encoding="utf-8")))
            value = float
        else:
            rows = pq.read_table(target).to_pylist()
            value = lambda v: v  # noqa: E731
        assert len(rows) == 3
        assert [r["device"] for r in rows] == ["*", "inv1", "inv2"]
        for r in rows:
            assert r["period_start_local"] == "2026-06-30T00:00:00+02:00"
            db_row = stored[stored["device_id"] == r["device"]].iloc[0]
            for column in KPI_VALUE_COLUMNS:
                cell, want = r[KPI_HEADERS[column]], float(db_row[column])
                if math.isnan(want):
                    assert cell in ("", None), column
                else:
                    assert value(cell) == want, (fmt, r["device"], column)
        assert "energy_ac [kWh]" in rows[0] and "pr [fraction]" in rows[0]
        assert not target.with_name(target.name + ".part").exists()


def test_refusals_name_what_is_wrong_and_leave_no_file(history):
    env, tmp = history["env"], history["tmp"]
    target = tmp / "never.csv"
    cases = [
        ({"--site": "nowhere"}, "site 'nowhere' is not in the database (sites: testsite)"),
        ({"--site": "testsite", "--start": "2026-07-02"}, "ends (2026-06-30 22:00 UTC) before"),
        ({"--grain": "samples", "--bucket": "7 weeks"}, "bucket '7 weeks'"),
        ({"--grain": "day", "--bucket": "15min"}, "--bucket and --metric are for the samples"),
        ({"--device": "inv1"}, "a device needs its site"),
        ({"--start": "30.06.2026"}, "'30.06.2026' is not an ISO 8601 date"),
        ({"--grain": "samples", "--site": "testsite", "--metric": "nope"}, "no stored entities"),
        ({"--format": "parquet", "-o": "-"}, "Parquet cannot go to standard output"),
    ]
    for options, message in cases:
        args = {"--start": "2026-06-30", "--end": "2026-07-01", "-o": str(target), **options}
        out = pvp(env, "export", *(x for kv in args.items() for x in kv))
        assert out.returncode == 2, (options, out.stdout)
        assert message in out.stderr, (options, out.stderr)
        assert not target.exists() and not target.with_name("never.csv.part").exists()


MAXRSS = (
    "import resource, sys; from pv_platform.cli import main; rc = main(sys.argv[1:]);"
    " print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
    " sys.exit(rc)"
)


@pytest.mark.slow
def test_a_year_of_minute_data_streams_in_flat_memory(db, tmp_path):
    """Two entities × a year of minutes (1 051 200 samples): the export's peak memory is that of a
    one-hour export plus a few MB (held in memory it would take well over 100 MB more)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "SELECT public.pvp_ensure_samples_partitions(%s, %s)", (start, start.replace(year=2026))
        )
        conn.execute(
            sa.text(
                "INSERT INTO entities (key, site_id, device_id, metric, unit, device_class) VALUES"
                " ('big.inv1.ac_power', 'big', 'inv1', 'ac_power', 'W', 'power'),"
                " ('big.inv1.dc_power', 'big', 'inv1', 'dc_power', 'W', 'power')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO samples SELECT e.id, t, extract(epoch FROM t) / 60 + e.id"
                " FROM entities e, generate_series(CAST(:a AS timestamptz),"
                " CAST(:b AS timestamptz) - interval '1 minute', interval '1 minute') t"
            ),
            {"a": start, "b": start.replace(year=2026)},
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env["PVP_DATABASE_URL"] = db.url

    def run(end: str, target: Path) -> int:
        out = subprocess.run(
            [sys.executable, "-c", MAXRSS, "export", "--grain", "samples", "--site", "big",
             "--start", "2025-01-01T00:00Z", "--end", end, "-o", str(target)],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return int(out.stderr.split("MAXRSS_KB")[1].split()[0])

    small_kb = run("2025-01-01T01:00Z", tmp_path / "hour.csv")
    year_kb = run("2026-01-01T00:00Z", tmp_path / "year.csv")
    with (tmp_path / "year.csv").open() as f:
        header = f.readline().strip()
        first = f.readline().strip()
        lines = 2 + sum(1 for _ in f)
    assert header == "ts [UTC],big.inv1.ac_power [W],big.inv1.dc_power [W]"
    assert first.startswith("2025-01-01T00:00:00Z,")
    assert lines == 1 + 525_600
    assert year_kb - small_kb < 30_000, (small_kb, year_kb)


def test_every_site_is_cut_at_its_own_local_midnight(history):
    """`--site` omitted: every site, each range in its own time zone (New York's 2026-06-30 starts
    six hours after Zurich's)."""
    db, env = history["db"], history["env"]
    ny_day = datetime(2026, 6, 30, 4, tzinfo=UTC)  # local midnight in New York (UTC-4 in summer)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sites (id, name, latitude, longitude, timezone)"
                " VALUES ('nyc', 'New York', 40.7, -74.0, 'America/New_York')"
            )
        )
    rows = [  # the days before, of and after the local 2026-06-30
        {"site_id": "nyc", "device_id": "*", "period_start": ny_day + timedelta(days=d),
         "energy_ac_kwh": 100.0 + d}
        for d in (-1, 0, 1)
    ]  # fmt: skip
    db.kpis.replace("kpi_daily", ny_day - timedelta(days=2), ny_day + timedelta(days=2),
                    pd.DataFrame(rows), site_ids=["nyc"])  # fmt: skip
    out = pvp(env, "export", "--grain", "day", "--device", "*", "--site", "all",
              "--start", "2026-06-30", "--end", "2026-07-01", "-o", "-")  # fmt: skip
    # --device without --site is refused; with --site all it is refused the same way
    assert out.returncode == 2 and "a device needs its site" in out.stderr
    out = pvp(
        env, "export", "--grain", "day", "--start", "2026-06-30", "--end", "2026-07-01", "-o", "-"
    )
    assert out.returncode == 0, out.stderr
    table = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["device"] == "*"]
    assert [(r["site"], r["period_start [UTC]"], r["period_start_local"]) for r in table] == [
        ("nyc", "2026-06-30T04:00:00Z", "2026-06-30T00:00:00-04:00"),
        ("testsite", "2026-06-29T22:00:00Z", "2026-06-30T00:00:00+02:00"),
    ]
    assert float(table[0]["energy_ac [kWh]"]) == 100.0
