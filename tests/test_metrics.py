"""Operational metrics scraped over HTTP as Prometheus does, while `pvp simulate` serves the devices and
`pvp collect` collects them (real processes, the real broker, a real PostgreSQL): the collector's
/metrics on its health port and `pvp metrics` on the ingest/KPI side, with values that move as the
simulator runs, an inverter that does not answer, a malformed message and segments being ingested."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest
import sqlalchemy as sa
import yaml

from pv_platform.bus import parse_mqtt_url
from pv_platform.landing import archive, list_closed, read_segment, segment_path
from pv_platform.metrics import Metric, render
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import free_port, port_is_open
from tests.conftest import demo_plant_dict, scalar, wait_for
from tests.test_hostile_roles import PASSWORDS, role_url

PVP = str(Path(sys.executable).parent / "pvp")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """The text exposition format, strictly: HELP and TYPE before each family's samples, every other
    line a sample with a float value."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            typed.add(name)
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, labels, value = match.groups()
        assert name in typed, f"{name} has no TYPE line"
        out[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return out


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(answer.read().decode())


def declared(port: int) -> set[str]:
    """Metric families an endpoint declares (TYPE lines), with samples or not."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def value(metrics, name: str, **labels) -> float:
    return metrics[(name, frozenset(labels.items()))]


wait = functools.partial(wait_for, every_s=0.3)


def test_render_escapes_labels_and_writes_special_values():
    text = render([
        Metric("pvp_x", "gauge", "A help\nline.").add(1.5, site='a"b\\c\nd').add(math.nan).add(3),
    ])  # fmt: skip
    assert text == (
        "# HELP pvp_x A help\\nline.\n# TYPE pvp_x gauge\n"
        'pvp_x{site="a\\"b\\\\c\\nd"} 1.5\npvp_x NaN\npvp_x 3\n'
    )


@pytest.fixture
def running(db, mqtt_url, tmp_path):
    """`pvp simulate` serving 2 inverters, a meter and a weather station; `pvp collect` on the same
    plant plus an inverter nobody serves (PVP_HEALTH_PORT set); `pvp metrics` on the database."""
    topic = f"pvp/test/{uuid.uuid4().hex[:8]}/wx1"
    served = demo_plant_dict([free_port(), free_port()], topic=topic)
    site = served["sites"][0]["id"]
    dump_plant(parse_plant(served), tmp_path / "simulated.yaml")
    silent = {"id": "inv9", "kind": "inverter", "integration": "sunspec_modbus", "p_dc_kw": 10,
              "p_ac_kw": 9, "config": {"host": "127.0.0.1", "port": free_port(), "poll_interval_s": 0.5}}  # fmt: skip
    served["sites"][0]["devices"].append(silent)
    dump_plant(parse_plant(served), tmp_path / "collected.yaml")
    health_port, metrics_port = free_port(), free_port()
    db.migrations.ensure_roles(PASSWORDS)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    base.update(PVP_MQTT_URL=mqtt_url, PVP_LANDING_DIR=str(tmp_path / "landing"))
    env = {
        "simulate": dict(base, PVP_PLANT_FILE=str(tmp_path / "simulated.yaml")),
        "collect": dict(base, PVP_PLANT_FILE=str(tmp_path / "collected.yaml"),
                        PVP_HEALTH_PORT=str(health_port), PVP_SEGMENT_MAX_AGE_S="2",
                        PVP_MQTT_ACK_MAX_DELAY_S="4", PVP_MQTT_ACK_BATCH="1000"),
        # as in production: the read-only role
        "metrics": dict(base, PVP_DATABASE_URL=role_url(db.url, "pvp_reader"),
                        PVP_PLANT_FILE=str(tmp_path / "collected.yaml")),
    }  # fmt: skip
    args = {
        "simulate": ["simulate", "--weather-interval", "0.5"],
        "collect": ["collect"],
        "metrics": ["metrics", "--port", str(metrics_port)],
    }
    procs = {}
    try:
        for name in ("simulate", "collect", "metrics"):
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs[name] = subprocess.Popen(
                [PVP, *args[name]], env=env[name], stdout=log, stderr=subprocess.STDOUT
            )
        for port in (health_port, metrics_port):
            wait(lambda p=port: port_is_open("127.0.0.1", p), 30, f"port {port} open")
        yield {"db": db, "site": site, "topic": topic, "mqtt": mqtt_url, "landing": tmp_path / "landing",
               "health": health_port, "metrics": metrics_port, "logs": tmp_path}  # fmt: skip
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_collector_metrics_move_as_the_simulator_runs(running):
    site, port = running["site"], running["health"]
    first = wait(
        lambda: (
            (m := scrape(port))
            and value(m, "pvp_collector_readings_landed_total") > 0
            and value(m, "pvp_collector_polls_total", site=site, device="inv1") > 0
            and m
        ),
        30,
        "readings landed",
    )
    time.sleep(4)
    second = scrape(port)
    for device in ("inv1", "inv2"):  # polled every 0.5 s
        grew = value(second, "pvp_collector_polls_total", site=site, device=device) - value(
            first, "pvp_collector_polls_total", site=site, device=device
        )
        # 8 polls in 4 s when the machine is idle; at least a few on a loaded 2-core machine, never more
        assert 2 <= grew <= 12, (device, grew)
        failures = [  # (the collector may have started before the simulator listened)
            value(m, "pvp_collector_failures_total", site=site, device=device)
            for m in (first, second)
        ]
        assert failures[1] == failures[0], (device, failures)
        assert value(second, "pvp_collector_device_available", site=site, device=device) == 1
    # the inverter nobody serves: every poll fails, with backoff
    assert (
        value(second, "pvp_collector_failures_total", site=site, device="inv9")
        > value(first, "pvp_collector_failures_total", site=site, device="inv9")
        or value(second, "pvp_collector_failures_total", site=site, device="inv9") >= 3
    )
    assert value(second, "pvp_collector_device_available", site=site, device="inv9") == 0
    for name in ("pvp_collector_readings_landed_total", "pvp_collector_segments_closed_total"):
        assert value(second, name) > value(first, name), name
    assert (
        value(second, "pvp_landing_segments_waiting")
        >= value(first, "pvp_landing_segments_waiting")
        > 0
    )
    assert value(second, "pvp_landing_oldest_segment_age_seconds") > 0
    assert value(second, "pvp_collector_landing_writable") == 1
    # landed = handed over - held - dropped, and what landed is in the closed segments
    assert value(second, "pvp_collector_readings_landed_total") <= value(
        second, "pvp_collector_readings_total"
    )
    # MQTT acknowledgements wait for a segment to close (here up to 4 s): seen waiting, with an age
    waiting = wait(
        lambda: (
            (m := scrape(port))
            and value(m, "pvp_collector_mqtt_unacked", site=site, device="wx1") > 0
            and value(m, "pvp_collector_mqtt_oldest_unacked_seconds", site=site, device="wx1") > 0.2
            and m
        ),
        20,
        "an unacknowledged weather message",
    )
    assert value(waiting, "pvp_collector_mqtt_oldest_unacked_seconds", site=site, device="wx1") < 10
    # one malformed message: counted once, for the device whose topic it came on
    before = value(scrape(port), "pvp_collector_quarantined_total", site=site, device="wx1")
    broker = parse_mqtt_url(running["mqtt"])
    mqtt_publish.single(
        running["topic"], b"{not json", hostname=broker.host, port=broker.port, qos=1
    )
    wait(
        lambda: (
            value(scrape(port), "pvp_collector_quarantined_total", site=site, device="wx1")
            == before + 1
        ),
        10,
        "the malformed message counted",
    )
    # /health still answers JSON on the same port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        assert answer.headers["Content-Type"] == "application/json"


def test_ingest_metrics_follow_the_landing_and_the_kpi_queue(running):
    db, landing, port = running["db"], running["landing"], running["metrics"]
    before = wait(
        lambda: (m := scrape(port)) and value(m, "pvp_landing_segments_waiting") >= 2 and m,
        30,
        "segments waiting",
    )
    assert value(before, "pvp_database_up") == 1
    assert value(before, "pvp_ingest_rows_total") == 0
    assert value(before, "pvp_ingest_lag_seconds") > 0
    assert math.isnan(value(before, "pvp_ingest_last_load_age_seconds"))
    # what Dagster's ingest job does: load each closed segment, archive it
    for sid in list_closed(landing):
        db.telemetry.ingest_segment(read_segment(segment_path(landing, sid)))
        archive(landing, sid)
    inserted = scalar(db, "SELECT sum(inserted) FROM ingest_ledger")
    hours = scalar(db, "SELECT count(*) FROM telemetry_changes WHERE reported_at IS NULL")
    assert inserted > 100 and hours >= 1
    time.sleep(5.5)  # the endpoint reuses a scrape for 5 s
    after = scrape(port)
    assert value(after, "pvp_ingest_rows_total") == inserted
    assert value(after, "pvp_ingest_rows_per_second") == pytest.approx(inserted / 300.0)
    assert value(after, "pvp_ingest_segments_total") == scalar(
        db, "SELECT count(*) FROM ingest_ledger"
    )
    assert 5 <= value(after, "pvp_ingest_last_load_age_seconds") < 30
    assert value(after, "pvp_ingest_lag_seconds") < value(before, "pvp_ingest_lag_seconds") + 5.5
    assert value(after, "pvp_kpi_hours_unreported") == hours
    assert value(after, "pvp_kpi_hours_waiting") >= hours  # no KPIs computed yet
    newest = scalar(db, "SELECT max(ts) FROM samples")
    age_s = value(after, "pvp_ingest_newest_sample_age_seconds")
    assert age_s == pytest.approx((datetime.now(UTC) - newest).total_seconds(), abs=8)
    # reported to Dagster, then a failed check of this hour
    db.telemetry.mark_reported(db.telemetry.unreported_hours())
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with db.engine.begin() as conn:  # as an hourly KPI run writes a failed check of this hour
        conn.execute(
            sa.text(
                "INSERT INTO kpi_quality (period_start, site_id, check_name, passed, severity, detail)"
                " VALUES (:h, :site, 'frozen_values', false, 'ERROR', 'wx1 poa frozen')"
            ),
            {"h": hour, "site": running["site"]},
        )
    time.sleep(5.5)
    later = scrape(port)
    assert value(later, "pvp_kpi_hours_unreported") == 0
    assert value(later, "pvp_quality_checks_failed", check="frozen_values", severity="ERROR") == 1
    assert value(later, "pvp_alerts_active", severity="CRITICAL") == 0


def test_grafana_and_prometheus_configs_ask_for_what_the_endpoints_expose(running):
    """Every metric the shipped Grafana dashboard queries is exposed by one of the two endpoints, and
    the shipped Prometheus config scrapes the ports the compose file gives them."""
    repo = Path(__file__).resolve().parent.parent
    landed = wait(
        lambda: (
            (m := scrape(running["health"]))
            and value(m, "pvp_collector_readings_landed_total") > 0
            and m
        ),
        30,
        "readings landed",
    )
    assert landed
    exposed = declared(running["health"]) | declared(
        running["metrics"]
    )  # samples or not (no failed
    # check yet: the family is declared with no sample, as Prometheus expects)
    dashboard = json.loads(
        (repo / "deploy" / "grafana" / "dashboards" / "pv-platform.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bpvp_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 18 and queried <= exposed, sorted(queried - exposed)
    for needed in ("pvp_collector_polls_total", "pvp_ingest_lag_seconds", "pvp_kpi_hours_waiting",
                   "pvp_quality_checks_failed", "pvp_collector_mqtt_oldest_unacked_seconds"):  # fmt: skip
        assert needed in queried, needed
    prometheus = yaml.safe_load((repo / "deploy" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }
    services = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    health_port = services["collector"]["environment"]["PVP_HEALTH_PORT"]
    metrics_cmd = services["metrics"]["command"]
    assert targets == {
        "pvp-collector": [f"collector:{health_port}"],
        "pvp-ingest": [f"metrics:{metrics_cmd[metrics_cmd.index('--port') + 1]}"],
    }
