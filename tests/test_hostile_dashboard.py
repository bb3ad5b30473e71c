"""The dashboard against hostile users (issue 15 items 6-9 and the `days=` link): the real `pvp
dashboard` process behind its login, on the database as `pvp_reader` (as in production), driven over
real HTTP and in Debian's headless Chromium (/usr/bin/chromium through playwright)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tornado.web import create_signed_value

from pv_platform.dashboard_login import LoginThrottle
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.test_dashboard_browser import REPO, serve

pytestmark = [
    pytest.mark.hostile,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="`make test` installs Debian's chromium"
    ),
]
XSS = '<img src=x onerror="window.__pwned=true">'  # no MQTT wildcard: it is a topic level too
PASSWORD = "s3cret-pass-15"
READER_PW = "reader-pw-dash-15"


@pytest.fixture(scope="module")
def dash(pg_admin_url, mqtt_url, tmp_path_factory):
    (REPO / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("hostile-dash")
    name = f"pvp_hostile_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    db.migrations.ensure_roles({"pvp_reader": READER_PW})
    plant = parse_plant(demo_plant_dict([free_port(), free_port()]))
    dump_plant(plant, tmp / "plant.yaml")
    db.plant.sync(plant)
    store = AlertStore(db.engine)
    now = datetime.now(UTC)
    store.open("xss:testsite:inv1", "equipment_fault", "HIGH", "testsite", "inv1",
               f"inverter down {XSS}", {}, now - timedelta(minutes=5))  # fmt: skip
    store.open("xss:testsite:inv2", "string_fault", "LOW", "testsite", XSS, "string low", {},
               now - timedelta(minutes=4))  # fmt: skip
    users = tmp / "users.json"
    users.write_text(json.dumps({"operator": PASSWORD}))
    secret = "cookie-" + secrets.token_urlsafe(32)
    prefix = f"pvp/hostiledash/{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATABASE_URL=make_url(url).set(username="pvp_reader", password=READER_PW).render_as_string(False),
        PVP_PLANT_FILE=str(tmp / "plant.yaml"), PVP_MQTT_URL=mqtt_url, PVP_LIVE_TOPIC_PREFIX=prefix,
        PVP_DASHBOARD_USERS_FILE=str(users), PVP_DASHBOARD_COOKIE_SECRET=secret,
    )  # fmt: skip
    port = free_port(5350)
    proc = serve(env, port)
    yield {"db": db, "proc": proc, "port": port, "secret": secret, "prefix": prefix,
           "mqtt": mqtt_url, "log": REPO / "tests" / "artifacts" / f"panel-{port}.log"}  # fmt: skip
    proc.terminate()
    proc.wait(10)
    db.dispose()
    drop_database(pg_admin_url, name)


def request(dash, method: str, path: str, body: dict | None = None, cookie: str = "",
            source: str = "127.0.0.1") -> http.client.HTTPResponse:  # fmt: skip
    """One HTTP request to the dashboard from a loopback source address, redirects not followed."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", dash["port"], timeout=30, source_address=(source, 0)
    )
    headers = {"Cookie": cookie} if cookie else {}
    data = None
    if body is not None:
        data = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, data, headers)
    response = conn.getresponse()
    response.text = response.read().decode(errors="replace")
    conn.close()
    return response


def signed_in_page(browser, dash, path: str):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"http://127.0.0.1:{dash['port']}/app")
    page.fill("input[name='username']", "operator")
    page.fill("input[name='password']", PASSWORD)
    page.click("button[type='submit'], input[type='submit']")
    page.wait_for_selector("text=Signed in as", timeout=30_000)
    if path:
        page.goto(f"http://127.0.0.1:{dash['port']}/app{path}")
        page.wait_for_selector("text=PV Platform", timeout=30_000)
    return page


