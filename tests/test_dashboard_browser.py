"""The served dashboard in Debian's headless Chromium (playwright driving /usr/bin/chromium; no browser is
ever downloaded) against a real PostgreSQL seeded with simulated history and a real MQTT broker: each page
shows its key numbers, a live-bus message appears within a second, acknowledging an alert in the page
changes it in the database, and the login keeps out whoever has no credentials. Screenshots of every page
go to tests/artifacts/screenshots/."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.publish as mqtt_publish
import pytest

from pv_platform.bus import device_info_payload, device_info_topic, live_payload, parse_mqtt_url
from pv_platform.coordinator import DeviceInfo
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port, port_is_open
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.dashboard_seed import seed

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "tests" / "artifacts" / "screenshots"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="`make test` installs Debian's chromium first"
)


def serve(env: dict, port: int, extra: list[str] | None = None) -> subprocess.Popen:
    log = open(REPO / "tests" / "artifacts" / f"panel-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pvp"), "dashboard", "--port", str(port), *(extra or [])],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not port_is_open("127.0.0.1", port):
        assert proc.poll() is None and time.monotonic() < deadline, (
            REPO / "tests" / "artifacts" / f"panel-{port}.log"
        ).read_text()
        time.sleep(0.2)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a `serve`d dashboard: SIGTERM, SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def site(pg_admin_url, mqtt_url, tmp_path_factory):
    """A seeded database, a plant file and the dashboard served on them (open, as in the demo)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("dash")
    name = f"pvp_dash_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    dump_plant(plant, tmp / "plant.yaml")
    start, end = seed(db, plant, tmp / "landing")
    prefix = f"pvp/dashtest/{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp / "plant.yaml"), PVP_MQTT_URL=mqtt_url,
        PVP_LIVE_TOPIC_PREFIX=prefix,
    )  # fmt: skip
    port = free_port(5310)
    proc = serve(env, port)
    yield {"db": db, "url": f"http://127.0.0.1:{port}/app", "prefix": prefix, "mqtt": mqtt_url,
           "env": env, "tmp": tmp, "start": start, "end": end}  # fmt: skip
    proc.terminate()
    proc.wait(10)
    db.dispose()
    drop_database(pg_admin_url, name)


