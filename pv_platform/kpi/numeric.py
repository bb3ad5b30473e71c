"""The one safe division of the KPI layer."""

from __future__ import annotations

import numpy as np


def ratio(numerator, denominator):
    """numerator / denominator where the denominator is > 0, NaN elsewhere (no sun, no expected energy,
    no time): a KPI of nothing is missing, never infinite or a warning. Scalars in, a float out; arrays
    or Series in, an ndarray out.

    >>> ratio(3.0, 4.0), ratio(1.0, 0.0)
    (0.75, nan)
    >>> ratio([1.0, 2.0], [2.0, 0.0])
    array([0.5, nan])
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / den, np.nan)
    return float(out) if out.ndim == 0 else out