def test_the_cookie_secret_is_not_on_the_command_line(dash):
    """Item 6: /proc/<pid>/cmdline is readable by every local user; a cookie signed with the secret
    found there got in. The secret now reaches Panel through its environment only, and is used."""
    cmdline = Path(f"/proc/{dash['proc'].pid}/cmdline").read_bytes()
    assert b"panel" in cmdline or b"dashboard_server" in cmdline, cmdline  # the real server process
    assert dash["secret"].encode() not in cmdline
    assert b"cookie-secret" not in cmdline
    # the secret is in force: a cookie signed with it is a login, one signed with another is not
    good = create_signed_value(dash["secret"], "user", "operator").decode()
    assert request(dash, "GET", "/app", cookie=f"user={good}").status == 200
    bad = create_signed_value("x" * 40, "user", "operator").decode()
    refused = request(dash, "GET", "/app", cookie=f"user={bad}")
    assert refused.status == 302 and "login" in refused.getheader("Location")


def test_the_cookie_secret_file_and_no_secret_in_any_argument(tmp_path):
    """The secret from PVP_DASHBOARD_COOKIE_SECRET_FILE goes to Panel's environment; a short one is
    refused with the file named; no argument of the command carries a secret."""
    from pv_platform.dashboard_server import panel_command, panel_env
    from pv_platform.settings import Settings

    users = tmp_path / "users.json"
    users.write_text(json.dumps({"operator": PASSWORD}))
    secret_file = tmp_path / "cookie-secret"
    secret_file.write_text("f" * 40 + "\n")
    settings = Settings(dashboard_users_file=users, dashboard_cookie_secret_file=secret_file)
    cmd = panel_command(settings, "127.0.0.1", 5006)
    env = panel_env(settings, {"PATH": "/usr/bin"})
    assert env["PANEL_COOKIE_SECRET"] == "f" * 40 and not any("f" * 40 in a for a in cmd)
    assert "--cookie-secret" not in cmd and "--basic-auth" in cmd
    secret_file.write_text("short")
    with pytest.raises(ValueError, match="PVP_DASHBOARD_COOKIE_SECRET_FILE .*cookie-secret"):
        panel_env(settings, {})


def test_login_brute_force_is_throttled_logged_and_the_real_user_still_gets_in(dash):
    """Item 7: ~750 guesses/s were free. From one address (127.0.0.2), a burst of wrong passwords:
    after a few, attempts are refused (429) without checking; each failure is logged with user and
    address, never the password; the real user from their own address (127.0.0.1) still signs in."""
    guesses = [f"guess-{i:03d}-pw" for i in range(30)]
    t0 = time.monotonic()
    statuses = [
        request(dash, "POST", "/login", {"username": "operator", "password": g}, source="127.0.0.2").status
        for g in guesses
    ]  # fmt: skip
    elapsed = time.monotonic() - t0
    checked = [s for s in statuses if s == 302]  # Panel's "wrong password" redirect
    assert statuses[:5] == [302] * 5, statuses
    assert len(checked) <= 8 and statuses.count(429) >= 22, (statuses, elapsed)
    # the right password from the attacking address is not even checked while it waits
    held = request(
        dash, "POST", "/login", {"username": "operator", "password": PASSWORD}, source="127.0.0.2"
    )
    assert (
        held.status == 429
        and "Too many failed logins" in held.text
        and held.getheader("Retry-After")
    )
    # the real user, elsewhere: signed in
    ok = request(dash, "POST", "/login", {"username": "operator", "password": PASSWORD})
    assert ok.status == 302 and "user=" in (ok.getheader("Set-Cookie") or "")
    assert "login" not in ok.getheader("Location")
    log = dash["log"].read_text(errors="replace")
    assert "dashboard login failed: user 'operator' from 127.0.0.2" in log
    assert "dashboard login refused (too many failures): user 'operator' from 127.0.0.2" in log
    for secret in (PASSWORD, *guesses):
        assert secret not in log


