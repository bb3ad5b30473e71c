"""Home Assistant MQTT discovery on a real broker, and the InfluxDB sink against a stand-in HTTP server.

No InfluxDB 2 server can be installed here, so the InfluxDB test runs the real influxdb-client against a
small HTTP server in this process that records what the client sends to /api/v2/write (a stand-in for
the server, not a mock of our code): the assertions are on the line protocol the client was given."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import aiomqtt
import jinja2

from pv_platform.bus import live_payload, parse_mqtt_url
from pv_platform.collector import Collector
from pv_platform.influx import InfluxSink
from pv_platform.plant import parse_plant
from pv_platform.readings import Reading
from pv_platform.services import free_port
from pv_platform.settings import Settings
from tests.conftest import demo_plant_dict


def test_home_assistant_discovery_configs_are_retained_and_read_the_live_bus(mqtt_url, tmp_path):
    plant = parse_plant(
        demo_plant_dict([free_port(), free_port()], topic=f"pvp/ha/{tmp_path.name}/wx1")
    )
    prefix, discovery = f"pvp/ha/{tmp_path.name}/live", f"ha_{tmp_path.name}"
    settings = Settings(
        mqtt_url=mqtt_url,
        live_topic_prefix=prefix,
        ha_discovery=True,
        ha_discovery_prefix=discovery,
    )
    broker = parse_mqtt_url(mqtt_url)
    collector = Collector(plant, settings, tmp_path / "landing", broker)
    expected = sum(len(c.descriptions) for c in collector.coordinators)

    async def run() -> dict[str, dict]:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(2.0)  # the devices are unreachable: the configs go out all the same
        stop.set()
        await task
        configs = {}
        async with aiomqtt.Client(
            **broker.client_kwargs()
        ) as client:  # a late subscriber: retained
            await client.subscribe(f"{discovery}/#")
            try:
                async with asyncio.timeout(3):
                    async for message in client.messages:
                        configs[str(message.topic)] = json.loads(message.payload)
                        if len(configs) == expected:
                            break
            except TimeoutError:
                pass
            for topic in configs:  # leave the broker clean
                await client.publish(topic, b"", retain=True)
        return configs

    configs = asyncio.run(run())
    assert len(configs) == expected and expected >= 15
    power = configs[f"{discovery}/sensor/pvp_testsite_inv1/ac_power/config"]
    assert power["state_topic"] == f"{prefix}/testsite/inv1"
    assert (power["unit_of_measurement"], power["device_class"], power["state_class"]) == (
        "W",
        "power",
        "measurement",
    )
    energy = configs[f"{discovery}/sensor/pvp_testsite_inv1/ac_energy/config"]
    assert energy["state_class"] == "total_increasing" and energy["device_class"] == "energy"
    assert len({c["unique_id"] for c in configs.values()}) == expected
    # the template Home Assistant applies to a live-bus message yields the value
    payload = json.loads(live_payload(datetime.now(UTC), {"ac_power": 1234.5, "ac_energy": 9.0}))
    rendered = jinja2.Template(power["value_template"]).render(
        value_json=payload, this={"state": "x"}
    )
    assert rendered == "1234.5"
    poa = next(
        c for t, c in configs.items() if t.endswith("/pvp_testsite_wx1/poa_irradiance/config")
    )
    assert poa["unit_of_measurement"] == "W/m²" and poa["device_class"] == "irradiance"


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[tuple[dict, str]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        _Recorder.bodies.append((parse_qs(urlparse(self.path).query), raw.decode()))
        assert self.headers["Authorization"] == "Token t0ken"
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_influx_sink_hands_the_client_every_reading_as_line_protocol():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    t0 = datetime(2026, 6, 21, 12, tzinfo=UTC)
    readings = [
        Reading(
            entity=f"testsite.inv{i % 3 + 1}.ac_power",
            ts=t0 + timedelta(seconds=i),
            value=1000.0 + i,
        )
        for i in range(1200)
    ]
    sink = InfluxSink(
        f"http://127.0.0.1:{server.server_port}", "t0ken", "acme", "pv", batch_size=500
    )
    for start in range(0, len(readings), 100):  # as the collector hands over its batches
        sink(readings[start : start + 100])
    sink.close()
    server.shutdown()
    assert "t0ken" not in repr(sink)
    lines = [line for _, body in _Recorder.bodies for line in body.splitlines()]
    assert len(lines) == 1200 and len(_Recorder.bodies) >= 3  # batched, not a request per reading
    query = _Recorder.bodies[0][0]
    assert query["org"] == ["acme"] and query["bucket"] == ["pv"] and query["precision"] == ["us"]
    first = int(t0.timestamp() * 1_000_000)
    assert f"pv,device=inv1,metric=ac_power,site=testsite value=1000 {first}" in lines
    assert (
        f"pv,device=inv3,metric=ac_power,site=testsite value=2199 {first + 1199 * 1_000_000}"
        in lines
    )
