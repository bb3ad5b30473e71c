"""Capacity factor."""

from __future__ import annotations

import numpy as np

from pv_platform.kpi.numeric import ratio


def capacity_factor(energy_kwh, p_rated_kw, period_h):
    """CF = E / (P_rated · hours) [-].

    energy_kwh : energy in the period [kWh]
    p_rated_kw : AC rating (AC capacity factor) or DC nameplate (DC capacity factor) [kW]
    period_h : length of the period [h] (24 for a day; 8760/8784 for a year)
    """
    return ratio(energy_kwh, np.multiply(p_rated_kw, period_h))
