"""Irradiance-sensor and clock detectors against the modelled sun (pvlib): a drifting, shaded or dirty
POA sensor, and timestamps shifted against solar position.

pvlib is imported inside the functions that use it: a Dagster run that computes no KPI (most are
ingest runs) does not load it and scipy (1.5-3 s of each run's start)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

CLEAR_VARIABILITY_MAX = (
    1.3  # a day whose variability index is below this is clear (Stein et al. 2012)
)
MIN_CLEARSKY_WM2 = 200.0  # only judge the sensor when the modelled POA is above this
CLEAR_LEVEL_RANGE = (0.7, 1.3)  # a sensor this far off the model still has its clear periods found
MIN_CLEAR_FRACTION = 0.5  # a day's ratio is judged when half its sunny minutes were clear
MIN_CLEAR_MINUTES = 60  # ... and at least an hour of them
DEVIATION_TOL = 0.07  # a clear-day sample more than 7 % off the modelled POA is suspect
MIN_DAYLIGHT_COVER = (
    0.9  # a day's noon is judged only when the signal covers this much of its daylight
)
SHIFT_TOL_MIN = 20.0  # a day whose noon is this far from the solar noon has a shifted clock
SHIFT_DAYS = (
    7  # the noon offset is the median over this many days (clouds move a single day's centroid)
)


def solar_elevation_deg(index: pd.DatetimeIndex, latitude: float, longitude: float) -> np.ndarray:
    """Solar elevation [°] at each timestamp, by the analytical model (Spencer declination, equation of
    time): within about 1°, and fast enough for a year of minutes (pvlib `solar_zenith_analytical`)."""
    import pvlib

    utc = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    doy = utc.dayofyear.to_numpy()
    decl = pvlib.solarposition.declination_spencer71(doy)
    eot_min = pvlib.solarposition.equation_of_time_spencer71(doy)
    hours = (utc.hour + utc.minute / 60.0 + utc.second / 3600.0).to_numpy()
    hour_angle = np.radians(15.0 * (hours - 12.0) + longitude + eot_min / 4.0)
    zenith = pvlib.solarposition.solar_zenith_analytical(np.radians(latitude), hour_angle, decl)
    return 90.0 - np.degrees(zenith)


def clearsky_poa_wm2(
    index: pd.DatetimeIndex,
    latitude: float,
    longitude: float,
    tilt_deg: float,
    azimuth_deg: float,
    altitude_m: float = 0.0,
) -> pd.Series:
    """Clear-sky plane-of-array irradiance [W/m^2] (pvlib simplified Solis, isotropic transposition), as
    the platform's simulator models the sky."""
    import pvlib

    location = pvlib.location.Location(latitude, longitude, altitude=altitude_m)
    solpos = location.get_solarposition(index, method="nrel_numpy")
    clear = location.get_clearsky(index, model="simplified_solis", solar_position=solpos)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg, azimuth_deg, solpos["apparent_zenith"], solpos["azimuth"],
        clear["dni"], clear["ghi"], clear["dhi"],
    )["poa_global"]  # fmt: skip
    return poa.fillna(0.0).clip(lower=0.0).rename("clearsky_poa_wm2")


def _day_keys(index: pd.DatetimeIndex) -> np.ndarray:
    return index.floor("D").as_unit("ns").asi8


def variability_index(
    poa_wm2: pd.Series, clearsky_wm2: pd.Series, smooth: str = "10min"
) -> pd.Series:
    """Per day, Σ|ΔPOA| / Σ|ΔPOA_clear| [-] over `smooth` means (so sensor noise does not count as
    variability): about the sensor's scale on a clear day, well above 1 with clouds (Stein, Hansen, Ellis,
    Chavez 2012, 'The variability index')."""
    means = pd.DataFrame({"m": np.asarray(poa_wm2, float), "c": np.asarray(clearsky_wm2, float)},
                         index=poa_wm2.index).resample(smooth).mean()  # fmt: skip
    steps = means.diff().abs()
    sums = steps.groupby(_day_keys(steps.index)).sum(min_count=1)
    return (sums["m"] / sums["c"]).rename("variability_index")


