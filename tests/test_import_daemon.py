"""History imported while the Dagster daemon was down is computed by itself once it runs: `pvp migrate` and
`pvp import` as subprocesses (a SCADA export: local time without offset, kW and kWh), then the real
`dagster-daemon` with the project's dagster.yaml and workspace. Nobody launches a run: the landing sensor
ingests, the hourly sensor computes exactly the imported hours, the rollup sensor their local days,
month and year. The site was commissioned in 2024, before any default partition start."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from integrations.simulator.devices import backfill_frames
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database
from pv_platform.storage import Database
from tests.conftest import daemon_env, scalar, start_daemon, stop_daemon, wait_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ZONE = "Europe/Zurich"
# three local days of Zurich summer time (+02:00), 2024-06-15 to 17: 72 hours, two range runs (48 + 24)
START, END = datetime(2024, 6, 14, 22, tzinfo=UTC), datetime(2024, 6, 17, 22, tzinfo=UTC)
PLANT = {
    "sites": [
        {
            "id": "hist",
            "name": "History",
            "latitude": 47.37,
            "longitude": 8.54,
            "altitude_m": 410,
            "timezone": ZONE,
            "commissioning_date": "2024-06-01",
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
                    "config": {
                        "topic": "pvp/hist/wx1",
                        "fields": {"poa_irradiance": "poa", "module_temperature": "t_mod"},
                    },
                },
            ],  # fmt: skip
        }
    ]
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def scada_export(path: Path) -> pd.DataFrame:
    """The simulator's history as a logger writes it: local wall time, kW, kWh, one column per signal."""
    site = parse_plant(PLANT, "<test>").sites[0]
    frames = backfill_frames(site, 3, START, END, 60)
    index = frames["inv1"].index
    table = pd.DataFrame({"Zeit": index.tz_convert(ZONE).strftime("%d.%m.%Y %H:%M")})
    for inv in ("inv1", "inv2"):
        table[f"{inv} Pac [kW]"] = (frames[inv]["ac_power"] / 1e3).to_numpy()
        table[f"{inv} E [kWh]"] = (frames[inv]["ac_energy"] / 1e3).to_numpy()
    table["Einstrahlung [W/m2]"] = frames["wx1"]["poa_irradiance"].to_numpy()
    table["T Modul"] = frames["wx1"]["module_temperature"].to_numpy()
    table.to_csv(path, index=False)
    return table


def test_history_imported_while_the_daemon_was_down_is_computed_by_itself(
    pg_admin_url, pg_url, tmp_path
):
    dagster_db = f"pvp_dagster_{uuid.uuid4().hex[:8]}"
    dagster_url = ensure_database(pg_admin_url, dagster_db)
    plant_file, landing = tmp_path / "plant.yaml", tmp_path / "landing"
    dump_plant(parse_plant(PLANT, "<test>"), plant_file)
    env = daemon_env(tmp_path, pg_url, dagster_url, plant_file, landing)
    csv = tmp_path / "scada.csv"
    table = scada_export(csv)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        f"site: hist\ntime: {{column: Zeit, zone: {ZONE}, format: '%d.%m.%Y %H:%M'}}\ncolumns:\n"
        + "".join(
            f"  '{inv} Pac [kW]': {{device: {inv}, metric: ac_power, unit: kW}}\n"
            f"  '{inv} E [kWh]': {{device: {inv}, metric: ac_energy, unit: kWh}}\n"
            for inv in ("inv1", "inv2")
        )
        + "  'Einstrahlung [W/m2]': {device: wx1, metric: poa_irradiance, unit: W/m2}\n"
        + "  'T Modul': {device: wx1, metric: module_temperature, unit: degC}\n"
    )
    out = subprocess.run(
        [BIN / "pvp", "import", csv, "--mapping", mapping], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    readings = 6 * len(table)
    assert f"{len(table):,} file rows read, {readings:,} readings landed" in out.stdout
    assert "0 rows/cells refused" in out.stdout
    assert "rows/s" in out.stderr  # the progress bar's rate
    daemon, log = start_daemon(env, tmp_path)
    db = Database(pg_url)
    try:
        days = "SELECT count(*) FROM kpi_daily WHERE device_id = '*' AND computed_at IS NOT NULL"
        wait_for(lambda: scalar(db, days) == 3 and scalar(db, "SELECT count(*) FROM kpi_yearly") > 0,
                 timeout_s=900, every_s=5, what="the imported days' KPIs")  # fmt: skip
        assert scalar(db, "SELECT count(*) FROM samples") == readings
        hours = db.query_df(
            "SELECT period_start, energy_ac_kwh FROM kpi_hourly WHERE device_id = '*' ORDER BY 1"
        )
        assert len(hours) == 72  # exactly the imported hours
        assert hours.period_start.min() == START and hours.period_start.max() == END - timedelta(
            hours=1
        )
        daily = db.query_df(
            "SELECT period_start, device_id, energy_ac_kwh FROM kpi_daily ORDER BY 1, 2"
        )
        # inv1 on 15 June (local): the counter's rise over the local day, from the file, in kWh
        day = pd.to_datetime(table["Zeit"], format="%d.%m.%Y %H:%M").dt.date.astype(str)
        counter = table.loc[day == "2024-06-15", "inv1 E [kWh]"]
        next_day_first = table.loc[day == "2024-06-16", "inv1 E [kWh]"].iloc[0]
        inv1 = daily[(daily.device_id == "inv1")].energy_ac_kwh.iloc[0]
        assert inv1 == pytest.approx(next_day_first - counter.iloc[0], rel=0.01)
        site_day = daily[daily.device_id == "*"].energy_ac_kwh.iloc[0]
        assert site_day == pytest.approx(hours.energy_ac_kwh.iloc[:24].sum(), rel=1e-6)

        def successful_runs() -> dict[str, int]:
            with psycopg.connect(dagster_url) as conn:
                return dict(
                    conn.execute(
                        "SELECT pipeline_name, count(*) FROM runs WHERE status = 'SUCCESS'"
                        " GROUP BY 1"
                    ).fetchall()
                )

        # (the year's rows are written before its run is marked successful: wait for the run too)
        wait_for(lambda: "yearly_kpis_job" in successful_runs(), timeout_s=180, every_s=2,
                 what="the yearly run's success")  # fmt: skip
        runs = successful_runs()
        assert runs.get("ingest_job", 0) >= 1
        assert 1 <= runs["hourly_kpis_job"] <= 2  # 72 contiguous hours: ranges of at most 48
        # each period once, after all of its hours (the month and year waited for the second
        # range); the three consecutive days in one range run
        assert (runs["daily_kpis_job"], runs["monthly_kpis_job"], runs["yearly_kpis_job"]) == (
            1,
            1,
            1,
        )
    finally:
        stop_daemon(daemon, log)
        db.dispose()
        time.sleep(1)
        drop_database(pg_admin_url, dagster_db)
