"""A site's November 2026 of hourly KPIs with hand-worked numbers, rolled up by the platform's own
period code, and two alerts: what the report tests read back from a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.kpi.periods import aggregate, derive_ratios, site_rows
from pv_platform.storage.alerts import AlertStore

TZ = "Europe/Zurich"
START = datetime(2026, 10, 31, 23, tzinfo=UTC)  # 2026-11-01 00:00 in Zurich (UTC+1)
END = datetime(2026, 11, 30, 23, tzinfo=UTC)
OUTAGE = (datetime(2026, 11, 10, 10, tzinfo=UTC), datetime(2026, 11, 10, 13, tzinfo=UTC))
EXPECTED_KWH = 36.0  # per inverter and daylight hour
YEAR_START = datetime(2025, 12, 31, 23, tzinfo=UTC)  # 2026 in Zurich
YEAR_END = datetime(2026, 12, 31, 23, tzinfo=UTC)
MISSING_HOUR = datetime(2026, 11, 20, 3, tzinfo=UTC)  # a night hour without KPIs


def _inverter_hour(device: str, hour: datetime) -> dict:
    """08-15 UTC is day: 0.4 kWh/m2 scaled by a daily swing; PR 0.8 of 110 kWp; expected 36 kWh."""
    day = hour.day
    swing = 1.0 + 0.3 * np.sin(day / 3.0)
    daylight = 8 <= hour.hour < 16
    h_kwh_m2 = 0.4 * swing if daylight else 0.0
    ref_stc = 110.0 * h_kwh_m2
    energy = 0.8 * ref_stc
    expected = EXPECTED_KWH * swing if daylight else 0.0
    forced = device == "inv2" and OUTAGE[0] <= hour < OUTAGE[1]
    return {
        "site_id": "testsite", "device_id": device, "period_start": pd.Timestamp(hour), "period_h": 1.0,
        "p_dc_kw": 110.0, "p_ac_kw": 100.0, "energy_ac_kwh": 0.0 if forced else energy,
        "insolation_poa_kwh_m2": h_kwh_m2, "ref_energy_stc_kwh": ref_stc, "ref_energy_iec_kwh": ref_stc * 1.02,
        "ref_energy_nrel_kwh": ref_stc * 0.99, "t_cell_x_insolation": 20.0 * h_kwh_m2,
        "energy_expected_kwh": expected, "energy_lost_kwh": expected if forced else 0.0,
        "time_night_s": 0.0 if daylight else 3600.0, "time_no_data_s": 0.0, "time_grid_outage_s": 0.0,
        "time_planned_s": 0.0, "time_operating_s": 0.0 if forced or not daylight else 3600.0,
        "time_forced_outage_s": 3600.0 if forced else 0.0, "export_kwh": 0.0, "import_kwh": 0.0,
        "reactive_kvarh": 0.0, "time_freq_out_s": 0.0, "time_volt_out_s": 0.0, "samples": 180,
    }  # fmt: skip


def seed_november(db, plant, missing_hour: bool = True) -> dict[str, pd.DataFrame]:
    """Write hourly, daily, monthly KPIs, coverage and two alerts (without the KPIs of MISSING_HOUR
    unless `missing_hour` is False); returns what was written."""
    db.plant.sync(plant)
    hours = [START + timedelta(hours=i) for i in range(int((END - START) / timedelta(hours=1)))]
    hours = [h for h in hours if h != MISSING_HOUR or not missing_hour]
    inverters = pd.DataFrame([_inverter_hour(d, h) for h in hours for d in ("inv1", "inv2")])
    inverters = derive_ratios(inverters)
    hourly = pd.concat([inverters, site_rows(inverters)], ignore_index=True)
    db.kpis.replace("kpi_hourly", START, END, hourly)
    zones = {"testsite": TZ}
    daily = aggregate(hourly, zones, "daily")
    monthly = aggregate(hourly, zones, "monthly")
    db.kpis.replace("kpi_daily", START, END, daily)
    db.kpis.replace("kpi_monthly", START, END, monthly)
    yearly = aggregate(hourly, zones, "yearly")
    db.kpis.replace("kpi_yearly", YEAR_START, YEAR_END, yearly)
    db.kpis.replace_coverage("yearly", "testsite", YEAR_START, 8760, 719, [])
    db.kpis.replace_coverage("monthly", "testsite", START, 720, 719, [MISSING_HOUR])
    alerts = AlertStore(db.engine)
    trip = alerts.open(
        "equipment_fault:testsite:inv2", "equipment_fault", "HIGH", "testsite", "inv2",
        "inv2 tripped (GROUND_FAULT)", {}, OUTAGE[0],
    )  # fmt: skip
    alerts.resolve(trip["id"], "alice", "reset", OUTAGE[1])
    # still open at the month's end: counted to the end, 29 h 30 min inside November
    alerts.open(
        "communication_lost:testsite:meter1", "communication_lost", "MEDIUM", "testsite", "meter1",
        "meter1 silent", {}, datetime(2026, 11, 29, 17, 30, tzinfo=UTC),
    )  # fmt: skip
    return {"hourly": hourly, "daily": daily, "monthly": monthly, "yearly": yearly}
