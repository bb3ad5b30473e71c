"""Expected AC power from pvlib (PVWatts DC with temperature, PVWatts inverter with clipping).

pvlib is imported inside the functions that use it: a Dagster run that computes no KPI (most are
ingest runs) does not load it and scipy (1.5-3 s of each run's start)."""

from __future__ import annotations

import numpy as np

from pv_platform.kpi.numeric import ratio

ETA_INV_NOM = 0.96  # PVWatts nominal inverter efficiency [-]


def array_dc_power_w(
    poa_wm2, t_cell_c, p_dc_stc_kw: float, gamma_pdc_per_c: float, dc_loss_fraction: float
):
    """DC power of an array [W]: pvlib `pvwatts_dc` (P_0 · G/1000 · (1 + γ (T_cell − 25))) less
    `dc_loss_fraction` (wiring, mismatch, soiling allowance), never negative."""
    import pvlib

    p_dc_w = pvlib.pvsystem.pvwatts_dc(poa_wm2, t_cell_c, p_dc_stc_kw * 1000.0, gamma_pdc_per_c)
    return np.clip(np.asarray(p_dc_w, dtype=float) * (1.0 - dc_loss_fraction), 0.0, None)


def expected_ac_power_w(
    poa_wm2,
    t_cell_c,
    p_dc_stc_kw: float,
    p_ac_kw: float,
    gamma_pdc_per_c: float,
    dc_loss_fraction: float = 0.03,
    eta_inv_nom: float = ETA_INV_NOM,
):
    """Expected AC power [W] of an inverter and its array.

    DC: pvlib `pvwatts_dc` (P_0 · G/1000 · (1 + γ (T_cell − 25))) less `dc_loss_fraction` (wiring,
    mismatch, soiling allowance). AC: pvlib `inverter.pvwatts` with pdc0 = P_ac / η_nom, which clips
    at the AC rating.
    """
    import pvlib

    p_dc_w = array_dc_power_w(poa_wm2, t_cell_c, p_dc_stc_kw, gamma_pdc_per_c, dc_loss_fraction)
    p_ac_w = pvlib.inverter.pvwatts(p_dc_w, p_ac_kw * 1000.0 / eta_inv_nom, eta_inv_nom)
    return np.clip(np.nan_to_num(np.asarray(p_ac_w, dtype=float)), 0.0, None)


def deviation_fraction(actual_kwh, expected_kwh):
    """(actual − expected) / expected [-]; NaN when nothing was expected."""
    return ratio(np.subtract(actual_kwh, expected_kwh), expected_kwh)


def clipping_loss_w(
    poa_wm2,
    t_cell_c,
    p_dc_stc_kw: float,
    p_ac_kw: float,
    gamma_pdc_per_c: float,
    dc_loss_fraction: float = 0.03,
    eta_inv_nom: float = ETA_INV_NOM,
    eta_inv_ref: float = 0.9637,
):
    """AC power the model's inverter clips away [W]: the PVWatts inverter's output without its AC limit,
    less the limit, where positive; the same DC model as `expected_ac_power_w`, so
    expected + clipping loss is the unclipped expected power.

    References
    ----------
    Dobos, A. P. (2014). PVWatts Version 5 Manual, NREL/TP-6A20-62641 (pvlib `inverter.pvwatts`).
    """
    p_dc_w = array_dc_power_w(poa_wm2, t_cell_c, p_dc_stc_kw, gamma_pdc_per_c, dc_loss_fraction)
    pdc0_w = p_ac_kw * 1000.0 / eta_inv_nom
    zeta = p_dc_w / pdc0_w
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = (
            eta_inv_nom
            / eta_inv_ref
            * (-0.0162 * zeta - np.where(zeta > 0, 0.0059 / zeta, 0.0) + 0.9858)
        )
    unclipped_w = np.clip(np.nan_to_num(eta * p_dc_w), 0.0, None)
    return np.clip(unclipped_w - p_ac_kw * 1000.0, 0.0, None)
