"""Simulator fault scenarios: each fault shows in the history the way a real one would, and the KPIs and
data-quality checks see it where they should."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from integrations.mqtt.config import MqttDeviceConfig
from integrations.mqtt.entities import MQTT_ENTITIES
from integrations.mqtt.payload import parse_payload
from integrations.simulator.devices import SimulatedInverter, backfill_frames
from integrations.simulator.scenarios import Scenario
from integrations.sunspec_modbus.config import SunSpecModbusConfig
from integrations.sunspec_modbus.coordinator import SunSpecCoordinator
from pv_platform.kpi.hourly import hourly_kpis_range
from pv_platform.kpi.quality import run_checks
from pv_platform.plant import parse_plant
from tests.conftest import demo_plant_dict

DAY = datetime(2026, 6, 21, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


SCENARIO = Scenario.model_validate(
    {
        "faults": [
            {
                "kind": "inverter_trip",
                "device": "inv1",
                "start": at(9),
                "end": at(9, 30),
                "events": ["GROUND_FAULT"],
            },
            {
                "kind": "string_disconnect",
                "device": "inv2",
                "mppt": 1,
                "start": at(10),
                "end": at(11),
            },
            {
                "kind": "hot_spot",
                "device": "inv2",
                "mppt": 2,
                "delta_c": 30,
                "start": at(10),
                "end": at(11),
            },
            {"kind": "grid_outage", "start": at(11), "end": at(11, 20)},
            {"kind": "device_silent", "device": "wx1", "start": at(12), "end": at(12, 40)},
            {
                "kind": "frozen_sensor",
                "device": "wx1",
                "metric": "module_temperature",
                "start": at(13),
                "end": at(13, 50),
            },
        ]
    }
)


@pytest.fixture(scope="module")
def history():
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    site = plant.sites[0]
    frames = backfill_frames(
        site, 9, DAY + timedelta(hours=4), DAY + timedelta(hours=16), scenario=SCENARIO
    )
    rows = [
        (site.id, device_id, metric, ts, value)
        for device_id, frame in frames.items()
        for metric in frame.columns
        for ts, value in frame[metric].items()
    ]
    samples = pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])
    return plant, frames, samples


def test_each_fault_shows_in_the_history(history):
    _, frames, _ = history
    inv1, inv2, meter, wx = frames["inv1"], frames["inv2"], frames["meter1"], frames["wx1"]
    trip = (inv1.index >= at(9)) & (inv1.index < at(9, 30))
    assert (inv1.loc[trip, "ac_power"] == 0).all() and (
        inv1.loc[trip, "operating_state"] == 7
    ).all()
    assert (inv1.loc[trip, "events"] == 1).all()  # GROUND_FAULT is bit 0
    assert (inv1.loc[~trip & (inv1.index.hour == 9), "ac_power"] > 0).all()
    # the energy counter stops during the trip
    assert inv1.loc[trip, "ac_energy"].max() - inv1.loc[trip, "ac_energy"].min() == pytest.approx(
        0.0, abs=1e-6
    )
    strings = (inv2.index >= at(10)) & (inv2.index < at(11))
    assert (inv2.loc[strings, "mppt1_dc_current"] == 0).all() and (
        inv2.loc[strings, "mppt2_dc_current"] > 0
    ).all()
    assert (
        inv2.loc[strings, "mppt2_temperature"]
        - frames["wx1"]["module_temperature"].reindex(inv2.index[strings]).fillna(0)
        >= 29
    ).all()
    outage = (meter.index >= at(11)) & (meter.index < at(11, 20))
    assert (meter.loc[outage, "grid_voltage"] == 0).all() and (
        meter.loc[outage, "ac_power"] < 0
    ).all()
    assert (
        (inv1.loc[outage, "ac_power"] == 0) & (inv1.loc[outage, "events"] == 1 << 4)
    ).all()  # GRID_DISCONNECT
    assert not ((wx.index >= at(12)) & (wx.index < at(12, 40))).any()  # silent: nothing was sent
    frozen = wx.loc[(wx.index >= at(13)) & (wx.index < at(13, 50)), "module_temperature"]
    assert frozen.nunique() == 1 and wx.loc[wx.index >= at(14), "module_temperature"].nunique() > 1


def test_kpis_and_checks_see_the_faults(history):
    plant, _, samples = history
    kpis = hourly_kpis_range(samples, plant, at(5), at(15)).set_index(["period_start", "device_id"])
    trip_hour = kpis.loc[(pd.Timestamp(at(9)), "inv1")]
    assert trip_hour["time_forced_outage_s"] == pytest.approx(30 * 60, abs=60)
    assert trip_hour["availability_time"] == pytest.approx(0.5, abs=0.02)
    assert trip_hour["energy_lost_kwh"] > 0.3 * trip_hour["energy_expected_kwh"]
    healthy = kpis.loc[(pd.Timestamp(at(9)), "inv2")]
    assert healthy["availability_time"] == pytest.approx(1.0)
    # a lost string: inv2 makes about half its expected energy, availability stays 1 (it is running)
    string_hour = kpis.loc[(pd.Timestamp(at(10)), "inv2")]
    assert string_hour["expected_deviation"] < -0.4 and string_hour[
        "availability_time"
    ] == pytest.approx(1.0)
    # the grid outage is excluded, not downtime
    outage_hour = kpis.loc[(pd.Timestamp(at(11)), "inv1")]
    assert outage_hour["time_grid_outage_s"] == pytest.approx(20 * 60, abs=60)
    assert outage_hour["time_forced_outage_s"] == 0 and outage_hour[
        "availability_time"
    ] == pytest.approx(1.0)
    site_outage = kpis.loc[(pd.Timestamp(at(11)), "*")]
    assert site_outage["time_volt_out_s"] == pytest.approx(20 * 60, abs=60)

    outcomes = {
        (o.hour, o.name): o
        for o in run_checks(samples, kpis.reset_index(), plant, at(5), at(15), at(16))
    }
    silent = outcomes[(pd.Timestamp(at(12)), "completeness")]
    assert not silent.passed and "testsite.wx1.poa_irradiance" in silent.detail
    assert not outcomes[(pd.Timestamp(at(13)), "frozen_values")].passed
    assert (
        outcomes[(pd.Timestamp(at(8)), "frozen_values")].passed
        and outcomes[(pd.Timestamp(at(8)), "completeness")].passed
    )


def test_live_faults_reach_the_modbus_client():
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    site = plant.sites[0]
    now = datetime.now(UTC)
    trip = Scenario.model_validate(
        {
            "faults": [
                {
                    "kind": "inverter_trip",
                    "device": "inv1",
                    "start": now - timedelta(minutes=5),
                    "events": ["OVER_TEMP"],
                }
            ]
        }
    )
    inverter = SimulatedInverter(
        site, site.device("inv1"), 1, faults=trip.for_device(site.id, "inv1")
    )
    inverter.update(now)
    assert (
        inverter.served["operating_state"] == 7
        and inverter.served["ac_power"] == 0
        and inverter.served["events"] == 1 << 7
    )

    from pymodbus.server import ModbusTcpServer

    from pv_platform.services import free_port

    silent = Scenario.model_validate(
        {
            "faults": [
                {"kind": "device_silent", "device": "inv1", "start": now - timedelta(minutes=1)}
            ]
        }
    )
    port = free_port()
    device = site.device("inv1").model_copy(
        update={"config": {**site.device("inv1").config, "port": port}}
    )

    async def go():
        served = SimulatedInverter(site, device, 1, faults=silent.for_device(site.id, "inv1"))
        server = ModbusTcpServer(served.modbus_device(), address=("127.0.0.1", port))
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.3)
        coordinator = SunSpecCoordinator(
            site.id, "inv1", SunSpecModbusConfig.model_validate(device.config)
        )
        readings = await coordinator.poll_once()
        await coordinator.async_close()
        await server.shutdown()
        task.cancel()
        return coordinator, readings

    coordinator, readings = asyncio.run(go())
    assert readings == [] and not coordinator.available
    assert "exception" in coordinator.last_error.lower()
    assert np.isfinite(coordinator.next_delay_s())


def test_a_curtailment_episode_in_the_history_and_the_kpis():
    """A plant controller's export limit of 40 % (40 kW of each 100 kW inverter) 12:00-14:00 UTC: the
    history reports the limit (100 % outside the episode) and AC power held at 40 kW; the hourly KPIs
    price it as curtailment, not clipping: hour 12 loses its expected energy − 40 kWh exactly; hour 13
    the same less its last minute, which the minute grid's trapezoid spans from a 40 % to a 100 % sample
    (a 70 kW limit, above the expected power: (70 − 40) kW · 1 min = 0.5 kWh less)."""
    plant = parse_plant(demo_plant_dict([15020, 15021]))
    site = plant.sites[0]
    scenario = Scenario.model_validate(
        {"faults": [{"kind": "curtailment", "limit_pct": 40, "start": at(12), "end": at(14)}]}
    )
    frames = backfill_frames(
        site, 9, DAY + timedelta(hours=4), DAY + timedelta(hours=16), scenario=scenario
    )
    inv1 = frames["inv1"]
    episode = (inv1.index >= at(12)) & (inv1.index < at(14))
    assert (inv1.loc[episode, "active_power_limit_pct"] == 40.0).all()
    assert (inv1.loc[~episode, "active_power_limit_pct"] == 100.0).all()
    assert inv1.loc[episode, "ac_power"].max() == pytest.approx(40_000.0)
    assert inv1.loc[inv1.index.hour == 10, "ac_power"].max() > 60_000.0  # unlimited, it makes more
    rows = [
        (site.id, device_id, metric, ts, value)
        for device_id, frame in frames.items()
        for metric in frame.columns
        for ts, value in frame[metric].items()
    ]
    samples = pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])
    kpis = hourly_kpis_range(samples, plant, at(5), at(15)).set_index(["period_start", "device_id"])
    for device in ("inv1", "inv2"):
        noon = kpis.loc[(pd.Timestamp(at(12)), device)]
        assert noon["energy_curtailed_kwh"] == pytest.approx(noon["energy_expected_kwh"] - 40.0)
        after = kpis.loc[(pd.Timestamp(at(13)), device)]
        assert after["energy_curtailed_kwh"] == pytest.approx(
            after["energy_expected_kwh"] - 40.0 - 0.5
        )
        assert noon["energy_clipped_kwh"] == 0.0
    others = kpis[
        ~kpis.index.get_level_values(0).isin([pd.Timestamp(at(12)), pd.Timestamp(at(13))])
    ]
    assert others["energy_curtailed_kwh"].max() == 0.0
    site_row = kpis.loc[(pd.Timestamp(at(12)), "*")]
    assert site_row["energy_curtailed_kwh"] == pytest.approx(
        kpis.loc[(pd.Timestamp(at(12)), "inv1"), "energy_curtailed_kwh"] * 2
    )


def test_a_limit_published_over_mqtt_is_the_same_metric():
    """A plant controller publishing its export limit over MQTT: the field maps onto
    `active_power_limit_pct` (a known metric, unit %), parsed as a number like every other field."""
    config = MqttDeviceConfig.model_validate(
        {"topic": "plant/ppc", "fields": {"active_power_limit_pct": "ctrl.limit", "ac_power": "p"}}
    )
    values, _ = parse_payload(b'{"ctrl": {"limit": 60.5}, "p": 41000}', config.fields, None)
    assert values == {"active_power_limit_pct": 60.5, "ac_power": 41000.0}
    unit = {d.key: d.unit for d in MQTT_ENTITIES}["active_power_limit_pct"]
    assert unit == "%"
