"""Is a flat signal stuck? A measurement that holds one value in daylight is a frozen sensor unless
its flatness is natural: a coarse register that moves by single steps (`moves_at_resolution`), or
peers of the same quantity at its site that held still with it (`peers_held_still`)."""

from __future__ import annotations

import numpy as np

from pv_platform.kpi.samples import EntityKey


def peers_held_still(
    samples, key: EntityKey, start_us: int, end_us: int, resolution: float = 0.0
) -> bool:
    """Did the other devices of `key`'s site that measure its quantity hold still too over the second
    half of `key`'s flat stretch [start, end] [µs], to within `key`'s `resolution`? A peer moved when
    its values there span more than two steps of it (one step is crossed by one sensor and not by its
    neighbour by chance, where the quantization falls; resolution 0: any change). True when at least
    one of them reported there and none moved: every inverter's cabinet temperature flat together (one
    weather, all clipping at noon), or drifting less than the 0.1 degree steps of a model-103 register,
    is the plant's physics, not a stuck sensor. False with no such peer reporting.

    samples : anything with `arrays(key)` and iteration over its keys (a `SampleSet`)
    """
    mid, reported = start_us + (end_us - start_us) // 2, False
    for other in samples:
        if other == key or other[0] != key[0] or other[2] != key[2]:
            continue
        ts, v = samples.arrays(other)
        first, last = np.searchsorted(ts, [mid, end_us], side="right")  # samples in (mid, end]
        if last > first:
            reported = True
            seen = v[max(first - 1, 0) : last]  # with the value before: a change at `mid` counts
            span = float(seen.max() - seen.min())
            if span > max(2 * resolution * (1 + 1e-6), 0.0):
                return False
    return reported


def resolution_of(values: np.ndarray) -> float:
    """The smallest change between consecutive values (0 when none changes): a register's step.

    >>> round(resolution_of(np.array([26.6, 26.5, 26.5, 25.6])), 9), resolution_of(np.array([3.0, 3.0]))
    (0.1, 0.0)
    """
    steps = np.abs(np.diff(values))
    steps = steps[steps > 0]
    return float(steps.min()) if len(steps) else 0.0


def moves_at_resolution(values: np.ndarray) -> bool:
    """Does a signal move by single steps of a coarse resolution (a cabinet temperature read in whole
    degrees): every value on the grid of its smallest change, most changes one step (no change at all:
    whole numbers)? Such a signal is flat for long stretches by nature; a stuck value says nothing.

    >>> moves_at_resolution(np.array([41.0, 41.0, 42.0, 42.0, 42.0, 43.0, 42.0]))
    True
    >>> moves_at_resolution(np.array([600.0, 600.5, 601.25, 601.5, 601.5, 601.5]))
    False
    >>> moves_at_resolution(np.array([44.0] * 60)), moves_at_resolution(np.array([950.218] * 60))
    (True, False)
    """
    quantum = resolution_of(values)
    if quantum == 0:  # no step seen: whole numbers are a coarse resolution's
        return bool(len(values) and np.all(values == np.round(values)))
    steps = np.abs(np.diff(values))
    steps = steps[steps > 0]
    on_grid = np.allclose(values / quantum, np.round(values / quantum), rtol=0.0, atol=1e-6)
    return bool(on_grid and np.median(steps) <= 1.5 * quantum)
