"""The real Panel server: `panel serve dashboards/app.py` answers 200 with its title and shows live data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from pv_platform.services import free_port, port_is_open

REPO = Path(__file__).resolve().parent.parent


def test_panel_app_answers_with_its_title(db, pg_url, mqtt_url, tmp_path):
    port = free_port()
    env = dict(
        os.environ, PVP_DATABASE_URL=pg_url, PVP_MQTT_URL=mqtt_url, PVP_DATA_DIR=str(tmp_path)
    )
    panel = Path(sys.executable).parent / "panel"
    proc = subprocess.Popen(
        [str(panel), "serve", str(REPO / "dashboards" / "app.py"), "--address", "127.0.0.1", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_is_open("127.0.0.1", port):
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "panel serve did not listen within 60 s"
            time.sleep(0.3)
        with urlopen(f"http://127.0.0.1:{port}/app", timeout=60) as response:
            body = response.read().decode()
            assert response.status == 200
        assert "<title>PV Platform</title>" in body
    finally:
        proc.terminate()
        proc.wait(10)


def test_live_bus_subscriber_receives_what_the_collector_publishes(mqtt_url):
    import asyncio
    import uuid
    from datetime import UTC, datetime

    import aiomqtt

    from dashboards.live import LiveBus
    from pv_platform.bus import live_payload, live_topic, parse_mqtt_url

    prefix = f"pvp-test-{uuid.uuid4().hex[:8]}/live"
    bus = LiveBus(mqtt_url, prefix)
    deadline = time.monotonic() + 10
    while not bus.state.connected:
        assert time.monotonic() < deadline, "live bus never connected"
        time.sleep(0.05)

    async def publish() -> None:
        async with aiomqtt.Client(**parse_mqtt_url(mqtt_url).client_kwargs()) as client:
            await client.publish(
                live_topic(prefix, "s1", "inv1"),
                live_payload(datetime.now(UTC), {"ac_power": 51234.0}),
            )
            await client.publish(
                live_topic(prefix, "s1", "inv2"), b"{garbage"
            )  # ignored, never crashes

    asyncio.run(publish())
    deadline = time.monotonic() + 5
    while ("s1", "inv1") not in bus.state.snapshot()[0]:
        assert time.monotonic() < deadline, "live value did not arrive within 5 s"
        time.sleep(0.05)
    devices, history, messages = bus.state.snapshot()
    assert devices[("s1", "inv1")]["values"] == {"ac_power": 51234.0}
    assert history[-1][1] == 51234.0 and messages == 1
