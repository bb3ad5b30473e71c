"""Target (budget) energy of a site per month and year, and how much of it was achieved.

A site's target is its owner's monthly energy budget from the plant file (`report.monthly_target_kwh`).
Without one, the target is a **modelled typical year**: the hourly clear-sky year of
`temperature.modelled_year_weather` (pvlib simplified Solis, transposed to the plane of array,
seasonal and daily ambient temperature, 2 m/s wind) through the platform's own expected-power model
(`expected.expected_ac_power_w`: PVWatts DC with γ and 3 % DC losses, PVWatts inverter clipping at the
AC rating) for every inverter, summed per site-local calendar month, times a clearness factor
(`report.clearness_factor`, default 0.75): clear sky has no clouds, and over a year real-sky
irradiation is typically 60-85 % of clear-sky (lower in cloudy climates, higher in deserts). Set the
factor, or better a budget, from the plant's yield assessment (e.g. PVGIS, P50).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pv_platform.kpi.expected import expected_ac_power_w
from pv_platform.kpi.temperature import cell_temperature_c, modelled_year_weather


def typical_year_monthly_energy_kwh(
    latitude: float,
    longitude: float,
    altitude_m: float,
    tilt_deg: float,
    azimuth_deg: float,
    timezone: str,
    inverters: Sequence[tuple[float, float, float]],
    clearness_factor: float = 0.75,
) -> np.ndarray:
    """Modelled energy of each calendar month of a typical year, January first [kWh] (12 values).

    inverters : (p_dc_kw, p_ac_kw, gamma_pdc_per_c) of each inverter [kW, kW, 1/°C]
    clearness_factor : real-sky over clear-sky energy [-]
    """
    wx = modelled_year_weather(latitude, longitude, altitude_m, tilt_deg, azimuth_deg)
    t_cell = cell_temperature_c(
        wx["poa_wm2"], ambient_temperature_c=wx["ambient_c"], wind_speed_ms=2.0
    )
    power_w = np.zeros(len(wx))
    for p_dc_kw, p_ac_kw, gamma in inverters:
        power_w += expected_ac_power_w(wx["poa_wm2"], t_cell, p_dc_kw, p_ac_kw, gamma)
    # hourly means of power: one hour's energy [kWh] = mean power [W] / 1000 · 1 h
    energy_kwh = pd.Series(power_w / 1000.0, index=wx.index.tz_convert(timezone))
    by_month = energy_kwh.groupby(energy_kwh.index.month).sum()
    return by_month.reindex(range(1, 13), fill_value=0.0).to_numpy() * clearness_factor


def target_energy_kwh(monthly_target_kwh: Sequence[float], grain: str, month: int = 1) -> float:
    """The target of one report period [kWh]: the month's budget (`grain` 'monthly', `month` 1-12), or
    the year's sum of the twelve (`grain` 'yearly')."""
    if len(monthly_target_kwh) != 12:
        raise ValueError(f"a target has 12 monthly values, got {len(monthly_target_kwh)}")
    if grain == "monthly":
        return float(monthly_target_kwh[month - 1])
    if grain == "yearly":
        return float(np.sum(monthly_target_kwh))
    raise ValueError(f"unknown report grain {grain!r}; use monthly or yearly")


def achieved_fraction(energy_kwh: float, target_kwh: float) -> float:
    """Actual energy over target energy [-] (1.0 = 100 % achieved); NaN without a positive target."""
    return energy_kwh / target_kwh if target_kwh > 0 else float("nan")
