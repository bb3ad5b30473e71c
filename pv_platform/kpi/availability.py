"""Availability per IEC 61724-1 / IEC TS 63019 categories, time-based and energy-based.

Each interval of an inverter falls in one category:
- `night`: POA below the daylight threshold (out of environmental specification, excluded);
- `no_data`: daylight, but no reading from the inverter (information unavailable, excluded);
- `grid_outage`: daylight, grid out of band (out of electrical specification, excluded, reported);
- `planned`: daylight, not producing, inside a maintenance window (scheduled maintenance, reported apart);
- `operating`: daylight and producing;
- `forced_outage`: daylight, not producing, none of the above (counts as downtime).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pv_platform.kpi.numeric import ratio

CATEGORIES = ("night", "no_data", "grid_outage", "planned", "operating", "forced_outage")
DAYLIGHT_POA_WM2 = 50.0  # below this, inverters legitimately wait for the sun (morning start, dusk)


def category_codes(
    poa_wm2,
    ac_power_w,
    planned=None,
    grid_outage=None,
    daylight_poa_wm2: float = DAYLIGHT_POA_WM2,
    producing_w: float = 1.0,
) -> np.ndarray:
    """The category of each interval as an index into CATEGORIES (int8), from mean POA [W/m^2], mean AC
    power [W] (NaN: no data), and boolean maintenance-window and grid-outage flags. The first rule that
    applies wins: night, no data, grid outage, planned, operating, else forced outage."""
    poa = np.asarray(poa_wm2, dtype=float)
    power = np.asarray(ac_power_w, dtype=float)
    planned = np.zeros(poa.shape, bool) if planned is None else np.asarray(planned, bool)
    grid = np.zeros(poa.shape, bool) if grid_outage is None else np.asarray(grid_outage, bool)
    producing = power > producing_w  # False for NaN
    codes = np.full(poa.shape, CATEGORIES.index("forced_outage"), np.int8)
    rules = [  # applied last to first, so the first rule that applies is the one left
        (producing, "operating"),
        (planned & ~producing, "planned"),
        (grid & ~producing, "grid_outage"),
        (np.isnan(power), "no_data"),
        (~(poa >= daylight_poa_wm2), "night"),  # NaN POA is night, as no sunlight was measured
    ]
    for mask, category in rules:
        codes[mask] = CATEGORIES.index(category)
    return codes


def classify_intervals(
    poa_wm2,
    ac_power_w,
    planned=None,
    grid_outage=None,
    daylight_poa_wm2: float = DAYLIGHT_POA_WM2,
    producing_w: float = 1.0,
) -> np.ndarray:
    """The category name of each interval (array of strings); see `category_codes`."""
    codes = category_codes(poa_wm2, ac_power_w, planned, grid_outage, daylight_poa_wm2, producing_w)
    return np.asarray(CATEGORIES)[codes]


def category_seconds(categories, interval_s: float) -> dict[str, float]:
    """Seconds spent in each category."""
    cats = pd.Series(np.asarray(categories))
    counts = cats.value_counts()
    return {c: float(counts.get(c, 0)) * interval_s for c in CATEGORIES}


def time_based_availability(operating_s, forced_outage_s):
    """Operating time over the time it should have operated [-]:
    operating / (operating + forced outage), i.e. daylight less no-data, grid-outage and planned time.
    NaN when there was no such time."""
    denominator = np.add(operating_s, forced_outage_s)
    return ratio(operating_s, denominator)


def energy_based_availability(energy_actual_kwh, energy_lost_kwh):
    """1 − E_lost / (E_actual + E_lost) [-]; E_lost is the expected energy of forced-outage intervals."""
    total = np.add(energy_actual_kwh, energy_lost_kwh)
    return 1.0 - ratio(energy_lost_kwh, total)
