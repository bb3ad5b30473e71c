"""The API's loss waterfall and incidents, served by `pvp api` as the read-only role over real HTTP:
the waterfall's periods are the site's local days and months summed from `loss_daily`, its causes add
up to reference - measured, and an incident's lost energy equals expected - actual of its inverter in
`kpi_hourly` while it is open, priced with the plant file's tariff."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from pv_platform.analytics.waterfall import CAUSES
from pv_platform.storage.incidents import IncidentStore
from tests.conftest import scalar
from tests.test_export import history  # noqa: F401 (fixture)
from tests.test_http_api import PVP, api, call  # noqa: F401 (fixture)

ZURICH_DAYS = [datetime(2026, 6, 28, 22, tzinfo=UTC) + timedelta(days=d) for d in range(3)]


def _loss_row(device: str, day: datetime, scale: float) -> dict:
    """A hand-made waterfall day: each cause 1..10 kWh × scale, measured = reference - their sum."""
    causes = {f"{c}_kwh": (i + 1) * scale for i, c in enumerate(CAUSES)}
    reference = 500.0 * scale
    return {"site_id": "testsite", "device_id": device, "period_start": day,
            "reference_kwh": reference, "measured_kwh": reference - sum(causes.values()), **causes}  # fmt: skip


@pytest.fixture
def losses(api):  # noqa: F811
    rows = [_loss_row(dev, day, scale) for dev, scale in (("*", 2.0), ("inv1", 1.0))
            for day in ZURICH_DAYS]  # fmt: skip
    api["db"].losses.replace_daily("testsite", pd.DataFrame(rows))
    return api


def test_the_waterfall_per_local_day_and_month_adds_up(losses):
    status, _, body = call(losses, "/sites/testsite/losses", grain="day", device="*",
                           start="2026-06-29", end="2026-07-02")  # fmt: skip
    assert status == 200, body
    assert [r["period_start"] for r in body["data"]] == [
        "2026-06-28T22:00:00Z",
        "2026-06-29T22:00:00Z",
        "2026-06-30T22:00:00Z",
    ]  # the local days of Zurich (UTC+2 in summer)
    assert (
        body["data"][0]["reference_kwh"] == 1000.0 and body["data"][0]["soiling_kwh"] == 16.0
    )  # 8th cause × 2
    assert body["causes"] == list(CAUSES) and body["units"]["clipping_kwh"] == "kWh"

    status, _, body = call(losses, "/sites/testsite/losses", grain="month",
                           start="2026-06-01", end="2026-08-01")  # fmt: skip
    assert status == 200, body
    by_key = {(r["device_id"], r["period_start"]): r for r in body["data"]}
    june, july = "2026-05-31T22:00:00Z", "2026-06-30T22:00:00Z"
    assert set(by_key) == {("*", june), ("*", july), ("inv1", june), ("inv1", july)}
    assert by_key[("*", june)]["reference_kwh"] == 2000.0  # two June days of 1000
    assert by_key[("inv1", july)]["unexplained_kwh"] == 10.0  # one July day, the 10th cause × 1
    for row in body["data"]:  # every kWh of the difference is attributed to one cause
        parts = sum(row[f"{c}_kwh"] for c in CAUSES)
        assert parts == pytest.approx(row["reference_kwh"] - row["measured_kwh"], abs=1e-9)


def test_losses_refusals_name_the_problem(losses):
    cases = [
        ({"grain": "week", "start": "2026-06-29", "end": "2026-07-01"}, "full", 400,
         "grain: 'week' is not one of day, month, year"),
        ({"start": "2026-06-29"}, "full", 400, "end: required"),
        ({"start": "2026-06-29", "end": "2026-07-01"}, "other", 403,
         "token 'other-owner' may not read site 'testsite'"),
        ({"start": "2026-06-29", "end": "2026-07-01"}, "acker", 403,
         "token 'site-operator' lacks the scope 'kpis:read'"),
    ]  # fmt: skip
    for params, token, status, message in cases:
        got, _, body = call(losses, "/sites/testsite/losses", token=token, **params)
        assert (got, body["error"][: len(message)]) == (status, message), params


def test_an_incident_carries_its_lost_energy_and_revenue(api):  # noqa: F811
    db = api["db"]
    with db.engine.connect() as conn:
        alert = dict(conn.execute(sa.text(
            "SELECT * FROM alerts WHERE site_id = 'testsite' AND rule = 'string_fault'")).mappings().one())  # fmt: skip
    incident = IncidentStore(db.engine).create(alert, "inv1")
    with (
        db.engine.begin() as conn
    ):  # the fault's effect: inv1 made half its energy from 08:00 to 12:00
        conn.execute(sa.text(
            "UPDATE kpi_hourly SET energy_ac_kwh = energy_ac_kwh / 2 WHERE site_id = 'testsite'"
            " AND device_id = 'inv1' AND period_start >= :a AND period_start < :b"),
            {"a": alert["opened_at"], "b": alert["opened_at"] + timedelta(hours=4)})  # fmt: skip
    lost = scalar(
        db,
        "SELECT sum(greatest(energy_expected_kwh - energy_ac_kwh, 0)) FROM kpi_hourly"
        " WHERE site_id = 'testsite' AND device_id = 'inv1' AND period_start >= :t",
        {"t": alert["opened_at"]},
    )  # fmt: skip  (opened on the hour: later hours count whole)
    assert lost > 0

    status, _, body = call(api, "/incidents", state="open")
    assert status == 200, body
    [row] = body["data"]
    assert (row["id"], row["site_id"], row["cause_rule"], row["devices"]) == (
        incident["id"], "testsite", "string_fault", ["inv1"])  # fmt: skip
    assert row["lost_energy_kwh"] == pytest.approx(float(lost), abs=1e-3)
    assert (row["lost_revenue"], row["currency"]) == (
        round(row["lost_energy_kwh"] * 0.12, 2),
        "EUR",
    )
    assert "string_fault inv1 (open)" in row["symptoms"]

    assert (
        call(api, "/incidents", token="other")[2]["data"] == []
    )  # another owner's token sees none
    assert call(api, "/incidents", state="resolved")[2]["data"] == []
    status, _, body = call(api, "/incidents", state="closed")
    assert (status, body["error"]) == (400, "state: 'closed' is not one of open, resolved")
    status, _, body = call(api, "/incidents", token="kpis")
    assert (status, body["error"]) == (403, "token 'kpi-reader' lacks the scope 'alerts:read'")


def test_incidents_limit_reaches_past_the_old_cap_of_200(api):  # noqa: F811
    """`GET /incidents?limit=500` gave 200 of 300 incidents: the report read them with the store's
    default limit. Now the request's limit reaches the SQL; `pvp alerts incidents` too, and it says what
    its page leaves out."""
    db = api["db"]
    # 300 incidents of testsite, one a minute from 06:01 UTC, each opened by its own alert (as the
    # engine opens them: `IncidentStore.create` links the cause)
    with db.engine.begin() as conn:
        alerts = conn.execute(sa.text(
            "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state, opened_at,"
            " last_seen_at, message) SELECT 'inverter_fault:testsite:inv1:' || n, 'inverter_fault',"
            " 'HIGH', 'testsite', 'inv1', 'resolved', :t + n * interval '1 minute',"
            " :t + n * interval '1 minute', 'incident ' || n FROM generate_series(1, 300) AS n"
            " RETURNING *"), {"t": datetime(2026, 6, 29, 6, tzinfo=UTC)}).mappings().all()  # fmt: skip
    store = IncidentStore(db.engine)
    for alert in alerts:
        store.create(dict(alert), "inv1")
    status, _, body = call(api, "/incidents", limit=500)
    assert status == 200, body
    titles = [r["title"] for r in body["data"]]
    assert titles == [f"incident {n}" for n in range(300, 0, -1)]  # all 300, newest first
    status, _, body = call(api, "/incidents", limit=250, site="testsite")
    assert [r["title"] for r in body["data"]][-1] == "incident 51" and len(body["data"]) == 250

    def run(*args):  # the CLI as an operator runs it, on the same database (the reader role)
        return subprocess.run([PVP, "alerts", "incidents", *args], env=api["env"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    done = run("--limit", "500")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("incident ") == 300 and "more with --limit" not in done.stdout
    done = run("--limit", "20")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("incident ") == 20
    assert "-- the newest 20 of 300 incidents shown; more with --limit" in done.stdout


def test_an_incident_without_alerts_is_listed_and_a_view_error_is_not_a_400(api):  # noqa: F811
    """An incident whose alerts are gone (deleted by hand) made the report's symptom mapping raise
    ValueError, which the server answered as 400 'Content-Length: not a number'. Now the incident is
    listed with no symptoms; a view's own error would be a 500, logged."""
    db = api["db"]
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO incidents (site_id, scope, cause_alert_id, cause_rule, cause_device, severity,"
            " state, opened_at, title) VALUES ('testsite', 'inv1', 999999, 'string_fault', 'inv1',"
            " 'HIGH', 'open', :t, 'orphan incident')"), {"t": datetime(2026, 6, 29, 6, tzinfo=UTC)})  # fmt: skip
    status, _, body = call(api, "/incidents")
    assert status == 200, body
    [row] = body["data"]
    assert (row["title"], row["symptoms"], row["devices"]) == ("orphan incident", "", [])
    status, _, body = call(api, "/incidents", headers={"Content-Length": "lots"})
    assert (status, body["error"]) == (400, "Content-Length: not a number")  # still refused by name
