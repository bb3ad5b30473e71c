"""Dashboard speed, measured in Debian's headless Chromium against the served app.

Prints, measured in the same run:
  - live latency: time from an MQTT publish on the live bus to the value shown in the browser (p50/p95),
    beside the broker round trip alone (publish -> a subscriber in this process receives it);
  - History load: the fleet view of a year of daily KPIs for ten sites, from the deep link to the page's
    numbers, beside the time of the KPI query itself.
Targets: live p95 < 1 s; History load well under a second over its query.

Usage: python -m bench.dashboard [--sites 10] [--days 365] [--messages 40] [--database-url URL]
(embedded PostgreSQL and the machine's MQTT broker on 1883, or an in-process amqtt broker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd

from bench.report import emit
from pv_platform.bus import live_payload, parse_mqtt_url
from pv_platform.kpi.periods import derive_ratios
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.services import (
    ThreadedBroker,
    ensure_database,
    free_port,
    port_is_open,
    start_embedded_postgres,
)
from pv_platform.storage import Database

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def fleet_plant(sites: int) -> dict:
    return {
        "sites": [
            {
                "id": f"site{i:02d}",
                "name": f"Site {i}",
                "latitude": 45 + i * 0.3,
                "longitude": 8 + i * 0.2,
                "timezone": "Europe/Zurich",
                "devices": [
                    *(
                        {
                            "id": f"inv{j}",
                            "kind": "inverter",
                            "integration": "simulator",
                            "p_dc_kw": 110.0,
                            "p_ac_kw": 100.0,
                        }
                        for j in (1, 2, 3)
                    ),
                    {"id": "wx1", "kind": "weather_station", "integration": "simulator"},
                ],
            }  # fmt: skip
            for i in range(1, sites + 1)
        ]
    }


def daily_rows(plant, days: int) -> pd.DataFrame:
    """A year of plausible daily site rows per site (insolation with seasons and weather, PR ~0.82)."""
    rng = np.random.default_rng(1)
    end = pd.Timestamp(datetime.now(UTC).date(), tz="Europe/Zurich").tz_convert(UTC)
    starts = end - pd.to_timedelta(np.arange(days, 0, -1), unit="D")
    frames = []
    for site in plant.sites:
        doy = np.asarray(starts.day_of_year)
        h = np.clip(
            (4.5 + 2.5 * np.cos((doy - 172) / 365 * 2 * np.pi)) * rng.uniform(0.3, 1.1, days),
            0.1,
            None,
        )
        p_dc = 330.0
        pr = rng.normal(0.82, 0.02, days)
        energy = p_dc * h * pr
        frames.append(pd.DataFrame({
            "site_id": site.id, "device_id": "*", "period_start": starts, "period_h": 24.0,
            "p_dc_kw": p_dc, "p_ac_kw": 300.0, "energy_ac_kwh": energy, "insolation_poa_kwh_m2": h,
            "ref_energy_stc_kwh": p_dc * h, "ref_energy_iec_kwh": p_dc * h * 0.97, "ref_energy_nrel_kwh": p_dc * h * 0.99,
            "t_cell_x_insolation": h * 30.0, "energy_expected_kwh": energy * 1.02, "energy_lost_kwh": 0.0,
            "time_night_s": 12 * 3600.0, "time_no_data_s": 0.0, "time_grid_outage_s": 0.0, "time_planned_s": 0.0,
            "time_operating_s": 12 * 3600.0, "time_forced_outage_s": 0.0, "export_kwh": energy * 0.99,
            "import_kwh": 2.0, "reactive_kvarh": 0.0, "time_freq_out_s": 0.0, "time_volt_out_s": 0.0, "samples": 4000,
        }))  # fmt: skip
    return derive_ratios(pd.concat(frames, ignore_index=True))


class Receiver:
    """A plain subscriber: the broker round trip the browser latency is compared with."""

    def __init__(self, url: str, topic: str) -> None:
        broker = parse_mqtt_url(url)
        self.got: dict[bytes, float] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.got.setdefault(m.payload, time.perf_counter())
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic)
        self.client.loop_start()
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pvp-bench-dash-"))
    if args.database_url:
        url = args.database_url
    else:
        server = start_embedded_postgres(tmp / "pg")
        url = ensure_database(server.get_uri(), "bench")
    broker = None
    if port_is_open("127.0.0.1", 1883):
        mqtt_url = "mqtt://127.0.0.1:1883"
    else:
        broker = ThreadedBroker().start()
        mqtt_url = broker.url
    plant = parse_plant(fleet_plant(args.sites), "<bench>")
    dump_plant(plant, tmp / "plant.yaml")
    db = Database(url)
    db.migrations.migrate()
    db.plant.sync(plant)
    rows = daily_rows(plant, args.days)
    db.kpis.replace(
        "kpi_daily",
        rows["period_start"].min(),
        rows["period_start"].max() + timedelta(days=1),
        rows,
    )
    prefix = f"pvp/bench/{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVP_")}
    env.update(
        PVP_DATABASE_URL=url,
        PVP_PLANT_FILE=str(tmp / "plant.yaml"),
        PVP_MQTT_URL=mqtt_url,
        PVP_LIVE_TOPIC_PREFIX=prefix,
    )
    port = free_port(5350)
    panel = subprocess.Popen(
        [str(Path(sys.executable).parent / "pvp"), "dashboard", "--port", str(port)],
        env=env, cwd=REPO, stdout=open(tmp / "panel.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    while not port_is_open("127.0.0.1", port):
        time.sleep(0.2)
    base = f"http://127.0.0.1:{port}/app"
    print(f"dashboard log: {tmp / 'panel.log'}", flush=True)
    receiver = Receiver(mqtt_url, f"{prefix}/#")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    b = parse_mqtt_url(mqtt_url)
    publisher.connect(b.host, b.port)
    publisher.loop_start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{base}?page=0")
            page.wait_for_selector("text=Live bus connected", timeout=60_000)
            browser_s, broker_s = [], []
            site = plant.sites[0].id
            for i in range(args.messages):
                kw = 10.0 + i + 0.1 * (i % 7)
                payload = live_payload(
                    datetime.now(UTC), {"ac_power": kw * 1000.0, "operating_state": 4.0}
                )
                t0 = time.perf_counter()
                publisher.publish(f"{prefix}/{site}/inv1", payload, qos=0)
                page.wait_for_selector(
                    f"[data-kpi='live-power']:text-is('{kw:,.1f} kW')", timeout=10_000
                )
                browser_s.append(time.perf_counter() - t0)
                deadline = time.perf_counter() + 2
                while payload not in receiver.got and time.perf_counter() < deadline:
                    time.sleep(0.001)
                broker_s.append(receiver.got.get(payload, float("nan")) - t0)
                time.sleep(0.1)
            # History: the fleet view of a year x N sites, by day, from the deep link
            t_query = time.perf_counter()
            start = rows["period_start"].min().to_pydatetime()
            end = (rows["period_start"].max() + timedelta(days=1)).to_pydatetime()
            fleet = db.kpis.read("kpi_daily", start, end, device_id="*")
            query_s = time.perf_counter() - t_query
            loads = []
            for _ in range(3):
                t0 = time.perf_counter()
                page.goto(f"{base}?page=1&site=fleet&days={args.days}&grain=day")
                try:
                    page.wait_for_selector(f"text=rows of {args.sites} sites", timeout=60_000)
                except Exception:
                    page.screenshot(path=str(tmp / "history-timeout.png"))
                    raise
                loads.append(time.perf_counter() - t0)
            note = page.locator("text=rows of").first.inner_text()
            # in an open page: switch from one site to the fleet (what an operator waits for)
            switches = []
            for i in range(3):
                page.goto(f"{base}?page=1&site=site0{i + 1}&days={args.days}&grain=day")
                page.wait_for_selector("text=daily rows · times", timeout=60_000)
                t0 = time.perf_counter()
                page.locator("select").first.select_option(label="All sites (fleet)")
                page.wait_for_selector(f"text=rows of {args.sites} sites", timeout=60_000)
                switches.append(time.perf_counter() - t0)
            browser.close()
    finally:
        panel.terminate()
        publisher.loop_stop()
        receiver.client.loop_stop()
        if broker:
            broker.stop()

    def pct(values, q):
        return float(np.percentile(values, q)) * 1000

    print(
        f"live bus -> browser ({args.messages} messages): p50 {pct(browser_s, 50):.0f} ms, p95 {pct(browser_s, 95):.0f} ms"
    )
    print(f"  broker round trip alone: p50 {pct(broker_s, 50):.1f} ms, p95 {pct(broker_s, 95):.1f} ms"
          f"  -> ratio p50 {statistics.median(browser_s) / max(statistics.median(broker_s), 1e-6):.0f}x"
          f"; target p95 < 1000 ms: {'met' if pct(browser_s, 95) < 1000 else 'NOT met'}")  # fmt: skip
    print(f"History, fleet of {args.sites} sites x {args.days} days by day ({len(fleet):,} rows):"
          f" in an open page {min(switches) * 1000:.0f} ms (all {', '.join(f'{x * 1000:.0f}' for x in switches)} ms),"
          f" cold page open {min(loads) * 1000:.0f} ms,"
          f" query alone {query_s * 1000:.0f} ms; the page says: {note!r}")  # fmt: skip
    p95 = pct(browser_s, 95) / 1000
    emit(
        "dashboard",
        "live bus -> browser p95",
        p95,
        "s",
        "broker round trip p95",
        pct(broker_s, 95) / 1000,
        "< 1 s",
        p95 < 1.0,
    )
    emit(
        "dashboard",
        "History, year x sites (open page)",
        min(switches),
        "s",
        "its KPI query",
        query_s,
        "< 1 s",
        min(switches) < 1.0,
    )
    db.dispose()


if __name__ == "__main__":
    main()
