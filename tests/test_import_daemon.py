"""History imported while the Dagster daemon was down is computed by itself once it runs: `pvp migrate` and
`pvp import` as subprocesses (a SCADA export: local time without offset, kW and kWh), then the real
`dagster-daemon` with the project's dagster.yaml and workspace. Nobody launches a run: the landing sensor
ingests, `history_backfill_sensor` hands exactly the imported hours and their local days, month and year
to one Dagster backfill. A second import's backfill is cancelled in the UI (dagster-webserver's GraphQL,
what its Backfills tab calls): it is not started again; re-executed from the UI, it completes. The site
was commissioned in 2024, before any default partition start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from integrations.simulator.devices import backfill_frames
from pv_platform.defs.kpis.backfills import HISTORY, HISTORY_TAG, target_keys
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database
from pv_platform.storage import Database
from tests.conftest import (
    backfills,
    daemon_env,
    free_port,
    kpi_runs,
    scalar,
    start_daemon,
    stop_daemon,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ZONE = "Europe/Zurich"
# three local days of Zurich summer time (+02:00), 2024-06-15 to 17: 72 hours
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


def scada_export(path: Path, start: datetime = START, end: datetime = END) -> pd.DataFrame:
    """The simulator's history as a logger writes it: local wall time, kW, kWh, one column per signal."""
    site = parse_plant(PLANT, "<test>").sites[0]
    frames = backfill_frames(site, 3, start, end, 60)
    index = frames["inv1"].index
    table = pd.DataFrame({"Zeit": index.tz_convert(ZONE).strftime("%d.%m.%Y %H:%M")})
    for inv in ("inv1", "inv2"):
        table[f"{inv} Pac [kW]"] = (frames[inv]["ac_power"] / 1e3).to_numpy()
        table[f"{inv} E [kWh]"] = (frames[inv]["ac_energy"] / 1e3).to_numpy()
    table["Einstrahlung [W/m2]"] = frames["wx1"]["poa_irradiance"].to_numpy()
    table["T Modul"] = frames["wx1"]["module_temperature"].to_numpy()
    table.to_csv(path, index=False)
    return table


START_B, END_B = datetime(2024, 6, 20, 22, tzinfo=UTC), datetime(2024, 6, 23, 22, tzinfo=UTC)
CANCEL = """mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename
  ... on PythonError { message } } }"""
REEXECUTE = """mutation($id: String!) { reexecutePartitionBackfill(reexecutionParams:
  {parentRunId: $id, strategy: FROM_FAILURE}) { __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message } } }"""
LIST = """{ partitionBackfillsOrError(limit: 50) { ... on PartitionBackfills { results {
  id status tags { key value } } } } }"""


