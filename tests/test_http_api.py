"""The read-only HTTP API served by `pvp api` (its own process, as in production), asked over real HTTP
on a real PostgreSQL with simulated history and its KPIs: values equal the database, pages join up to
the whole, closed periods are cacheable with an ETag, and every refusal says what is wrong."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from pv_platform.http_api import MAX_LIMIT, token_hash
from pv_platform.services import free_port
from pv_platform.storage.schema import KPI_VALUE_COLUMNS
from tests.conftest import demo_plant_dict, scalar
from tests.test_export import DAY_END, DAY_START, history, stored_samples  # noqa: F401 (fixture)
from tests.test_hostile_roles import PASSWORDS, role_url

PVP = str(Path(sys.executable).parent / "pvp")
TOKENS = {
    "full": ("integrator", ["sites:read", "kpis:read", "samples:read", "alerts:read"], None),
    "kpis": ("kpi-reader", ["kpis:read"], None),
    "other": ("other-owner", ["sites:read", "kpis:read", "samples:read", "alerts:read"], ["elsewhere"]),
    "acker": ("site-operator", ["alerts:read", "alerts:ack"], ["testsite"]),
}  # fmt: skip


@pytest.fixture
def api(history):  # noqa: F811
    db, tmp = history["db"], history["tmp"]
    with db.engine.begin() as conn:  # three alerts: two of this site, one of another
        for i, (site, rule) in enumerate((("testsite", "string_fault"), ("elsewhere", "grid_outage"),
                                          ("testsite", "communication_lost"))):  # fmt: skip
            conn.execute(
                sa.text(
                    "INSERT INTO alerts (fingerprint, rule, severity, site_id, device_id, state,"
                    " opened_at, last_seen_at, message) VALUES (:f, :r, 'HIGH', :s, 'inv1', 'open',"
                    " :t, :t, :m)"
                ),
                {
                    "f": f"{rule}:{site}:inv1",
                    "r": rule,
                    "s": site,
                    "m": f"{rule} on {site}",
                    "t": DAY_START + timedelta(hours=10 + i),
                },  # fmt: skip
            )
    secrets = {key: f"secret-{key}-{os.getpid()}" for key in TOKENS}
    entries = []
    for key, (name, scopes, sites) in TOKENS.items():
        entry = {"name": name, "sha256": token_hash(secrets[key]), "scopes": scopes}
        if sites:
            entry["sites"] = sites
        entries.append(entry)
    (tmp / "tokens.json").write_text(json.dumps({"tokens": entries}))
    port = free_port()
    db.migrations.ensure_roles(
        PASSWORDS
    )  # served as in production: the read-only role (signs off via pvp_sign_alert)
    plant = demo_plant_dict([1502, 1503])  # the history's site (ports unused): inverters and tariff
    plant["sites"][0].update(tariff_per_kwh=0.12, currency="EUR")
    (tmp / "plant.json").write_text(json.dumps(plant))  # JSON is YAML
    env = dict(history["env"], PVP_API_TOKENS_FILE=str(tmp / "tokens.json"),
               PVP_DATABASE_URL=role_url(db.url, "pvp_reader"),
               PVP_PLANT_FILE=str(tmp / "plant.json"))  # fmt: skip
    log = open(tmp / "api.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [PVP, "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90  # imports alone took 30 s on a loaded 2-core machine
        while (
            b"API on http" not in (tmp / "api.log").read_bytes()
        ):  # its own server, not the port's
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp / "api.log"
            ).read_text()
            time.sleep(0.1)
        yield {"db": db, "base": f"http://127.0.0.1:{port}/api/v1", "secrets": secrets, "env": env,
               "tmp": tmp}  # fmt: skip
    finally:  # also when it never started: no server left behind
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log.close()
    assert secrets["full"] not in (tmp / "api.log").read_text()  # never a token in the log


def call(
    api,
    path: str,
    token: str | None = "full",
    method: str = "GET",
    headers=None,
    data=None,
    **params,
):
    """(status, headers, JSON body or None) of one request."""
    url = f"{api['base']}{path}" + (f"?{urlencode(params, doseq=True)}" if params else "")
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {api['secrets'].get(token, token)}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            return answer.status, answer.headers, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, exc.headers, json.loads(body) if body else None


def test_openapi_document_lists_every_route_and_each_answers(api):
    status, _, doc = call(api, "/openapi.json", token=None)
    assert status == 200 and doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/sites", "/sites/{site}/devices", "/sites/{site}/kpis",
                                 "/sites/{site}/samples", "/alerts", "/alerts/{id}/ack",
                                 "/sites/{site}/reports", "/sites/{site}/reports/{grain}/{file}",
                                 "/sites/{site}/losses", "/incidents"}  # fmt: skip
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    window = {"start": "2026-06-30", "end": "2026-07-01"}
    for path, spec in doc["paths"].items():
        if "get" not in spec or "/reports" in path:  # reports: tests/test_report_api.py
            continue
        names = {p["name"] for p in spec["get"]["parameters"]}
        params = {k: v for k, v in window.items() if k in names}
        status, _, body = call(api, path.replace("{site}", "testsite"), **params)
        assert status == 200 and isinstance(body["data"], list), path
        # no loss analytics or incidents in this history: their rows in tests/test_http_api_analytics.py
        assert body["data"] or path in ("/sites/{site}/losses", "/incidents"), path


def test_sites_devices_and_daily_kpis_equal_the_database(api):
    db = api["db"]
    _, _, sites = call(api, "/sites")
    assert [s["id"] for s in sites["data"]] == ["testsite"]
    assert sites["data"][0]["timezone"] == "Europe/Zurich"
    _, _, devices = call(api, "/sites/testsite/devices")
    inv1 = next(d for d in devices["data"] if d["id"] == "inv1")
    assert inv1["p_dc_kw"] == 110.0 and {"metric": "ac_power", "unit": "W"} in inv1["metrics"]

    status, headers, body = call(
        api, "/sites/testsite/kpis", grain="day", start="2026-06-30", end="2026-07-01"
    )
    assert status == 200
    assert body["start"] == "2026-06-29T22:00:00Z" and body["end"] == "2026-06-30T22:00:00Z"
    assert body["units"]["energy_ac_kwh"] == "kWh" and body["units"]["pr"] == "fraction"
    stored = db.kpis.read("kpi_daily", DAY_START, DAY_END, site_id="testsite")
    assert [r["device_id"] for r in body["data"]] == ["*", "inv1", "inv2"]
    for row in body["data"]:
        want = stored[stored["device_id"] == row["device_id"]].iloc[0]
        assert row["period_start"] == "2026-06-29T22:00:00Z"
        for column in KPI_VALUE_COLUMNS:
            expected = float(want[column])
            assert row[column] == (None if math.isnan(expected) else expected), column
    # a period closed months ago: cacheable, and a repeat with its ETag is 304 without a body
    assert headers["Cache-Control"] == "private, max-age=86400"
    status, again, none = call(api, "/sites/testsite/kpis", headers={"If-None-Match": headers["ETag"]},
                               grain="day", start="2026-06-30", end="2026-07-01")  # fmt: skip
    assert (status, none, again["ETag"]) == (304, None, headers["ETag"])
    # a range running up to now is not
    today = datetime.now(UTC).date()
    _, open_headers, _ = call(api, "/sites/testsite/kpis", grain="hour", start=str(today),
                              end=str(today + timedelta(days=1)))  # fmt: skip
    assert open_headers["Cache-Control"] == "private, no-cache"


def test_pages_join_up_to_exactly_the_stored_rows(api):
    db = api["db"]
    rows, cursor, pages = [], None, 0
    while True:
        params = {"grain": "hour", "start": "2026-06-30", "end": "2026-07-01", "limit": 10}
        status, _, body = call(
            api, "/sites/testsite/kpis", **params, **({"cursor": cursor} if cursor else {})
        )
        assert status == 200 and len(body["data"]) <= 10
        rows += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    stored = db.kpis.read("kpi_hourly", DAY_START, DAY_END, site_id="testsite")
    assert len(stored) == 72 and pages == 8  # 24 hours x (site + 2 inverters), 10 a page
    assert [(r["period_start"], r["device_id"]) for r in rows] == [
        (t.isoformat().replace("+00:00", "Z"), d)
        for t, d in zip(stored["period_start"], stored["device_id"], strict=True)
    ]
    assert [r["energy_ac_kwh"] for r in rows] == [
        None if math.isnan(v) else v for v in stored["energy_ac_kwh"]
    ]
    # raw samples of an hour, 100 a page: every stored value once
    got, cursor = {}, None
    while True:
        params = {"start": "2026-06-30T10:00Z", "end": "2026-06-30T11:00Z", "limit": 100,
                  "metric": ["ac_power", "poa_irradiance"]}  # fmt: skip
        _, _, body = call(
            api, "/sites/testsite/samples", **params, **({"cursor": cursor} if cursor else {})
        )
        for r in body["data"]:
            key = (r["ts"], f"testsite.{r['device_id']}.{r['metric']}")
            assert key not in got
            got[key] = r["value"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert got == stored_samples(
        db, datetime(2026, 6, 30, 10, tzinfo=UTC), datetime(2026, 6, 30, 11, tzinfo=UTC),
        ["ac_power", "poa_irradiance"],
    )  # fmt: skip


def test_downsampled_samples_and_alerts(api):
    db = api["db"]
    _, _, body = call(api, "/sites/testsite/samples", device="inv1", metric="ac_power", bucket="15min",
                      start="2026-06-30T10:00Z", end="2026-06-30T11:00Z")  # fmt: skip
    assert body["bucket_s"] == 900 and len(body["data"]) == 4
    raw = stored_samples(
        db,
        datetime(2026, 6, 30, 10, tzinfo=UTC),
        datetime(2026, 6, 30, 11, tzinfo=UTC),
        ["ac_power"],
    )
    for r in body["data"]:
        start = datetime.fromisoformat(r["ts"])
        inside = [v for (t, k), v in raw.items() if k == "testsite.inv1.ac_power"
                  and start <= datetime.fromisoformat(t) < start + timedelta(minutes=15)]  # fmt: skip
        assert r["unit"] == "W" and math.isclose(
            r["value"], sum(inside) / len(inside), rel_tol=1e-12
        )

    _, _, alerts = call(api, "/alerts")
    assert [a["rule"] for a in alerts["data"]] == [
        "communication_lost",
        "grid_outage",
        "string_fault",
    ]
    _, _, first = call(api, "/alerts", limit=2)
    _, _, second = call(api, "/alerts", limit=2, cursor=first["next_cursor"])
    assert [a["id"] for a in first["data"] + second["data"]] == [a["id"] for a in alerts["data"]]
    assert second["next_cursor"] is None
    _, _, mine = call(api, "/alerts", token="other")  # a token of one site sees that site's only
    assert [a["site_id"] for a in mine["data"]] == ["elsewhere"]
    _, _, opened = call(api, "/alerts", site="testsite", state="open")
    assert len(opened["data"]) == 2


def test_every_refusal_says_what_is_wrong(api):
    day = {"start": "2026-06-30", "end": "2026-07-01"}
    _, _, page = call(api, "/sites/testsite/kpis", grain="hour", limit=5, **day)
    cases = [
        # (path, token, method, params, status, message)
        ("/sites", None, "GET", {}, 401, "missing token"),
        ("/sites", "not-a-token", "GET", {}, 401, "unknown token"),
        ("/sites/testsite/samples", "kpis", "GET", day, 403, "token 'kpi-reader' lacks the scope 'samples:read'"),
        ("/sites/testsite/kpis", "other", "GET", day, 403, "token 'other-owner' may not read site 'testsite'"),
        ("/alerts", "other", "GET", {"site": "testsite"}, 403, "may not read site 'testsite'"),
        ("/sites/nowhere/kpis", "full", "GET", day, 404, "site 'nowhere' does not exist"),
        ("/reports", "full", "GET", {}, 404, "no such resource: /api/v1/reports"),
        ("/alerts", "full", "POST", {}, 405, "POST is not allowed here (only GET)"),
        ("/alerts/1/ack", "acker", "GET", {}, 405, "GET is not allowed here (only POST)"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "limit": 99999}, 400,
         f"limit: 99999 is over the maximum of {MAX_LIMIT} rows a page"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "limit": "ten"}, 400, "limit: 'ten' is not a whole number"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "limit": ["5", "6"]}, 400, "limit: given 2 times"),
        ("/sites/testsite/samples", "full", "GET", {"start": "2026-05-01", "end": "2026-06-10"}, 400,
         "range of 40 days: at most 31 days per request for samples"),
        ("/sites/testsite/kpis", "full", "GET", {"grain": "hour", "start": "2024-01-01", "end": "2026-01-01"}, 400,
         "range of 731 days: at most 366 days per request for hour"),
        ("/sites/testsite/kpis", "full", "GET", {"end": "2026-07-01"}, 400, "start: required"),
        ("/sites/testsite/kpis", "full", "GET", {"start": "2026-07-01", "end": "2026-06-30"}, 400, "end: must be after start"),
        ("/sites/testsite/kpis", "full", "GET", {"start": "yesterday", "end": "2026-06-30"}, 400, "'yesterday' is not an ISO 8601"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "grain": "week"}, 400, "grain: 'week' is not one of hour, day, month, year"),
        ("/sites/testsite/samples", "full", "GET", {**day, "bucket": "7 weeks"}, 400, "bucket '7 weeks'"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "cursor": "garbage!"}, 400, "cursor: not a cursor this API gave out"),
        ("/sites/testsite/kpis", "full", "GET", {**day, "grain": "day", "cursor": page["next_cursor"]}, 400,
         "cursor: it belongs to another query"),
        ("/alerts", "full", "GET", {"state": "closed"}, 400, "state: 'closed' is not one of open, acknowledged, resolved"),
    ]  # fmt: skip
    for path, token, method, params, status, message in cases:
        got, headers, body = call(api, path, token=token, method=method, **params)
        assert (got, body["status"]) == (status, status), (path, params, got, body)
        assert message in body["error"], (path, params, body["error"])
        if status == 401:
            assert headers["WWW-Authenticate"] == 'Bearer realm="pvp"'
        if status == 405:
            assert headers["Allow"] == ("POST" if path.endswith("/ack") else "GET")


def test_a_broken_tokens_file_is_refused_naming_the_entry(api):
    bad = api["tmp"] / "bad-tokens.json"
    bad.write_text(
        json.dumps({"tokens": [{"name": "x", "sha256": "abc", "scopes": ["kpis:read"]}]})
    )
    out = subprocess.run([PVP, "api", "--port", str(free_port())], env=dict(api["env"], PVP_API_TOKENS_FILE=str(bad)),
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 2
    assert f"{bad}: tokens[0] (x): 'sha256' must be 64 lowercase hex digits" in out.stderr
    made = subprocess.run([PVP, "api-token", "--name", "acme", "--scope", "kpis:read", "--site", "testsite"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    token = made.stderr.split(": ")[-1].strip()
    entry = json.loads(made.stdout)
    assert entry == {
        "name": "acme",
        "sha256": token_hash(token),
        "scopes": ["kpis:read"],
        "sites": ["testsite"],
    }


def test_acknowledging_an_alert_needs_the_right_and_is_signed_with_the_token(api):
    db = api["db"]
    ids = dict(db.query_df("SELECT rule, id FROM alerts").itertuples(index=False))
    mine, theirs = int(ids["string_fault"]), int(ids["grid_outage"])
    json_type = {"Content-Type": "application/json"}
    body = json.dumps({"comment": "crew on site"}).encode()
    refusals = [
        ("full", mine, body, json_type, 403, "token 'integrator' lacks the scope 'alerts:ack'"),
        ("acker", theirs, body, json_type, 404, f"alert {theirs} does not exist"),  # another site's
        ("acker", 999999, body, json_type, 404, "alert 999999 does not exist"),
        ("acker", mine, b"{nope", json_type, 400, "body: not JSON"),
        ("acker", mine, b"[1]", json_type, 400, "body: a JSON object expected"),
        ("acker", mine, json.dumps({"by": "mallory"}).encode(), json_type, 400, "unknown field(s) by"),
        ("acker", mine, json.dumps({"comment": "x" * 2001}).encode(), json_type, 400, "comment: a string of at most 2000"),
        ("acker", mine, body, {"Content-Type": "text/plain"}, 415, "Content-Type: application/json"),
        ("acker", mine, b"x" * 20_000, json_type, 413, "body: 20000 bytes, at most 16384"),
    ]  # fmt: skip
    for token, alert_id, data, headers, status, message in refusals:
        got, _, answer = call(
            api, f"/alerts/{alert_id}/ack", token=token, method="POST", headers=headers, data=data
        )
        assert (got, answer["status"]) == (status, status), (token, alert_id, answer)
        assert message in answer["error"], answer["error"]
    assert scalar(db, "SELECT count(*) FROM alerts WHERE state <> 'open'") == 0  # nothing changed

    status, _, done = call(
        api, f"/alerts/{mine}/ack", token="acker", method="POST", headers=json_type, data=body
    )
    assert status == 200 and done["data"]["state"] == "acknowledged"
    row = db.query_df(
        "SELECT state, acknowledged_by, ack_comment FROM alerts WHERE id = :i", {"i": mine}
    ).iloc[0]
    assert (row.state, row.acknowledged_by, row.ack_comment) == (
        "acknowledged",
        "api:site-operator",
        "crew on site",
    )
    again, _, answer = call(
        api, f"/alerts/{mine}/ack", token="acker", method="POST", headers=json_type, data=body
    )
    assert again == 409 and f"alert {mine} is acknowledged" in answer["error"]
