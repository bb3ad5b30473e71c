"""Grid export: energy exported and imported, time outside frequency and voltage bands, power factor."""

from __future__ import annotations

import numpy as np

from pv_platform.kpi.numeric import ratio


def seconds_outside_band(interval_mean_values, low: float, high: float, interval_s: float) -> float:
    """Seconds whose mean value lay outside [low, high] (intervals without data are not counted) [s]."""
    v = np.asarray(interval_mean_values, dtype=float)
    return float(np.sum((v < low) | (v > high)) * interval_s)


def power_factor(active_energy_kwh, reactive_energy_kvarh):
    """Energy-weighted power factor |P| / sqrt(P² + Q²) over a period [-]; NaN without energy."""
    p, q = np.abs(active_energy_kwh), np.abs(reactive_energy_kvarh)
    s = np.hypot(p, q)
    return ratio(p, s)
