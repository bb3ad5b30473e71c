"""The Python API over real services: PostgreSQL with back-filled history, a real MQTT broker carrying live
bus messages, and the same alert engine and table as the platform."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest

from integrations.simulator.runner import backfill_landing
from pv_platform import AlertEngine, PerformanceMetrics, RealTimeMonitor
from pv_platform.api import InverterRecord
from pv_platform.bus import live_payload, parse_mqtt_url
from pv_platform.kpi import counter_energy
from pv_platform.landing import list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.settings import Settings
from tests.conftest import demo_plant_dict

DAY = datetime(2026, 6, 21, tzinfo=UTC)


@pytest.fixture
def settings(db, pg_url, mqtt_url, tmp_path):
    plant = parse_plant(demo_plant_dict([15020, 15021, 15022]))
    plant_file = tmp_path / "plant.yaml"
    dump_plant(plant, plant_file)
    return Settings(
        database_url=pg_url,
        mqtt_url=mqtt_url,
        plant_file=plant_file,
        landing_dir=tmp_path / "landing",
        live_topic_prefix=f"pvp/apitest/{tmp_path.name}",
    )


def test_instantaneous_pr_hand_worked(settings):
    metrics = PerformanceMetrics(settings)
    out = metrics.instantaneous_pr(75_000, 800, 45, site="testsite", device="inv1")
    # P_0 = 110 kW: reference 110 kW x 800/1000 = 88 kW; PR = 75 / 88 = 0.8523
    assert out.pr == pytest.approx(75 / 88, abs=1e-9)
    # SAPM cell from module (open rack glass/glass, ΔT = 3 °C): 45 + 800/1000 x 3 = 47.4 °C
    assert out.cell_temperature_c == pytest.approx(47.4, abs=1e-9)
    gamma = metrics.plant.site("testsite").device("inv1").gamma_pdc_per_c
    assert out.pr_temp_iec == pytest.approx(75 / (88 * (1 + gamma * (47.4 - 25))), abs=1e-9)
    assert metrics.instantaneous_pr(0, 0, site="testsite").pr is None  # no sun: undefined, not 0


def test_period_metrics_against_the_raw_samples(settings, db):
    plant = PerformanceMetrics(settings).plant
    backfill_landing(
        plant,
        settings.landing_dir,
        4,
        DAY + timedelta(hours=9, minutes=45),
        DAY + timedelta(hours=13, minutes=15),
        60,
    )
    for sid in list_closed(settings.landing_dir):
        db.telemetry.ingest_segment(read_segment(segment_path(settings.landing_dir, sid)))
    start, end = DAY + timedelta(hours=10), DAY + timedelta(hours=13)
    metrics = PerformanceMetrics(settings)
    samples = db.telemetry.sample_set(
        start - timedelta(minutes=15), end + timedelta(minutes=15), ["ac_energy"]
    ).to_frame()
    energy_kwh = {
        d: counter_energy(part.set_index("ts")["value"], start, end) / 1000.0
        for d, part in samples.groupby("device_id")
    }
    # specific yield = E / P_0 [kWh/kWp]; capacity factor = E / (P_ac x 3 h)
    sy = metrics.specific_yield("testsite", start, end, device="inv2")
    assert sy.unit == "kWh/kWp" and sy.hours_with_data == 3
    assert sy.value == pytest.approx(energy_kwh["inv2"] / 110.0, rel=1e-6)
    cf = metrics.capacity_factor("testsite", start, end)
    assert cf.value == pytest.approx(sum(energy_kwh.values()) / (3 * 100.0 * 3), rel=1e-6)
    pr = metrics.performance_ratio("testsite", start, end)
    assert 0.75 < pr.value < 0.95
    avail = metrics.availability_tracking("testsite", start, end, device="inv1")
    assert avail.time_based == 1.0 and avail.seconds["operating"] == pytest.approx(
        3 * 3600, abs=120
    )
    grid = metrics.grid_export_monitoring("testsite", start, end)
    assert grid.export_kwh == pytest.approx(
        sum(energy_kwh.values()), rel=0.02
    )  # the meter sees the inverters
    assert grid.net_export_kwh == pytest.approx(grid.export_kwh - grid.import_kwh)
    # every metric at once: the same values, from one read of the hourly rows
    reads = []
    period = metrics._period
    metrics._period = lambda *a: reads.append(a) or period(*a)
    summary = metrics.period_summary("testsite", start, end)
    assert len(reads) == 1 and summary.hours_with_data == 3
    assert (summary.capacity_factor, summary.performance_ratio, summary.grid) == (cf, pr, grid)
    inverter = metrics.period_summary("testsite", start, end, device="inv2")
    assert inverter.specific_yield == sy and inverter.grid is None and len(reads) == 2
    assert metrics.period_summary("testsite", start, end, device="inv1").availability == avail


def test_alert_engine_detects_persists_and_calls_back(settings, db):
    alerts = AlertEngine(settings)
    seen = []
    alerts.register_callback(lambda event, alert: seen.append((event, alert["fingerprint"])))
    at = DAY + timedelta(hours=12)
    assert (
        alerts.underperformance_detection(
            0.85, site="testsite", device="inv1", expected_deviation=-0.3, at=at
        )
        is None
    )
    low = alerts.underperformance_detection(
        0.62, site="testsite", device="inv1", expected_deviation=-0.3, at=at
    )
    assert low["fingerprint"] == "underperformance:testsite:inv1" and low["severity"] == "HIGH"
    record = InverterRecord(
        site_id="testsite", device_id="inv2", ts=at, operating_state=7, events=["GROUND_FAULT"]
    )
    assert alerts.equipment_fault_alerts(record) is None  # one frame: debounced
    fault = alerts.equipment_fault_alerts(
        record.model_copy(update={"ts": at + timedelta(seconds=15)})
    )
    assert fault["rule"] == "equipment_fault" and "GROUND_FAULT" in fault["message"]
    grid = {"site": "testsite", "device": "meter1", "frequency_hz": 48.7, "voltage_v": 231.0}
    assert alerts.grid_outage_detection({**grid, "ts": at}) is None
    out = alerts.grid_outage_detection({**grid, "ts": at + timedelta(seconds=12)})
    assert out["rule"] == "grid_outage" and out["severity"] == "CRITICAL"
    assert alerts.acknowledge(low["id"], "alice", "crew booked")
    assert alerts.resolve(fault["id"], "bob", "reset")
    states = alerts.list().set_index("fingerprint")["state"].to_dict()
    assert states == {
        "underperformance:testsite:inv1": "acknowledged",
        "equipment_fault:testsite:inv2": "resolved",
        "grid_outage:testsite:meter1": "open",
    }
    assert ("opened", "grid_outage:testsite:meter1") in seen
    alerts.close()


def test_realtime_monitor_streams_parses_and_flags(settings):
    asyncio.run(_monitor_session(settings))


async def _monitor_session(settings):
    broker = parse_mqtt_url(settings.mqtt_url)
    now = datetime.now(UTC).replace(microsecond=0)
    wx = {"poa_irradiance": 850.0, "module_temperature": 50.0}
    inverters = {
        f"inv{i}": {
            "ac_power": 80_000.0, "dc_power": 83_000.0, "dc_voltage": 700.0, "operating_state": 4.0,
            "events": 0.0 if i != 3 else float(1 << 7),  # OVER_TEMP on inv3
            "mppt1_dc_current": 60.0, "mppt2_dc_current": 60.0 if i != 2 else 10.0,  # inv2 mppt2 weak
            "mppt1_temperature": 55.0, "mppt2_temperature": 55.0 if i != 1 else 80.0,  # inv1 mppt2 hot
        }
        for i in (1, 2, 3)
    }  # fmt: skip
    async with (
        RealTimeMonitor(settings) as monitor,
        aiomqtt.Client(**broker.client_kwargs()) as pub,
    ):

        async def collect(stream, n: int) -> list:
            out = []
            async for item in stream:
                out.append(item)
                if len(out) == n:
                    return out

        # subscribe first, then publish: wx1, the three inverters, then inv2 and inv1 again (by then every
        # string of the site is known, so the verdicts use all six)
        first = asyncio.ensure_future(collect(monitor.live_data_stream(device="wx1"), 1))
        first_record = asyncio.ensure_future(
            collect(monitor.inverter_data_parsing(device="inv3"), 1)
        )
        strings = asyncio.ensure_future(collect(monitor.string_level_monitoring(), 10))
        modules = asyncio.ensure_future(collect(monitor.module_level_monitoring(), 10))
        await asyncio.sleep(0.3)
        prefix = settings.live_topic_prefix
        await pub.publish(f"{prefix}/testsite/wx1", live_payload(now, wx))
        for device in ("inv1", "inv2", "inv3", "inv2", "inv1"):
            await pub.publish(f"{prefix}/testsite/{device}", live_payload(now, inverters[device]))
        async with asyncio.timeout(10):
            (reading,), (record,) = await first, await first_record
            collected_strings, collected_modules = await strings, await modules
        assert reading.entity == "testsite.wx1.poa_irradiance" and reading.value == 850.0
        assert (record.ac_power_w, record.dc_voltage_v, record.events) == (
            80_000.0,
            700.0,
            ["OVER_TEMP"],
        )
        last = {(s.device_id, s.string): s for s in collected_strings}
        assert last[("inv2", "mppt2")].outlier and not last[("inv2", "mppt1")].outlier
        assert last[("inv2", "mppt2")].median_current_a == 60.0
        hot = {(m.device_id, m.string): m for m in collected_modules}
        assert hot[("inv1", "mppt2")].hot_spot and not hot[("inv1", "mppt1")].hot_spot
        states = {s.device_id: s for s in monitor.scada_integration()}
        assert states["inv1"].available and states["wx1"].last_reading == now
        assert not states["meter1"].available and states["meter1"].last_reading is None