def test_login_throttle_policy():
    """The policy alone, on a fake clock: per address, per user, back-off doubling, the real user's
    own address untouched, a success elsewhere never clearing an attacker's address."""
    t = LoginThrottle(free_per_address=10, free_per_user=5, base_delay_s=1.0, max_delay_s=8.0)
    for i in range(5):
        assert t.wait_s("alice", "10.0.0.9", i) == 0
        t.record("alice", "10.0.0.9", False, i)
    assert t.wait_s("alice", "10.0.0.9", 4.0) == pytest.approx(1.0)  # the user's 5 free tries used
    assert t.wait_s("alice", "127.0.0.1", 4.0) == 0  # the real user's address: not held up
    assert t.wait_s("bob", "10.0.0.9", 4.0) == 0  # another name from there: 5 more until 10
    for i in range(5):
        t.record(f"user{i}", "10.0.0.9", False, 5.0)
    assert t.wait_s("carol", "10.0.0.9", 5.0) == pytest.approx(1.0)  # the address's 10 used
    for _ in range(10):
        t.record("x", "10.0.0.9", False, 6.0)
    assert t.wait_s("carol", "10.0.0.9", 6.0) == pytest.approx(8.0)  # capped back-off
    t.record("mallory", "10.0.0.9", True, 6.0)  # a valid login of another account
    assert t.wait_s("carol", "10.0.0.9", 6.0) == pytest.approx(8.0)
    assert t.wait_s("carol", "10.0.0.9", 14.5) == 0


def test_stored_markup_shows_as_text_and_runs_no_script(dash, browser):
    """Item 8: an alert message and a device id carrying `<img onerror>` are shown as text on the Live
    and Alerts pages; no element is made from them, no script runs."""
    page = signed_in_page(browser, dash, "?page=0")
    page.wait_for_selector(f"text=inverter down {XSS}", timeout=30_000)  # Newest alerts, as text
    page.goto(f"http://127.0.0.1:{dash['port']}/app?page=2")
    page.wait_for_selector(".tabulator-row", timeout=30_000)
    assert page.locator(".tabulator-row", has_text=f"inverter down {XSS}").count() == 1
    assert page.locator(".tabulator-row", has_text=XSS).count() == 2  # message and device id
    page.wait_for_timeout(1000)
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.close()


def test_a_signed_in_acknowledgement_carries_the_login_name(dash, browser):
    """Item 9: signed in, the sign-off name is the login name (the box cannot be edited), and it is
    stored through pvp_reader's only way to change an alert."""
    page = signed_in_page(browser, dash, "?page=2")
    row = page.locator(".tabulator-row", has_text="string low")
    row.wait_for(timeout=30_000)
    who = page.get_by_placeholder("who acts")
    assert who.is_disabled() and who.input_value() == "operator"
    row.locator("input[type='checkbox']").check()
    page.get_by_placeholder("what was done").fill("string checked")
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector("text=1 alert(s) acknowledged by operator", timeout=15_000)
    rows = AlertStore(dash["db"].engine).list().set_index("fingerprint")
    ack = rows.loc["xss:testsite:inv2"]
    assert (ack["state"], ack["acknowledged_by"], ack["ack_comment"]) == (
        "acknowledged",
        "operator",
        "string checked",
    )
    page.close()


@pytest.mark.parametrize(
    ("days", "note"),
    [
        ("100000000", "limited to 3,660 days"),
        ("0", "shows at least 1 day"),
        ("9" * 5000, "limited to 3,660 days"),
        ("7x", "not a whole number of days"),
    ],
)
def test_an_absurd_days_link_is_clamped_with_a_message(dash, browser, days, note):
    """Low item: `?days=100000000` (or 0, or 5000 digits) blanked the session with a traceback."""
    page = signed_in_page(browser, dash, "")
    page.goto(f"http://127.0.0.1:{dash['port']}/app?page=1&days={days}")
    page.wait_for_selector(f"text={note}", timeout=30_000)
    assert page.locator("text=Site total").count() >= 1 or page.locator("text=Dates").count() >= 1
    assert page.locator("text=Traceback").count() == 0
    page.close()
