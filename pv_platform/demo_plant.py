"""The demo's plant: two inverters, a meter and a weather station at whichever of a few sites has
the sun highest now (the demo shows a producing plant at any hour)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pv_platform.vocabulary import Metric

log = logging.getLogger(__name__)


DEMO_SITES = (
    ("zurich", "Demo Plant Zurich", 47.37, 8.54, 410, "Europe/Zurich"),
    ("delhi", "Demo Plant Delhi", 28.61, 77.21, 216, "Asia/Kolkata"),
    ("sydney", "Demo Plant Sydney", -33.87, 151.21, 40, "Australia/Sydney"),
    ("tokyo", "Demo Plant Tokyo", 35.68, 139.69, 40, "Asia/Tokyo"),
    ("capetown", "Demo Plant Cape Town", -33.92, 18.42, 20, "Africa/Johannesburg"),
    ("saopaulo", "Demo Plant Sao Paulo", -23.55, -46.63, 760, "America/Sao_Paulo"),
    ("phoenix", "Demo Plant Phoenix", 33.45, -112.07, 331, "America/Phoenix"),
    ("honolulu", "Demo Plant Honolulu", 21.31, -157.86, 5, "Pacific/Honolulu"),
)


def sunniest_site(when: datetime | None = None) -> tuple:
    """The demo site with the sun highest in the sky at `when` (now), so live power is not a night-time 0."""
    import pandas as pd
    import pvlib

    ts = pd.DatetimeIndex([pd.Timestamp(when or datetime.now(UTC))])

    def elevation(site: tuple) -> float:
        return float(
            pvlib.solarposition.get_solarposition(ts, site[2], site[3])["apparent_elevation"].iloc[
                0
            ]
        )

    return max(DEMO_SITES, key=elevation)


def demo_plant(inverter_ports: list[int], where: tuple = DEMO_SITES[0]) -> dict:
    """The demo plant: one site, N SunSpec inverters on Modbus TCP, a weather station on MQTT."""
    devices = [
        {
            "id": f"inv{i + 1}",
            "name": f"Inverter {i + 1}",
            "kind": "inverter",
            "integration": "sunspec_modbus",
            "p_dc_kw": 110.0,
            "p_ac_kw": 100.0,
            "gamma_pdc_per_c": -0.0037,
            "config": {"host": "127.0.0.1", "port": port, "unit_id": 1, "poll_interval_s": 1.0},
        }
        for i, port in enumerate(inverter_ports)
    ]
    devices.append(
        {
            "id": "wx1",
            "name": "Weather station",
            "kind": "weather_station",
            "integration": "mqtt",
            "config": {
                "topic": f"pvp/sim/{where[0]}/wx1",
                "fields": {
                    Metric.POA_IRRADIANCE: "poa",
                    Metric.GHI_IRRADIANCE: "ghi",
                    Metric.MODULE_TEMPERATURE: "t_mod",
                    Metric.AMBIENT_TEMPERATURE: "t_amb",
                    Metric.WIND_SPEED: "wind",
                },
            },
        }
    )
    devices.append(
        {
            "id": "meter1",
            "name": "Grid meter",
            "kind": "meter",
            "integration": "mqtt",
            "config": {
                "topic": f"pvp/sim/{where[0]}/meter1",
                "fields": {
                    Metric.AC_POWER: "p_w",
                    Metric.EXPORT_ENERGY: "e_export_wh",
                    Metric.IMPORT_ENERGY: "e_import_wh",
                    Metric.GRID_FREQUENCY: "f_hz",
                    Metric.GRID_VOLTAGE: "u_v",
                    Metric.POWER_FACTOR: "pf",
                },
            },
        }
    )
    site_id, name, latitude, longitude, altitude_m, timezone = where
    site = {
        "id": site_id, "name": name, "latitude": latitude, "longitude": longitude, "altitude_m": altitude_m,
        "timezone": timezone, "tilt_deg": 30, "azimuth_deg": 180 if latitude >= 0 else 0, "devices": devices,
    }  # fmt: skip
    return {"sites": [site]}
