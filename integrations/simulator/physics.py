"""A plant that behaves like one: clear sky, clouds, POA transposition, cell temperature, PVWatts DC,
inverter efficiency and clipping. Deterministic for a seed and a time: live and back-filled history agree.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pvlib

from pv_platform.plant import Device, Site
from pv_platform.vocabulary import Metric

SAPM = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
ETA_INV_NOM = 0.96


def epoch_s(times: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since 1970 of each timestamp, whatever the index's resolution (pandas 3 defaults to µs)."""
    return times.as_unit("ns").asi8 / 1e9


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def cloud_factor(times: pd.DatetimeIndex, seed: int, site_id: str) -> np.ndarray:
    """Fraction of clear-sky irradiance that gets through [0.15, 1]: a seeded sum of slow and fast waves.

    A pure function of time, so any instant gives the same value live or in a back-fill.
    """
    rng = _rng(seed, site_id, "clouds")
    periods_s = rng.uniform(600, 7200, size=6)
    phases = rng.uniform(0, 2 * np.pi, size=6)
    weights = rng.uniform(0.5, 1.0, size=6)
    t = epoch_s(times)
    wave = sum(
        w * np.sin(2 * np.pi * t / p + ph)
        for w, p, ph in zip(weights, periods_s, phases, strict=True)
    )
    wave = wave / weights.sum()  # in [-1, 1]
    cover = (
        np.clip(wave - 0.3, 0.0, None) / 0.7
    )  # clear most of the time, transients when the wave peaks
    return 1.0 - 0.85 * cover


def weather(site: Site, times: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """Site weather at `times` (UTC): poa_irradiance, ghi_irradiance [W/m^2], temperatures [°C], wind [m/s]."""
    location = pvlib.location.Location(site.latitude, site.longitude, altitude=site.altitude_m)
    solpos = location.get_solarposition(times)
    clear = location.get_clearsky(times, model="simplified_solis", solar_position=solpos)
    k = cloud_factor(times, seed, site.id)
    ghi, dni, dhi = clear["ghi"] * k, clear["dni"] * k**2, clear["dhi"] * (1.0 + 0.3 * (1 - k))
    poa = (
        pvlib.irradiance.get_total_irradiance(
            site.tilt_deg,
            site.azimuth_deg,
            solpos["apparent_zenith"],
            solpos["azimuth"],
            dni,
            ghi,
            dhi,
        )["poa_global"]
        .fillna(0.0)
        .clip(lower=0.0)
    )
    hour = times.hour + times.minute / 60.0 + site.longitude / 15.0
    temp_air = 14.0 + 6.0 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
    wind = 2.0 + 1.0 * np.sin(2 * np.pi * epoch_s(times) / 5400.0) ** 2
    temp_module = pvlib.temperature.sapm_module(poa, temp_air, wind, SAPM["a"], SAPM["b"])
    temp_cell = pvlib.temperature.sapm_cell(poa, temp_air, wind, **SAPM)
    return pd.DataFrame(
        {
            Metric.POA_IRRADIANCE: poa.to_numpy(),
            Metric.GHI_IRRADIANCE: ghi.fillna(0.0).to_numpy(),
            Metric.AMBIENT_TEMPERATURE: np.asarray(temp_air),
            Metric.MODULE_TEMPERATURE: np.asarray(temp_module),
            "cell_temperature": np.asarray(temp_cell),
            Metric.WIND_SPEED: np.asarray(wind),
        },
        index=times,
    )


def inverter_output(inverter: Device, wx: pd.DataFrame, seed: int, site_id: str) -> pd.DataFrame:
    """An inverter's electrical state from the site weather: PVWatts DC, PVWatts inverter with clipping."""
    loss = _rng(seed, site_id, inverter.id, "loss").uniform(0.95, 0.99)  # soiling, mismatch, wiring
    p_dc_w = (
        pvlib.pvsystem.pvwatts_dc(
            wx[Metric.POA_IRRADIANCE],
            wx["cell_temperature"],
            inverter.p_dc_kw * 1000.0,
            inverter.gamma_pdc_per_c,
        )
        * loss
    )
    p_dc_w = np.clip(np.asarray(p_dc_w, dtype=float), 0.0, None)
    pdc0_inv_w = inverter.p_ac_kw * 1000.0 / ETA_INV_NOM
    p_ac_w = np.clip(
        np.nan_to_num(pvlib.inverter.pvwatts(p_dc_w, pdc0_inv_w, ETA_INV_NOM)), 0.0, None
    )
    t = epoch_s(wx.index)
    freq = 50.0 + 0.02 * np.sin(2 * np.pi * t / 97.0) + 0.01 * np.sin(2 * np.pi * t / 13.0)
    v_an = 230.0 + 2.0 * np.sin(2 * np.pi * t / 611.0) + 0.004 * p_ac_w / inverter.p_ac_kw
    v_dc = np.where(p_dc_w > 0, 620.0 - 0.9 * (wx["cell_temperature"].to_numpy() - 25.0), 0.0)
    operating = p_ac_w > 0
    return pd.DataFrame(
        {
            Metric.AC_POWER: p_ac_w,
            Metric.AC_CURRENT: p_ac_w / (3 * 230.0),
            Metric.AC_VOLTAGE_AN: v_an,
            Metric.AC_FREQUENCY: freq,
            Metric.AC_REACTIVE_POWER: 0.0 * p_ac_w,
            Metric.POWER_FACTOR: np.where(operating, 1.0, 0.0),
            Metric.DC_POWER: p_dc_w,
            Metric.DC_VOLTAGE: v_dc,
            Metric.DC_CURRENT: np.divide(p_dc_w, v_dc, out=np.zeros_like(p_dc_w), where=v_dc > 0),
            Metric.CABINET_TEMPERATURE: wx[Metric.AMBIENT_TEMPERATURE].to_numpy()
            + 8.0 * p_ac_w / (inverter.p_ac_kw * 1000.0),
            Metric.OPERATING_STATE: np.where(operating, 4.0, 2.0),  # MPPT or SLEEPING
        },
        index=wx.index,
    )


def energy_wh(ac_power_w: pd.Series, start_wh: float) -> pd.Series:
    """A lifetime counter [Wh] from power samples (trapezoid), starting at start_wh."""
    t_s = epoch_s(ac_power_w.index)
    dt_h = np.diff(t_s, prepend=t_s[0]) / 3600.0
    v = ac_power_w.to_numpy(dtype=float)
    steps = 0.5 * (v + np.concatenate([[v[0]], v[:-1]])) * dt_h
    return pd.Series(start_wh + np.cumsum(steps), index=ac_power_w.index)