def clear_samples(poa_wm2: pd.Series, clearsky_wm2: pd.Series) -> pd.Series:
    """Samples in clear-sky periods by the method of Reno and Hansen (2016), pvlib `detect_clearsky`
    (10-minute windows: mean, maximum, line length, variability and slope of the measured against the
    modelled curve), day by day against the model scaled to the sensor's level that day (the 90th
    percentile of measured over modelled POA while the model is above MIN_CLEARSKY_WM2, held within
    CLEAR_LEVEL_RANGE), so a sensor reading 15 % low still shows its clear periods. A day whose fitted
    clear sky ends outside CLEAR_LEVEL_RANGE of the model (a smooth overcast day), or whose fit does
    not converge, has none.

    Parameters
    ----------
    poa_wm2 : Series
        Measured plane-of-array irradiance on a regular 1-minute grid [W/m^2]; NaN where missing.
    clearsky_wm2 : Series
        Modelled clear-sky POA on the same index (`clearsky_poa_wm2`) [W/m^2].

    Returns
    -------
    Series of bool, same index as `poa_wm2`.

    References
    ----------
    M. J. Reno and C. W. Hansen, "Identification of periods of clear sky irradiance in time series of
    GHI measurements", Renewable Energy 90, 520-531 (2016).
    """
    import pvlib

    meas, clear = np.asarray(poa_wm2, float), np.asarray(clearsky_wm2, float)
    out = np.zeros(len(meas), bool)
    keys = _day_keys(poa_wm2.index)
    edges = np.r_[0, np.flatnonzero(np.diff(keys)) + 1, len(keys)]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m, c = meas[a:b], clear[a:b]
        sunny = (c > MIN_CLEARSKY_WM2) & ~np.isnan(m)
        if sunny.sum() < MIN_CLEAR_MINUTES:
            continue
        level = np.clip(np.quantile(m[sunny] / c[sunny], 0.9), *CLEAR_LEVEL_RANGE)
        index = poa_wm2.index[a:b]
        # pvlib 0.16 calls pandas APIs that pandas 3 deprecates: its warnings, not ours
        with np.errstate(invalid="ignore"), warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", RuntimeWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            found, _, alpha = pvlib.clearsky.detect_clearsky(
                pd.Series(m, index=index), pd.Series(c * level, index=index),
                return_components=True,
            )  # fmt: skip
        # the method fits its own scale (alpha) to the periods it finds: a smooth overcast day it
        # fits down to its level - a day whose clear sky ends outside the range has none, and a day
        # whose scale never settled (clouds every few minutes) none either
        settled = not any("converge" in str(w.message) for w in said)
        if settled and CLEAR_LEVEL_RANGE[0] <= level * alpha <= CLEAR_LEVEL_RANGE[1]:
            out[a:b] = np.asarray(found, bool) & sunny
    return pd.Series(out, index=poa_wm2.index, name="clear_sample")


def clearsky_ratio_per_day(poa_wm2: pd.Series, clearsky_wm2: pd.Series) -> pd.DataFrame:
    """Per day: the measured over the modelled POA insolation in the day's clear-sky periods
    (`clear_samples`) while the model is above MIN_CLEARSKY_WM2 (`ratio` [-]); the share of those
    sunny minutes that were clear (`clear_fraction`); whether the ratio is judged (`judged`: at least
    MIN_CLEAR_FRACTION and MIN_CLEAR_MINUTES clear), the variability index and whether the whole day
    was clear (`clear`). A partly cloudy day judges the sensor on its clear hours: its clouds do not
    read as a sensor 5 % low."""
    meas, clear = np.asarray(poa_wm2, float), np.asarray(clearsky_wm2, float)
    sunny = (clear > MIN_CLEARSKY_WM2) & ~np.isnan(meas)
    picked = clear_samples(poa_wm2, clearsky_wm2).to_numpy()
    frame = pd.DataFrame(
        {
            "m": np.where(picked, meas, np.nan),
            "c": np.where(picked, clear, np.nan),
            "n": picked.astype(float),
            "sunny": sunny.astype(float),
        },
        index=poa_wm2.index,
    )
    sums = frame.groupby(_day_keys(poa_wm2.index)).sum(min_count=1)
    out = pd.DataFrame({"ratio": sums["m"] / sums["c"]})
    out["clear_fraction"] = (sums["n"] / sums["sunny"].where(sums["sunny"] > 0)).fillna(0.0)
    out["judged"] = (out["clear_fraction"] >= MIN_CLEAR_FRACTION) & (sums["n"] >= MIN_CLEAR_MINUTES)
    out["variability_index"] = variability_index(poa_wm2, clearsky_wm2)
    out["clear"] = out["variability_index"] < CLEAR_VARIABILITY_MAX * out["ratio"].clip(lower=1.0)
    out.index = pd.to_datetime(out.index, utc=True)
    return out


