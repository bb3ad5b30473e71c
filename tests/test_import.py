"""`pvp import` as a user runs it: the command as a subprocess on CSV and Parquet files, into a landing
that the real ingest path loads into a real PostgreSQL; time zones, units and refusals worked by hand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pv_platform.importing.convert import parse_times
from pv_platform.importing.mapping import MappingError, TimeSpec, conversion, load_mapping
from pv_platform.landing import TimeLimits, archive, list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant, parse_plant
from tests.conftest import scalar

PVP = str(Path(sys.executable).with_name("pvp"))
PLANT = {
    "sites": [
        {
            "id": "s1",
            "name": "Import Site",
            "latitude": 47.37,
            "longitude": 8.54,
            "timezone": "Europe/Zurich",
            "commissioning_date": "2024-03-01",
            "devices": [
                *(
                    {
                        "id": f"inv{i}",
                        "kind": "inverter",
                        "integration": "sunspec_modbus",
                        "p_dc_kw": 110,
                        "p_ac_kw": 100,
                        "config": {"host": "127.0.0.1", "port": 1502, "unit_id": i},
                    }
                    for i in (1, 2)
                ),
                {
                    "id": "wx1",
                    "kind": "weather_station",
                    "integration": "mqtt",
                    "config": {"topic": "pvp/import/wx1", "fields": {"poa_irradiance": "poa"}},
                },
            ],  # fmt: skip
        }
    ]
}


def _ns(text: str) -> int:
    return int(pd.Timestamp(text).as_unit("ns").value)


def test_time_stamps_in_every_form_a_logger_writes():
    """ISO with zone, naive in a named zone (both DST changes), a fixed offset all year, epoch s/ms."""
    iso = pd.Series(["2024-06-01T12:00:00+02:00", "2024-06-01 10:00Z", "2024-06-01"])
    stamps, why = parse_times(iso, TimeSpec())
    assert stamps[0] == stamps[1] == _ns("2024-06-01T10:00Z")
    assert "has no time zone" in why[2]
    naive = pd.Series(["2024-03-31 01:59", "2024-03-31 02:30", "2024-03-31 03:00",
                       "2024-10-27 02:30", "2024-10-27 02:30", "2024-10-27 03:00"])  # fmt: skip
    stamps, why = parse_times(naive, TimeSpec(zone="Europe/Zurich"))
    assert stamps[0] == _ns("2024-03-31T00:59Z") and stamps[2] == _ns("2024-03-31T01:00Z")
    assert "does not exist in Europe/Zurich" in why[1]
    # the repeated hour in file order: first summer time (+02), then winter time (+01)
    assert stamps[3] == _ns("2024-10-27T00:30Z") and stamps[4] == _ns("2024-10-27T01:30Z")
    assert stamps[5] == _ns("2024-10-27T02:00Z") and (why[[0, 2, 3, 4, 5]] == "").all()
    stamps, why = parse_times(pd.Series(["2024-07-01 12:00"]), TimeSpec(zone="+01:00"))
    assert stamps[0] == _ns("2024-07-01T11:00Z")  # standard time all year: no DST in July
    stamps, _ = parse_times(pd.Series(["1717243200", "x"]), TimeSpec(epoch="s"))
    assert stamps[0] == _ns("2024-06-01T12:00Z")
    stamps, why = parse_times(pd.Series(["1717243200500"]), TimeSpec(epoch="ms"))
    assert stamps[0] == _ns("2024-06-01T12:00:00.5Z")
    stamps, why = parse_times(
        pd.Series(["31.12.2024 23:15"]), TimeSpec(zone="UTC", format="%d.%m.%Y %H:%M")
    )
    assert stamps[0] == _ns("2024-12-31T23:15Z")


def test_units_convert_to_the_platform_units_and_unknown_ones_are_named(tmp_path):
    assert conversion("kW", "W") == (1e3, 0.0)
    assert conversion("W/m2", "W/m²") == (1.0, 0.0)
    factor, offset = conversion("°F", "°C")
    assert 212 * factor + offset == pytest.approx(100.0)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("site: s1\ncolumns: {P: {device: inv1, metric: ac_power, unit: furlong}}\n")
    csv = tmp_path / "a.csv"
    csv.write_text("timestamp,P\n2024-06-01T10:00Z,1\n")
    with pytest.raises(
        MappingError, match="unit 'furlong' does not convert to ac_power's unit 'W'"
    ):
        from pv_platform.importing.run import import_file

        import_file(csv, load_mapping(mapping, {}), parse_plant(PLANT, "<test>"), None)


def _env(tmp_path: Path, **extra) -> dict:
    plant_file = tmp_path / "plant.yaml"
    if not plant_file.exists():
        dump_plant(parse_plant(PLANT, "<test>"), plant_file)
    return {**os.environ, "PVP_PLANT_FILE": str(plant_file),
            "PVP_LANDING_DIR": str(tmp_path / "landing"), **extra}  # fmt: skip


def _pvp(tmp_path, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PVP, "import", *map(str, args)], env=_env(tmp_path), capture_output=True, text=True,
        timeout=300, **kw,
    )  # fmt: skip


WIDE = """time,INV1 P [kW],INV1 E [kWh],POA,comment
2024-03-31 01:58,1.5,100.0,10,ok
2024-03-31 02:30,1.5,100.0,10,clock skipped
2024-03-31 03:00,2.5,100.25,ERR,sensor error
2024-02-28 12:00,2.5,100.1,20,before commissioning
2024-10-27 02:30,1,2,3,summer time
2024-10-27 02:30,1,2,3,winter time
2024-10-27 03:30,1,2,,no irradiance
"""


def test_dry_run_reports_what_would_land_and_writes_nothing(tmp_path):
    csv = tmp_path / "wide.csv"
    csv.write_text(WIDE)
    out = _pvp(tmp_path, csv, "--site", "s1", "--time-column", "time", "--zone", "Europe/Zurich",
               "--column", "INV1 P [kW]=inv1.ac_power:kW", "--column", "INV1 E [kWh]=inv1.ac_energy:kWh",
               "--column", "POA=wx1.poa_irradiance:W/m2", "--dry-run")  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("7 file rows read, 13 readings would land")
    # power: 01:58 (+01), 03:00 (+02), 02:30 summer (+02), 02:30 winter (+01), 03:30 (+01)
    assert any(re.fullmatch(r"s1\.inv1\.ac_power\s+5\s+2024-03-31 00:58:00Z\s+2024-10-27 02:30:00Z\s*", ln) for ln in lines)  # fmt: skip
    assert any(re.fullmatch(r"s1\.wx1\.poa_irradiance\s+3\s+2024-03-31 00:58:00Z\s+2024-10-27 01:30:00Z\s*", ln) for ln in lines)  # fmt: skip
    assert "columns not mapped (ignored): comment" in out.stdout
    assert "5 rows/cells refused (would be quarantined)" in out.stdout
    assert "line 3: time '2024-03-31 02:30' does not exist in Europe/Zurich" in out.stdout
    assert "line 4: value 'ERR' in column 'POA' is not a finite number" in out.stdout
    assert "line 5: timestamp 2024-02-28T11:00:00+00:00 is before 2024-03-01 (site s1 commissioning)" in out.stdout  # fmt: skip
    assert not (tmp_path / "landing").exists()


def _ingest_all(db, landing: Path, limits: TimeLimits) -> int:
    """What the ingest job does with each waiting segment (ledger, ON CONFLICT, quarantine)."""
    inserted = 0
    for sid in list_closed(landing):
        inserted += db.telemetry.ingest_segment(
            read_segment(segment_path(landing, sid), limits)
        ).inserted
        archive(landing, sid)
    return inserted


def test_import_lands_converted_values_and_quarantines_refused_rows(tmp_path, db):
    csv = tmp_path / "wide.csv"
    csv.write_text(WIDE)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "site: s1\ntime: {column: time, zone: Europe/Zurich}\ncolumns:\n"
        "  'INV1 P [kW]': {device: inv1, metric: ac_power, unit: kW}\n"
        "  'INV1 E [kWh]': {device: inv1, metric: ac_energy, unit: kWh}\n"
        "  POA: {device: wx1, metric: poa_irradiance, unit: W/m2}\n"
    )
    out = _pvp(tmp_path, csv, "--mapping", mapping, "--no-progress")
    assert out.returncode == 0, out.stderr
    landing = tmp_path / "landing"
    limits = TimeLimits.for_plant(parse_plant(PLANT, "<test>"))
    assert _ingest_all(db, landing, limits) == 13
    rows = db.query_df(
        "SELECT e.key, s.ts, s.value FROM samples s JOIN entities e ON e.id = s.entity_id ORDER BY e.key, s.ts"
    )
    power = rows[rows.key == "s1.inv1.ac_power"]
    assert power.value.tolist() == [1500.0, 2500.0, 1000.0, 1000.0, 1000.0]  # kW -> W
    energy = rows[rows.key == "s1.inv1.ac_energy"]
    assert energy.value.tolist()[:2] == [100_000.0, 100_250.0]  # kWh -> Wh
    assert scalar(db, "SELECT unit FROM entities WHERE key = 's1.inv1.ac_power'") == "W"
    reasons = db.query_df("SELECT reason, payload FROM quarantine ORDER BY reason")
    assert len(reasons) == 5
    assert reasons.reason.str.startswith("line ").all()
    assert (
        bytes(reasons.payload[reasons.reason.str.contains("ERR")].iloc[0])
        == b"2024-03-31 03:00,POA=ERR"
    )
    # a second run lands nothing: the state file says it is done
    again = _pvp(tmp_path, csv, "--mapping", mapping, "--no-progress")
    assert "0 readings landed in 0 segments, 7 rows already imported" in again.stdout
    assert list_closed(landing) == []


def test_an_interrupted_import_resumes_and_loads_nothing_twice(tmp_path, db):
    """Ctrl-C in the middle, run again: every reading is in `samples` once, no segment loaded twice."""
    stamps = pd.date_range("2024-06-01", periods=120_000, freq="1min", tz="UTC")
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ")})
    frame = frame.loc[frame.index.repeat(3)].reset_index(drop=True)
    frame["device"] = np.tile(["inv1", "inv2", "wx1"], len(stamps))
    frame["metric"] = np.tile(["ac_power", "ac_power", "poa_irradiance"], len(stamps))
    frame["value"] = np.arange(len(frame), dtype=float)
    parquet = tmp_path / "long.parquet"
    frame.to_parquet(parquet, row_group_size=10_000)
    env = _env(tmp_path, PVP_IMPORT_BLOCK_READINGS="10000")
    cmd = [PVP, "import", str(parquet), "--site", "s1", "--layout", "long", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # interrupted once two blocks have landed: watched on the landing itself, every 10 ms (on a quiet
    # machine the whole file imported between two looks at the import's state file)
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "landing").exists() and len(list_closed(tmp_path / "landing")) >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    interrupted = len(list_closed(tmp_path / "landing"))
    # (36 blocks: with 18 of 20,000 rows a quiet machine had landed them all when the signal came)
    assert 2 <= interrupted < 36, "interrupted in the middle (36 blocks of 10,000 rows)"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "rows already imported before (skipped)" in out.stdout
    limits = TimeLimits.for_plant(parse_plant(PLANT, "<test>"))
    assert _ingest_all(db, tmp_path / "landing", limits) == len(frame)
    assert scalar(db, "SELECT count(*) FROM samples") == len(frame)
    assert scalar(db, "SELECT sum(value) FROM samples") == frame.value.sum()
    assert scalar(db, "SELECT count(*) FROM ingest_ledger") == scalar(
        db, "SELECT count(DISTINCT segment_id) FROM ingest_ledger"
    )
    first = scalar(db, "SELECT min(ts) FROM samples")
    assert first == datetime(2024, 6, 1, tzinfo=UTC)
