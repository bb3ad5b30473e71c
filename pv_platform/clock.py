"""The platform's "now": the wall clock, or an accelerated simulated clock (a simulated day in seconds)
for tests and demos. Every reading stamp, and the simulator's physics, go through `now()`.

Set by `PVP_CLOCK_START` (ISO-8601, UTC) and `PVP_CLOCK_SPEED` (simulated seconds per real second), read by
`pvp simulate` and `pvp collect` alike so both sides agree. Simulated time must stay in the past: readings
stamped in the future are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Clock:
    start: datetime | None = (
        None  # simulated time at the moment the clock was made; None: wall clock
    )
    speed: float = 1.0
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def now(self) -> datetime:
        if self.start is None and self.speed == 1.0:
            return datetime.now(UTC)
        base = self.start or datetime.now(UTC)
        return base + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    @property
    def accelerated(self) -> bool:
        return self.start is not None or self.speed != 1.0


_clock = Clock()


def now() -> datetime:
    """The current (possibly simulated) UTC time."""
    return _clock.now()


def set_clock(start: datetime | None = None, speed: float = 1.0) -> Clock:
    """Switch the process to a simulated clock starting now at `start`, `speed` times faster (or back to
    the wall clock with no arguments)."""
    global _clock
    if speed <= 0:
        raise ValueError(f"PVP_CLOCK_SPEED must be > 0, got {speed}")
    if start is not None and start.tzinfo is None:
        raise ValueError("PVP_CLOCK_START needs a time zone, e.g. 2026-06-21T04:00:00Z")
    _clock = Clock(start, speed)
    return _clock