def open_page(browser, url: str, hosts: set | None = None):
    """A page at `url`; `hosts` collects the host name of every request the page makes."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    if hosts is not None:
        page.on(
            "request",
            lambda r: hosts.add(urlsplit(r.url).hostname) if r.url.startswith("http") else None,
        )  # data: and blob: URLs load nothing
    page.goto(url)
    page.wait_for_selector("text=PV Platform", timeout=30_000)
    return page


def text_of(page, selector: str, timeout_ms: int = 20_000) -> str:
    page.wait_for_selector(selector, timeout=timeout_ms)
    return page.locator(selector).first.inner_text()


def publish(mqtt_url: str, topic: str, payload: bytes, retain: bool = False) -> None:
    broker = parse_mqtt_url(mqtt_url)
    mqtt_publish.single(
        topic, payload, hostname=broker.host, port=broker.port, qos=0, retain=retain
    )


def test_each_page_shows_its_key_numbers(site, browser):
    db = site["db"]
    hours = db.kpis.read(
        "kpi_hourly", site["start"], site["end"], site_id="testsite", device_id="*"
    )
    energy_kwh = hours["energy_ac_kwh"].sum()
    assert energy_kwh > 100  # three days of a 300-kWp plant

    hosts: set = set()
    page = open_page(
        browser, f"{site['url']}?page=1", hosts
    )  # History: the last 7 local days by day
    page.wait_for_selector("text=daily rows", timeout=30_000)
    assert text_of(page, "[data-kpi='hist-energy']") == f"{energy_kwh:,.1f} kWh"
    pr = db.kpis.read(
        "kpi_daily", site["start"].replace(hour=0), site["end"], site_id="testsite", device_id="*"
    )
    assert text_of(page, "[data-kpi='hist-pr']").endswith("%")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "history.png"))
    assert len(pr) >= 3

    page.goto(f"{site['url']}?page=2")  # Alerts
    page.wait_for_selector("text=inv2 in FAULT: GROUND_FAULT", timeout=30_000)
    assert (
        page.locator(".tabulator-row:visible", has_text="no reading from meter1 for 75 s").count()
        >= 1
    )
    page.screenshot(path=str(SHOTS / "alerts.png"))

    page.goto(f"{site['url']}?page=3")  # Devices: five devices, each with its newest reading
    page.wait_for_selector("text=devices online", timeout=30_000)
    cells = page.locator(".tabulator-cell[tabulator-field='device']").all_inner_texts()
    assert sorted(cells) == ["inv1", "inv2", "inv3", "meter1", "wx1"]
    last = page.locator(".tabulator-cell[tabulator-field='last reading (UTC)']").all_inner_texts()
    newest = site["end"].replace(minute=0) - timedelta(
        minutes=1
    )  # the seeded history's last minute
    assert set(last) == {f"{newest:%Y-%m-%d %H:%M:%S}"}
    page.screenshot(path=str(SHOTS / "devices.png"))
    page.close()
    assert hosts == {"127.0.0.1"}  # nothing from the internet (a plant's network often has none)


def test_the_devices_page_shows_what_each_device_says_it_is(site, browser):
    """The collector publishes each device's identity retained beside its live values (SunSpec
    Mn/Md/SN/Vr; tests/test_device_info.py proves it does); the Devices page shows it, and a device
    that never told (the MQTT weather station) shows dashes."""
    told = {
        "inv1": DeviceInfo(manufacturer="Fronius", model="Symo 10.0-3-M", serial_number="28361044",
                           sw_version="3.14.1-10"),
        "inv2": DeviceInfo(manufacturer="SMA", model="STP 110-60", serial_number="3012345678"),
    }  # fmt: skip
    topics = [device_info_topic(site["prefix"], "testsite", d) for d in told]
    for info, topic in zip(told.values(), topics, strict=True):
        publish(site["mqtt"], topic, device_info_payload(info.as_dict()), retain=True)
    try:
        page = open_page(browser, f"{site['url']}?page=3")
        page.wait_for_selector("text=Fronius Symo 10.0-3-M", timeout=30_000)
        column = {
            field: page.locator(f".tabulator-cell[tabulator-field='{field}']").all_inner_texts()
            for field in ("device", "make / model", "serial", "firmware")
        }
        rows = {d: (m, s, f) for d, m, s, f in zip(*column.values(), strict=True)}
        assert rows["inv1"] == ("Fronius Symo 10.0-3-M", "28361044", "3.14.1-10")
        assert rows["inv2"] == ("SMA STP 110-60", "3012345678", "—")
        assert rows["wx1"] == ("—", "—", "—") and rows["inv3"] == ("—", "—", "—")
        page.screenshot(path=str(SHOTS / "devices-identity.png"))
        page.close()
    finally:
        for topic in topics:  # an empty retained message deletes the retained one
            publish(site["mqtt"], topic, b"", retain=True)


def test_a_live_bus_message_shows_up_within_a_second(site, browser):
    page = open_page(browser, f"{site['url']}?page=0")
    page.wait_for_selector("text=Live bus connected", timeout=30_000)
    now = datetime.now(UTC)
    publish(
        site["mqtt"], f"{site['prefix']}/testsite/wx1", live_payload(now, {"poa_irradiance": 800.0})
    )
    latencies = []
    for i, kw in enumerate((61.5, 72.5, 83.5, 64.5, 75.5)):
        for inv in ("inv1", "inv2", "inv3"):
            values = {
                "ac_power": kw * 1000.0 if inv == "inv1" else 50_000.0,
                "operating_state": 4.0,
            }
            t0 = time.perf_counter()
            publish(site["mqtt"], f"{site['prefix']}/testsite/{inv}", live_payload(now, values))
        expected = f"{kw + 100.0:,.1f} kW"  # inv1 + 2 x 50 kW
        page.wait_for_selector(f"[data-kpi='live-power']:text-is('{expected}')", timeout=5_000)
        latencies.append(time.perf_counter() - t0)
        if i == 4:
            page.screenshot(path=str(SHOTS / "live.png"))
    # three inverters of 110 kWp at 800 W/m²: PR = P / (330 kW x 0.8)
    assert text_of(page, "[data-kpi='live-pr']") == f"{(75.5 + 100.0) / (330 * 0.8):.1%}"
    assert text_of(page, "[data-kpi='live-poa']") == "800 W/m²"
    assert page.locator(".pvp-tile[data-device='inv1'] >> text=75.5 kW").count() == 1
    median = statistics.median(latencies)
    print(f"live bus -> browser: median {median * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    assert median < 1.0, latencies
    page.close()


def test_acknowledging_an_alert_in_the_page_changes_the_database(site, browser):
    store = AlertStore(site["db"].engine)
    target = store.list().set_index("rule").loc["string_fault"]
    page = open_page(browser, f"{site['url']}?page=2")
    row = page.locator(
        ".tabulator-row", has_text="inv1 mppt2: 1.2 A"
    ).last  # the alerts table (the incidents table above lists it too)
    row.wait_for(timeout=30_000)
    row.locator("input[type='checkbox']").check()
    page.get_by_placeholder("who acts").fill("alice")
    page.get_by_placeholder("what was done").fill("string fuse replaced")
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector("text=1 alert(s) acknowledged by alice", timeout=15_000)
    after = store.list().set_index("id").loc[int(target["id"])]
    assert (after["state"], after["acknowledged_by"], after["ack_comment"]) == (
        "acknowledged", "alice", "string fuse replaced",
    )  # fmt: skip
    page.close()


def test_login_keeps_out_whoever_has_no_credentials(site, browser):
    users = site["tmp"] / "users.json"
    users.write_text(json.dumps({"operator": "s3cret-pass"}))
    port = free_port(5330)
    env = {
        **site["env"],
        "PVP_DASHBOARD_USERS_FILE": str(users),
        "PVP_DASHBOARD_COOKIE_SECRET": "x" * 32,
    }
    proc = serve(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # no credentials: the app is not served, the login form is
        with urllib.request.urlopen(f"{base}/app", timeout=30) as r:
            body = r.read().decode()
        assert "login" in r.url and "PV Platform" not in body
        page = browser.new_page()
        page.goto(f"{base}/app")
        page.fill("input[name='username']", "operator")
        page.fill("input[name='password']", "wrong")
        page.click("button[type='submit'], input[type='submit']")
        page.wait_for_timeout(1500)
        assert page.locator("text=PV Platform").count() == 0
        page.goto(f"{base}/app")
        page.fill("input[name='username']", "operator")
        page.fill("input[name='password']", "s3cret-pass")
        page.click("button[type='submit'], input[type='submit']")
        page.wait_for_selector("text=Signed in as", timeout=30_000)
        page.screenshot(path=str(SHOTS / "login-signed-in.png"))
        page.close()
    finally:
        proc.terminate()
        proc.wait(10)
