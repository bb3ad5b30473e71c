"""The platform's "now": the wall clock, or an accelerated simulated clock (a simulated day in seconds)
for tests and demos. Every reading stamp, the simulator's physics, the real-time alert rules and the
Dagster side's notion of "the running hour" go through `now()`.

Set by `PVP_CLOCK_START` (ISO-8601, UTC), `PVP_CLOCK_SPEED` (simulated seconds per real second) and
`PVP_CLOCK_ANCHOR` (the wall-clock Unix time at which simulated time was `PVP_CLOCK_START`). With an anchor
every process - simulator, collector, Dagster daemon and its runs - reads the same simulated time whenever
it started; without one each process starts its own clock at `PVP_CLOCK_START` (two processes started
seconds apart then differ by seconds x speed). Simulated time must stay in the past: readings stamped in
the future are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Clock:
    start: datetime | None = None  # simulated time at `anchor`; None: wall clock
    speed: float = 1.0
    anchor: float = field(
        default_factory=time.time
    )  # wall-clock Unix time at which it read `start`

    def now(self) -> datetime:
        if self.start is None and self.speed == 1.0:
            return datetime.now(UTC)
        base = self.start or datetime.fromtimestamp(self.anchor, UTC)
        return base + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    @property
    def accelerated(self) -> bool:
        return self.start is not None or self.speed != 1.0


_clock = Clock()


def now() -> datetime:
    """The current (possibly simulated) UTC time."""
    return _clock.now()


def set_clock(
    start: datetime | None = None, speed: float = 1.0, anchor: float | None = None
) -> Clock:
    """Switch the process to a simulated clock that reads `start` at wall time `anchor` (default: now) and
    runs `speed` times faster (or back to the wall clock with no arguments)."""
    global _clock
    if speed <= 0:
        raise ValueError(f"PVP_CLOCK_SPEED must be > 0, got {speed}")
    if start is not None and start.tzinfo is None:
        raise ValueError("PVP_CLOCK_START needs a time zone, e.g. 2026-06-21T04:00:00Z")
    _clock = Clock(start, speed, time.time() if anchor is None else anchor)
    return _clock


def use_settings(settings) -> Clock:
    """The clock the settings describe (PVP_CLOCK_START/SPEED/ANCHOR), made this process's clock."""
    if settings.clock_start is None and settings.clock_speed == 1.0:
        return set_clock()
    return set_clock(settings.clock_start, settings.clock_speed, settings.clock_anchor)