def import_file(csv: Path, env: dict, mapping: Path) -> subprocess.CompletedProcess:
    """`pvp import` of an export as a user runs it."""
    out = subprocess.run(
        [BIN / "pvp", "import", csv, "--mapping", mapping], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "rows/s" in out.stderr  # the progress bar's rate
    return out


def start_webserver(env: dict, tmp_path: Path) -> subprocess.Popen:
    """The Dagster UI (dagster-webserver) on a free port, its log `<tmp_path>/webserver.log`."""
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")  # noqa: SIM115 - the process holds it
    proc = subprocess.Popen(
        [BIN / "dagster-webserver", "-w", REPO / "workspace.yaml", "-h", "127.0.0.1", "-p",
         str(port)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    proc.url = f"http://127.0.0.1:{port}"
    return proc


def webserver_url(proc: subprocess.Popen) -> str | None:
    try:
        with urllib.request.urlopen(f"{proc.url}/server_info", timeout=5) as response:
            return proc.url if response.status == 200 else None
    except OSError:
        return None


def graphql(url: str, query: str, **variables) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def ui_backfills(url: str) -> list[dict]:
    """The history backfills the UI's Backfills tab lists."""
    results = graphql(url, LIST)["partitionBackfillsOrError"]["results"]
    return [b for b in results if {"key": HISTORY_TAG, "value": HISTORY} in b["tags"]]


def ui_status(url: str, backfill_id: str) -> str | None:
    return next((b["status"] for b in ui_backfills(url) if b["id"] == backfill_id), None)


def test_history_imported_while_the_daemon_was_down_is_computed_by_itself(
    pg_admin_url, pg_url, tmp_path, monkeypatch
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
    out = import_file(csv, env, mapping)
    readings = 6 * len(table)
    assert f"{len(table):,} file rows read, {readings:,} readings landed" in out.stdout
    assert "0 rows/cells refused" in out.stdout
    assert "rows/s" in out.stderr  # the progress bar's rate
    daemon, log = start_daemon(env, tmp_path)
    webserver = start_webserver(env, tmp_path)
    db = Database(pg_url)
    monkeypatch.setenv("PVP_DAGSTER_STORAGE_URL", env["PVP_DAGSTER_STORAGE_URL"])  # dagster.yaml's
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
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

        # one backfill, made by the sensor, covered exactly the imported hours and then their
        # local days, month and year (the UI's Backfills tab shows it; it can be cancelled there)
        wait_for(lambda: [b.status for b in backfills(instance)][:1] == [BulkActionStatus.COMPLETED_SUCCESS],
                 timeout_s=180, every_s=2, what="the backfill's completion",
                 progress=lambda: [b.status for b in backfills(instance)])  # fmt: skip
        done, *earlier = backfills(instance)
        # (a daemon that cannot load the code location in time - a loaded machine - fails a backfill
        # before it launches anything; the sensor then hands the same hours to a new one)
        assert all(b.status == BulkActionStatus.FAILED for b in earlier), earlier
        imported = {f"{START + timedelta(hours=i):%Y-%m-%d-%H:%M}" for i in range(72)}
        assert set(target_keys(done, dg.AssetKey("hourly_kpis"))) == imported
        assert set(target_keys(done, dg.AssetKey("alerts"))) == imported
        assert target_keys(done, dg.AssetKey("daily_kpis")) == [
            "2024-06-15", "2024-06-16", "2024-06-17"
        ]  # fmt: skip
        assert target_keys(done, dg.AssetKey("monthly_kpis")) == ["2024-06-01"]
        assert target_keys(done, dg.AssetKey("yearly_kpis")) == ["2024"]
        time.sleep(15)  # more sensor ticks: nothing more is launched for these hours and periods
        runs = kpi_runs(dagster_url)
        assert {b for _, b, _ in runs.values()} == {done.backfill_id}, runs  # no other KPI run
        # the 72 hours in one run of hourly_kpis + alerts (a week a run), then one run for the
        # three days, one for the month, one for the year: each period once, after all its hours
        # (a run whose worker crashed - a loaded machine - is retried by the daemon: a FAILURE
        # beside its successful retry)
        assert len([r for r in runs.values() if r[2] == "SUCCESS"]) == 4, runs

        # a second export lands while the daemon runs; the operator cancels its backfill in the UI
        # (Dagster's webserver, over HTTP): the sensor does not start it again
        ui = wait_for(lambda: webserver_url(webserver), timeout_s=240, what="dagster-webserver")
        seen = {b["id"] for b in ui_backfills(ui)}
        assert done.backfill_id in seen
        scada_export(tmp_path / "week25.csv", START_B, END_B)
        import_file(tmp_path / "week25.csv", env, mapping)
        fresh = wait_for(lambda: [b for b in ui_backfills(ui) if b["id"] not in seen],
                         timeout_s=300, every_s=1, what="the second import's backfill")  # fmt: skip
        second = fresh[0]["id"]
        assert graphql(ui, CANCEL, id=second)["cancelPartitionBackfill"]["__typename"] == (
            "CancelBackfillSuccess"
        )
        wait_for(lambda: ui_status(ui, second) == "CANCELED", timeout_s=180, what="cancelled")
        time.sleep(45)  # 9 ticks of the sensor, past its settling time: nothing new
        assert {b["id"] for b in ui_backfills(ui)} == seen | {second}
        days_b = f"{days} AND period_start >= '{START_B.isoformat()}'"
        assert scalar(db, days_b) == 0  # the days wait for all hours: none ran
        assert "of a cancelled backfill stay uncomputed" in (tmp_path / "daemon.log").read_text()
        # re-executed from the UI ("from failure"): the rest is computed, each day once
        again = graphql(ui, REEXECUTE, id=second)["reexecutePartitionBackfill"]
        assert again["__typename"] == "LaunchBackfillSuccess", again
        wait_for(lambda: ui_status(ui, again["backfillId"]) == "COMPLETED_SUCCESS",
                 timeout_s=600, every_s=3, what="the re-executed backfill")  # fmt: skip
        assert scalar(db, days_b) == 3
        hours_b = f"SELECT count(*) FROM kpi_hourly WHERE device_id = '*' AND period_start >= '{START_B.isoformat()}'"
        assert scalar(db, hours_b) == 72
    finally:
        instance.dispose()
        webserver.terminate()
        webserver.wait(30)
        stop_daemon(daemon, log)
        db.dispose()
        time.sleep(1)
        drop_database(pg_admin_url, dagster_db)
