"""Reports through the HTTP API (`pvp api` in its own process, logged in as the read-only role, asked
over real HTTP): the list, the PDF and HTML downloads equal to the stored report, and every refusal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from pv_platform.http_api import token_hash
from pv_platform.reports.publish import publish_report
from pv_platform.reports.render import number
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.settings import Settings
from pv_platform.storage import Database
from tests.report_seed import END, START, seed_november
from tests.test_hostile_roles import PASSWORDS, role_url
from tests.test_reports import _plant

PVP = str(Path(sys.executable).parent / "pvp")
TOKENS = {
    "owner": ("owner", ["sites:read", "reports:read"], ["testsite"]),
    "kpis": ("kpi-reader", ["kpis:read", "sites:read"], None),
    "other": ("other-owner", ["reports:read"], ["elsewhere"]),
    "fleet": ("fleet-owner", ["reports:read"], None),
}


@pytest.fixture(scope="module")
def report_api(pg_admin_url, tmp_path_factory):
    """One database and one server for the module (seeding and publishing take ~10 s)."""
    name = f"pvp_test_{uuid.uuid4().hex[:10]}"
    db = Database(ensure_database(pg_admin_url, name))
    db.migrations.migrate()
    tmp_path = tmp_path_factory.mktemp("report-api")
    plant = _plant()
    seed_november(db, plant)
    published = publish_report(
        db, plant.sites[0], "monthly", "2026-11-01", (START, END), Settings(),
        datetime(2026, 12, 2, tzinfo=UTC),
    )  # fmt: skip
    secrets = {key: f"secret-{key}-{os.getpid()}" for key in TOKENS}
    entries = [
        {"name": name, "sha256": token_hash(secrets[key]), "scopes": scopes}
        | ({"sites": sites} if sites else {})
        for key, (name, scopes, sites) in TOKENS.items()
    ]
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": entries}))
    db.migrations.ensure_roles(PASSWORDS)
    env = dict(os.environ, PVP_API_TOKENS_FILE=str(tmp_path / "tokens.json"),
               PVP_DATABASE_URL=role_url(db.url, "pvp_reader"), PVP_DATA_DIR=str(tmp_path))  # fmt: skip
    port = free_port()
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([PVP, "api", "--port", str(port)], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while b"API on http" not in log_path.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    yield {"db": db, "base": f"http://127.0.0.1:{port}/api/v1", "secrets": secrets,
           "published": published}  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    db.dispose()
    drop_database(pg_admin_url, name)
    assert secrets["owner"] not in log_path.read_text()


def get(api, path: str, token: str | None = "owner", method: str = "GET", headers=None):
    """(status, headers, body bytes) of one request."""
    request = urllib.request.Request(f"{api['base']}{path}", method=method, headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {api['secrets'].get(token, token)}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_reports_are_listed_and_downloaded(report_api):
    db = report_api["db"]
    status, _, body = get(report_api, "/sites/testsite/reports")
    assert status == 200
    rows = json.loads(body)["data"]
    assert [(r["grain"], r["period"]) for r in rows] == [("monthly", "2026-11")]
    assert rows[0]["pdf"] == "/api/v1/sites/testsite/reports/monthly/2026-11.pdf"
    stored = db.kpis.read("kpi_monthly", START, END, "testsite").set_index("device_id").loc["*"]
    assert rows[0]["summary"]["energy_ac_kwh"] == pytest.approx(stored.energy_ac_kwh)

    status, headers, pdf = get(report_api, "/sites/testsite/reports/monthly/2026-11.pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert (
        headers["Content-Disposition"] == 'attachment; filename="pvp-report-testsite-2026-11.pdf"'
    )
    assert pdf == db.reports.document("testsite", "monthly", "2026-11", "pdf")
    first_page = pdfium.PdfDocument(pdf)[0].get_textpage().get_text_range()
    assert number(stored.energy_ac_kwh) in first_page
    status, headers, html = get(report_api, "/sites/testsite/reports/monthly/2026-11.html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<td>{number(stored.energy_ac_kwh)}</td>".encode() in html
    # the same bytes again: 304 with the ETag
    etag = headers["ETag"]
    status, _, body = get(
        report_api, "/sites/testsite/reports/monthly/2026-11.html", headers={"If-None-Match": etag}
    )
    assert status == 304 and body == b""
    _, _, spec = get(report_api, "/openapi.json", token=None)
    assert "/sites/{site}/reports/{grain}/{file}" in json.loads(spec)["paths"]


@pytest.mark.parametrize(
    ("path", "token", "method", "status", "says"),
    [
        ("/sites/testsite/reports", None, "GET", 401, "missing token"),
        ("/sites/testsite/reports/monthly/2026-11.pdf", None, "GET", 401, "missing token"),
        ("/sites/testsite/reports/monthly/2026-11.pdf", "not-a-token", "GET", 401, "unknown token"),
        (
            "/sites/testsite/reports/monthly/2026-11.pdf",
            "kpis",
            "GET",
            403,
            "lacks the scope 'reports:read'",
        ),
        (
            "/sites/testsite/reports/monthly/2026-11.pdf",
            "other",
            "GET",
            403,
            "may not read site 'testsite'",
        ),
        ("/sites/testsite/reports", "other", "GET", 403, "may not read site 'testsite'"),
        ("/sites/testsite/reports/monthly/2026-10.pdf", "owner", "GET", 404, "no monthly report"),
        ("/sites/nowhere/reports", "fleet", "GET", 404, "site 'nowhere' does not exist"),
        ("/sites/nowhere/reports/monthly/2026-11.pdf", "fleet", "GET", 404, "does not exist"),
        ("/sites/testsite/reports/yearly/2026.pdf", "owner", "GET", 404, "no yearly report"),
        ("/sites/testsite/reports/weekly/2026-11.pdf", "owner", "GET", 400, "grain: 'weekly'"),
        ("/sites/testsite/reports/monthly/2026-13.pdf", "owner", "GET", 400, "period: '2026-13'"),
        ("/sites/testsite/reports/yearly/2026-11.pdf", "owner", "GET", 400, "period: '2026-11'"),
        ("/sites/testsite/reports/monthly/2026-11.docx", "owner", "GET", 400, "format:"),
        ("/sites/testsite/reports?grain=daily", "owner", "GET", 400, "grain: 'daily'"),
        ("/sites/testsite/reports/monthly/2026-11.pdf", "owner", "POST", 405, "only GET"),
        ("/sites/testsite/reports/monthly/2026-11.pdf", "owner", "DELETE", 405, "only GET"),
    ],
)
def test_every_refusal_says_why(report_api, path, token, method, status, says):
    got, headers, body = get(report_api, path, token=token, method=method)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert says in json.loads(body)["error"]
