"""Grid export: energy exported and imported, time outside frequency and voltage bands, power factor."""

from __future__ import annotations

import numpy as np


def seconds_outside_band(interval_means_, low: float, high: float, interval_s: float) -> float:
    """Seconds whose mean value lay outside [low, high] (intervals without data are not counted) [s]."""
    v = np.asarray(interval_means_, dtype=float)
    return float(np.sum((v < low) | (v > high)) * interval_s)


def power_factor(active_energy_kwh, reactive_energy_kvarh):
    """Energy-weighted power factor |P| / sqrt(P² + Q²) over a period [-]; NaN without energy."""
    p, q = np.abs(active_energy_kwh), np.abs(reactive_energy_kvarh)
    s = np.hypot(p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, p / s, np.nan)[()]
