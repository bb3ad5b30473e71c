"""Partitions start where the data starts: the plant file's commissioning dates decide the first KPI
partition, older readings are quarantined with the reason, and a stored hour that no partition computes
fails the ingest run, opens an alert and is logged (never silently skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg

from pv_platform.defs.partitions import FIRST_HOUR
from pv_platform.defs.resources import platform_resources
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.landing import SegmentWriter, TimeLimits, list_closed
from pv_platform.plant import dump_plant, kpi_start, parse_plant
from pv_platform.storage import Database
from tests.conftest import demo_plant_dict, scalar


def _plant(*dates: str | None):
    data = demo_plant_dict([1502])
    base = data["sites"][0]
    sites = []
    for i, date in enumerate(dates):
        inverter = dict(base["devices"][0])
        inverter["config"] = {**inverter["config"], "unit_id": i + 1}  # one bus: a unit id each
        site = {**base, "id": f"s{i}", "devices": [inverter]}
        if date:
            site["commissioning_date"] = date
        sites.append(site)
    return parse_plant({"sites": sites}, "<test>")


def test_the_first_partition_is_the_earliest_commissioning_day():
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert kpi_start(_plant("2023-05-10", "2021-07-01", None), None, now) == datetime(
        2021, 7, 1, tzinfo=UTC
    )
    assert kpi_start(_plant(None), None, now) == datetime(2025, 1, 1, tzinfo=UTC)  # said in README
    assert kpi_start(_plant("2021-07-01"), "2024-02-01-00:00", now) == datetime(
        2024, 2, 1, tzinfo=UTC
    )


def test_the_code_location_partitions_start_at_the_plant_files_commissioning(tmp_path):
    """What the code server loads: hourly from the day's midnight UTC, days/months/years one day before
    (a site west of UTC is still in the previous local day at that hour)."""
    plant_file = tmp_path / "plant.yaml"
    dump_plant(_plant("2022-03-01", None), plant_file)
    probe = (
        "import json; from pv_platform.defs import partitions as p;"
        "print(json.dumps([p.hourly.get_first_partition_key(),"
        " p.daily.get_first_partition_key(), p.monthly.get_first_partition_key(),"
        " p.yearly.get_first_partition_key()]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PVP_KPI_START"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "PVP_PLANT_FILE": str(plant_file)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout.splitlines()[-1]) == [
        "2022-03-01-00:00",
        "2022-02-28",
        "2022-02-01",
        "2022",
    ]


def test_pvp_kpi_start_takes_a_date_or_an_iso_time_and_names_what_is_wrong(tmp_path):
    """PVP_KPI_START as a user writes it: a plain date or an ISO time with an offset starts the code
    location's hours there; a time that is none, or one inside an hour, stops `pvp` with one line
    naming the variable (not a traceback)."""
    plant_file = tmp_path / "plant.yaml"
    dump_plant(_plant("2022-03-01"), plant_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env["PVP_PLANT_FILE"] = str(plant_file)
    probe = (
        "from pv_platform.defs import partitions as p; print(p.hourly.get_first_partition_key())"
    )
    for given, first in (("2024-03-01", "2024-03-01-00:00"), ("2024-03-01-06:00", "2024-03-01-06:00"),
                         ("2024-03-01T06:00+02:00", "2024-03-01-04:00")):  # fmt: skip
        out = subprocess.run([sys.executable, "-c", probe], env={**env, "PVP_KPI_START": given},
                             capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        assert out.stdout.splitlines()[-1] == first, (given, out.stdout)
    pvp = os.path.join(os.path.dirname(sys.executable), "pvp")
    for given, said in (("yesterday", "'yesterday' is not a time: write 2024-03-01"),
                        ("2024-03-01T06:30", "'2024-03-01T06:30' is inside an hour")):  # fmt: skip
        out = subprocess.run([pvp, "migrate"], env={**env, "PVP_KPI_START": given,
                             "PVP_CLOCK_SPEED": "-2"}, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        lines = out.stderr.splitlines()
        assert lines[0] == "pvp: bad setting", out.stderr
        assert any(line.startswith(f"PVP_KPI_START: {said}") for line in lines), out.stderr
        assert "PVP_CLOCK_SPEED: Input should be greater than 0 (it is '-2')" in lines, out.stderr


def test_a_bad_setting_that_may_hold_a_secret_is_named_without_its_value():
    from pydantic import ValidationError

    from pv_platform.settings import settings_problems

    error = ValidationError.from_exception_data(
        "Settings",
        [{"type": "string_type", "loc": ("database_url",), "input": 12345},
         {"type": "int_parsing", "loc": ("smtp_port",), "input": "abc"}],
    )  # fmt: skip
    text = settings_problems(error)
    assert text.splitlines() == [
        "PVP_DATABASE_URL: Input should be a valid string",
        "PVP_SMTP_PORT: Input should be a valid integer, unable to parse string as an integer"
        " (it is 'abc')",
    ]


def test_readings_before_the_first_partition_are_quarantined_with_the_reason():
    limits = TimeLimits.for_plant(_plant("2024-03-01", None))
    assert "before 2024-03-01 (site s0 commissioning)" in limits.why_not(
        "s0.inv1.ac_power", datetime(2024, 2, 29, 23, tzinfo=UTC)
    )
    # a site without commissioning_date: nothing before the first partition (the other site's day)
    why = limits.why_not("s1.inv1.ac_power", datetime(2024, 2, 1, tzinfo=UTC))
    assert "before 2024-03-01T00:00Z, the first KPI partition" in why
    assert "give site s1 a commissioning_date" in why
    assert limits.why_not("s1.inv1.ac_power", datetime(2024, 3, 1, 1, tzinfo=UTC)) is None


def test_a_stored_hour_outside_the_partitions_fails_the_run_alerts_and_logs(
    pg_url, landing, tmp_path
):
    """The plant file now says the site was commissioned in 2021, but the code location still has the
    partitions it loaded before (from FIRST_HOUR): the hours are stored, and said loudly to be outside."""
    assert datetime(2021, 7, 1, tzinfo=UTC) < FIRST_HOUR
    plant_file = tmp_path / "plant.yaml"
    dump_plant(_plant("2021-07-01"), plant_file)
    Database(pg_url).migrations.migrate()
    resources = platform_resources(
        database_url=pg_url, landing_dir=str(landing), plant_file=str(plant_file)
    )
    writer = SegmentWriter(landing, max_rows=10_000, max_age_s=60)
    writer.add_rows(["s0.inv1.ac_power,2021-07-01T10:30:00+00:00,5.0\n"], {})
    writer.close()
    config = {"ops": {"ingest_segments": {"config": {"segment_ids": list_closed(landing)}}}}
    with dg.instance_for_test() as instance:
        run = ingest_job.execute_in_process(
            run_config=config, instance=instance, resources=resources, raise_on_error=False
        )
        assert not run.success
        failure = next(e for e in run.all_events if e.is_step_failure)
        assert "1 loaded hour(s) lie outside the KPI partitions" in str(failure.event_specific_data)
        assert "2021-07-01-10:00" in str(failure.event_specific_data)
        errors = [
            r.user_message
            for r in instance.all_logs(run.run_id)
            if r.level >= 40 and "outside the KPI partitions" in r.user_message
        ]
        assert errors
    db = Database(pg_url)
    assert scalar(db, "SELECT count(*) FROM samples") == 1  # stored, not lost
    assert scalar(db, "SELECT state FROM alerts WHERE rule = 'hours_outside_partitions'") == "open"
    assert (
        scalar(db, "SELECT severity FROM alerts WHERE rule = 'hours_outside_partitions'") == "HIGH"
    )
    db.dispose()
