"""IEC 61724-1 yields and performance ratio. Pure functions: scalars, arrays or Series alike."""

from __future__ import annotations

import numpy as np

from pv_platform.kpi.numeric import ratio

G_STC_KW_M2 = 1.0  # irradiance at standard test conditions [kW/m^2]


def reference_yield_h(insolation_poa_kwh_m2, g_stc_kw_m2=G_STC_KW_M2):
    """Reference yield Y_r = H_poa / G_stc [h] (IEC 61724-1).

    insolation_poa_kwh_m2 : plane-of-array insolation in the period [kWh/m^2]
    g_stc_kw_m2 : irradiance at STC [kW/m^2], 1.0
    """
    return np.divide(insolation_poa_kwh_m2, g_stc_kw_m2)


def final_yield_h(energy_ac_kwh, p_dc_stc_kw):
    """Final (specific) yield Y_f = E_ac / P_0 [h, i.e. kWh/kWp] (IEC 61724-1).

    energy_ac_kwh : AC energy delivered in the period [kWh]
    p_dc_stc_kw : DC nameplate power at STC [kW]
    """
    return np.divide(energy_ac_kwh, p_dc_stc_kw)


def performance_ratio(energy_ac_kwh, insolation_poa_kwh_m2, p_dc_stc_kw, g_stc_kw_m2=G_STC_KW_M2):
    """Performance ratio PR = Y_f / Y_r [-] (IEC 61724-1). NaN where there was no sun (Y_r = 0).

    energy_ac_kwh : AC energy delivered in the period [kWh]
    insolation_poa_kwh_m2 : plane-of-array insolation in the period [kWh/m^2]
    p_dc_stc_kw : DC nameplate power at STC [kW]
    """
    yf = final_yield_h(energy_ac_kwh, p_dc_stc_kw)
    yr = reference_yield_h(insolation_poa_kwh_m2, g_stc_kw_m2)
    return ratio(yf, yr)