def clearsky_deviation(
    poa_wm2: pd.Series,
    clearsky_wm2: pd.Series,
    tol: float = DEVIATION_TOL,
    days: pd.DataFrame | None = None,
) -> pd.Series:
    """POA samples of clear days more than `tol` off the modelled clear-sky POA: a drifting or dirty
    sensor (most of the day flagged) or a shaded one (the shaded hours flagged). Cloudy days are not
    judged (their deviation is weather).

    Parameters
    ----------
    poa_wm2 : Series
        Measured plane-of-array irradiance on a regular grid [W/m^2].
    clearsky_wm2 : Series
        Modelled clear-sky POA on the same index (`clearsky_poa_wm2`) [W/m^2].
    tol : float
        Accepted relative deviation [-].
    days : DataFrame, optional
        `clearsky_ratio_per_day` of the same series, when already computed.

    Returns
    -------
    Series of bool, same index as `poa_wm2`.
    """
    days = clearsky_ratio_per_day(poa_wm2, clearsky_wm2) if days is None else days
    keys = _day_keys(poa_wm2.index)
    clear_day = days["clear"].reindex(pd.to_datetime(keys, utc=True)).fillna(False).to_numpy(bool)
    meas, clear = np.asarray(poa_wm2, float), np.asarray(clearsky_wm2, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.abs(meas / clear - 1.0) > tol
    mask = clear_day & (clear > MIN_CLEARSKY_WM2) & off & ~np.isnan(meas)
    return pd.Series(mask, index=poa_wm2.index, name="clearsky_deviation")


def _centroid_h(values: np.ndarray, hours: np.ndarray, keys: np.ndarray) -> pd.Series:
    """Per day, the time of day of the curve's centre of mass [h]."""
    w = np.clip(np.nan_to_num(values), 0.0, None)
    frame = pd.DataFrame({"w": w, "wt": w * hours})
    sums = frame.groupby(keys).sum()
    return sums["wt"] / sums["w"].where(sums["w"] > 0)


def _solar_day_keys(index: pd.DatetimeIndex, longitude_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Each timestamp's mean solar day (midnight at the site's mean solar midnight: one day holds one
    whole daylight, wherever the site is) and its hour in that day [h]."""
    shifted = index + pd.Timedelta(hours=longitude_deg / 15.0)
    hours = ((shifted - shifted.floor("D")).total_seconds() / 3600.0).to_numpy()
    return _day_keys(shifted), hours


def noon_offset_min(
    signal: pd.Series, clearsky_wm2: pd.Series, longitude_deg: float, days: int = SHIFT_DAYS
) -> pd.Series:
    """Per solar day, how many minutes the signal's centre of mass (POA or AC power) lies after the
    modelled clear-sky POA's, as the median over `days` days centred on it [min]. A logger that kept
    its summer offset shows about +60 (pvanalytics `quality.time` compares solar noon the same way).

    Days are mean solar days at `longitude_deg` [°, east positive], not UTC days: in Honolulu or Tokyo
    a UTC midnight falls in daylight, and a centre of mass of an afternoon and the next morning moved
    ±14 min with the clouds. A day whose daylight the series does not hold whole (the window's first
    and last) or covers less than MIN_DAYLIGHT_COVER of has no noon (NaN). Indexed by the solar day's
    date (UTC midnight of that date)."""
    keys, hours = _solar_day_keys(signal.index, longitude_deg)
    values, clear = np.asarray(signal, float), np.asarray(clearsky_wm2, float)
    measured = _centroid_h(values, hours, keys)
    modelled = _centroid_h(clear, hours, keys)
    # a day whose daylight the signal does not cover has no noon to compare (the demo's live day
    # from 18:30 UTC in Sao Paulo: a "noon" of the late afternoon, +246 min)
    daylight = pd.Series(clear > MIN_CLEARSKY_WM2)
    covered = (daylight & ~np.isnan(values)).groupby(keys).sum()
    ends_dark = ~daylight.groupby(keys).first() & ~daylight.groupby(keys).last()
    measured = measured.where(
        (covered >= MIN_DAYLIGHT_COVER * daylight.groupby(keys).sum()) & ends_dark
    )
    offset = ((measured - modelled) * 60.0).rolling(days, center=True, min_periods=1).median()
    offset.index = pd.to_datetime(offset.index, utc=True)
    return offset.rename("noon_offset_min")


def clock_shift(
    signal: pd.Series,
    clearsky_wm2: pd.Series,
    longitude_deg: float,
    tol_min: float = SHIFT_TOL_MIN,
) -> pd.Series:
    """Samples of solar days whose timestamps are shifted against solar position by more than
    `tol_min` minutes (`noon_offset_min`). Needs no irradiance sensor: AC power works as the signal.

    Returns
    -------
    Series of bool, same index as `signal`.
    """
    offset = noon_offset_min(signal, clearsky_wm2, longitude_deg)
    keys = pd.to_datetime(_solar_day_keys(signal.index, longitude_deg)[0], utc=True)
    shifted = (offset.abs() > tol_min).reindex(keys).fillna(False).to_numpy(bool)
    return pd.Series(shifted, index=signal.index, name="clock_shift")
