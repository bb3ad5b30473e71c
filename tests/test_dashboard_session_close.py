"""A browser leaving the Live page must not leave tracebacks in the Panel server's log: the session's
periodic callbacks (the Live page every 250 ms) kept pushing to a websocket that was closing or closed,
and tornado logged `WebSocketClosedError` / `StreamClosedError` tracebacks until the session was
destroyed. Debian's headless Chromium against `pvp dashboard` (its own process, as the demo runs it)."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pv_platform.bus import live_payload, live_topic
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import drop_database, ensure_database, free_port
from pv_platform.storage import Database
from tests.conftest import CHROMIUM, demo_plant_dict
from tests.test_dashboard_browser import REPO, publish, serve, stop_server

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def _publish_live(mqtt_url: str, topic: str, stop: threading.Event) -> None:
    watts = 1000.0
    while not stop.wait(0.5):
        watts += 10.0
        publish(mqtt_url, topic, live_payload(datetime.now(UTC), {"ac_power": watts}))


def test_closing_the_live_page_leaves_no_traceback_in_the_server_log(
    pg_admin_url, mqtt_url, browser, tmp_path
):
    name = f"pvp_sessclose_{os.getpid()}"
    url = ensure_database(pg_admin_url, name)
    db = Database(url)
    db.migrations.migrate()
    dump_plant(parse_plant(demo_plant_dict([15034, 15035])), tmp_path / "plant.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(PVP_DATABASE_URL=url, PVP_PLANT_FILE=str(tmp_path / "plant.yaml"),
               PVP_MQTT_URL=mqtt_url, PVP_LIVE_TOPIC_PREFIX=f"pvp/sessclose/{os.getpid()}")  # fmt: skip
    port = free_port(5370)
    log_path = REPO / "tests" / "artifacts" / f"panel-{port}.log"
    proc = serve(env, port)
    stop = (
        threading.Event()
    )  # as the demo's simulator does: live values every half second, throughout
    topic = live_topic(env["PVP_LIVE_TOPIC_PREFIX"], "testsite", "inv1")
    publisher = threading.Thread(target=_publish_live, args=(mqtt_url, topic, stop), daemon=True)
    publisher.start()
    try:
        for _ in range(3):  # three visits: open Live, see it update, leave
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            # a session's first build imports every page: over 30 s on a loaded 2-core machine
            page.goto(f"http://127.0.0.1:{port}/app?page=0", timeout=180_000)
            page.wait_for_selector("text=Live bus", timeout=120_000)
            status = page.get_by_text(re.compile(r"updated \d\d:\d\d:\d\d UTC")).first
            first = status.inner_text()
            deadline = time.monotonic() + 30
            while status.inner_text() == first:  # the periodic callback pushes a newer time
                assert time.monotonic() < deadline, first
                page.wait_for_timeout(200)
            page.close()  # the browser leaves: its websocket closes
        # Panel destroys an unused session 15 s after its websocket closed, checked every 17 s
        time.sleep(40)
        log = log_path.read_text()
        assert "Traceback" not in log and "WebSocketClosedError" not in log, log[-4000:]
        assert "StreamClosedError" not in log, log[-4000:]
    finally:
        stop.set()
        publisher.join(5)
        stop_server(proc)
        db.dispose()
        drop_database(pg_admin_url, name)
