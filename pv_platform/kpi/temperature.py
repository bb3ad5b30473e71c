"""Cell temperature and temperature-corrected performance ratio (IEC 61724-1; NREL weather-corrected PR).

pvlib is imported inside the functions that use it: a Dagster run that computes no KPI (most are
ingest runs) does not load it and scipy (1.5-3 s of each run's start)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pv_platform.kpi.numeric import ratio
from pv_platform.kpi.yields import G_STC_KW_M2

T_REF_IEC_C = 25.0  # STC cell temperature [°C]
# pvlib's TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"] (King et al. 2004, SAND2004-3535)
SAPM_DEFAULT = {"a": -3.47, "b": -0.0594, "deltaT": 3}


def cell_temperature_c(
    poa_wm2,
    module_temperature_c=None,
    ambient_temperature_c=None,
    wind_speed_ms=None,
    sapm_params: dict | None = None,
):
    """Cell temperature [°C]: from a back-of-module sensor (pvlib `sapm_cell_from_module`) when there is
    one, else from ambient temperature and wind (pvlib `sapm_cell`; wind defaults to 1 m/s).

    poa_wm2 : plane-of-array irradiance [W/m^2]
    module_temperature_c : back-of-module temperature [°C]
    ambient_temperature_c : air temperature [°C]
    wind_speed_ms : wind speed at 10 m [m/s]
    """
    import pvlib

    p = sapm_params or SAPM_DEFAULT
    if module_temperature_c is not None:
        return pvlib.temperature.sapm_cell_from_module(module_temperature_c, poa_wm2, p["deltaT"])
    if ambient_temperature_c is None:
        raise ValueError("cell temperature needs a module temperature or an ambient temperature")
    wind = 1.0 if wind_speed_ms is None else wind_speed_ms
    return pvlib.temperature.sapm_cell(
        poa_wm2, ambient_temperature_c, wind, p["a"], p["b"], p["deltaT"]
    )


def temperature_corrected_reference_energy_kwh(
    poa_wm2,
    t_cell_c,
    p_dc_stc_kw: float,
    gamma_pdc_per_c: float,
    t_ref_c: float,
    interval_h: float,
):
    """Σ P_0 · (G_k / G_stc) · (1 + γ (T_k − T_ref)) · τ_k [kWh]: the denominator of the temperature-corrected PR.

    poa_wm2 : irradiance per interval [W/m^2]; t_cell_c : cell temperature per interval [°C]
    p_dc_stc_kw : DC nameplate [kW]; gamma_pdc_per_c : power temperature coefficient [1/°C] (negative)
    t_ref_c : reference cell temperature [°C] (25 for IEC 61724-1, the site's typical-year mean for NREL)
    interval_h : length of each interval τ_k [h]
    """
    g_ratio = np.asarray(poa_wm2, dtype=float) / 1000.0 / G_STC_KW_M2
    factor = 1.0 + gamma_pdc_per_c * (np.asarray(t_cell_c, dtype=float) - t_ref_c)
    return float(np.nansum(p_dc_stc_kw * g_ratio * factor * interval_h))


def temperature_corrected_pr(energy_ac_kwh, reference_energy_kwh):
    """PR' = Σ E_k / Σ (P_0 · G_k/G_stc · (1 + γ (T_k − T_ref)) τ_k) [-]; NaN when the denominator is 0.

    energy_ac_kwh : AC energy in the period [kWh]; reference_energy_kwh : the temperature-corrected
    reference energy of the same period [kWh] (`temperature_corrected_reference_energy_kwh`)
    """
    return ratio(energy_ac_kwh, reference_energy_kwh)


def modelled_year_weather(
    latitude: float,
    longitude: float,
    altitude_m: float,
    tilt_deg: float,
    azimuth_deg: float,
    year: int = 2023,
    ambient_mean_c: float | None = None,
) -> pd.DataFrame:
    """An hourly modelled year at a site (UTC index): `poa_wm2` [W/m^2] and `ambient_c` [°C].

    pvlib clear sky (simplified Solis) transposed to the plane of array, with an ambient temperature
    that follows the season and the day (annual mean from latitude unless given). No clouds: callers
    that need real-sky energy scale it (`pv_platform.kpi.target`).
    """
    import pvlib

    times = pd.date_range(
        f"{year}-01-01", f"{year + 1}-01-01", freq="1h", inclusive="left", tz="UTC"
    )
    loc = pvlib.location.Location(latitude, longitude, altitude=altitude_m)
    solpos = loc.get_solarposition(times)
    clear = loc.get_clearsky(times, model="simplified_solis", solar_position=solpos)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg,
        azimuth_deg,
        solpos["apparent_zenith"],
        solpos["azimuth"],
        clear["dni"],
        clear["ghi"],
        clear["dhi"],
    )["poa_global"].fillna(0.0)
    mean_c = ambient_mean_c if ambient_mean_c is not None else 27.0 - 0.4 * abs(latitude)
    season = np.cos(2 * np.pi * (times.day_of_year - 200) / 365.25) * (1 if latitude >= 0 else -1)
    local_hour = (times.hour + longitude / 15.0) % 24
    ambient = mean_c + 8.0 * season + 4.0 * np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)
    return pd.DataFrame({"poa_wm2": poa.to_numpy(), "ambient_c": np.asarray(ambient)}, index=times)


def typical_year_cell_temperature_c(
    latitude: float,
    longitude: float,
    altitude_m: float,
    tilt_deg: float,
    azimuth_deg: float,
    year: int = 2023,
    ambient_mean_c: float | None = None,
) -> float:
    """Irradiance-weighted mean cell temperature of a modelled year [°C]: T_ref of NREL's weather-corrected
    PR (Dierauf et al. 2013), computed once per site and stored.

    The year is `modelled_year_weather` (clear sky, seasonal ambient) with 2 m/s wind.
    """
    wx = modelled_year_weather(
        latitude, longitude, altitude_m, tilt_deg, azimuth_deg, year, ambient_mean_c
    )
    t_cell = cell_temperature_c(
        wx["poa_wm2"], ambient_temperature_c=wx["ambient_c"], wind_speed_ms=2.0
    )
    weights = wx["poa_wm2"].to_numpy()
    return float(np.sum(weights * np.asarray(t_cell)) / np.sum(weights))
