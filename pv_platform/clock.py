"""The platform's "now": the wall clock, or an accelerated simulated clock (a simulated day in seconds)
for tests and demos. Every reading stamp, the simulator's physics, the real-time alert rules and the
Dagster side's notion of "the running hour" go through `now()`.

Set by `PVP_CLOCK_START` (ISO-8601, UTC), `PVP_CLOCK_SPEED` (simulated seconds per real second) and
`PVP_CLOCK_ANCHOR` (the wall-clock Unix time at which simulated time was `PVP_CLOCK_START`). With an anchor
every process - simulator, collector, Dagster daemon and its runs - reads the same simulated time whenever
it started. Without one, the first process anchors the clock and writes it to `<landing>/clock.json`; every
process started later with the same start and speed reads that anchor (the file is kept fresh by the
processes using it and ignored once stale), so `pvp simulate` and `pvp collect` started side by side agree.
(Before, each process anchored its own clock when its imports were done: the simulator imports pvlib and
pymodbus first, so it ran seconds x speed behind the collector - 14 simulated minutes at 60x.)
Simulated time must stay in the past: readings stamped in the future are refused.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_FILE = "clock.json"
HEARTBEAT_S = 5.0  # a process using a shared clock touches its file this often ...
STALE_AFTER_S = 30.0  # ... and a file not touched for this long belongs to no running process


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


def speed() -> float:
    """Platform seconds per wall second (1.0 on the wall clock)."""
    return _clock.speed


# the newest readings may not have been loaded yet: the running hour is judged up to this long ago ...
INGEST_LAG_S = 300.0
# ... and in an accelerated run at least this much wall time: a landing segment waits for the
# sensor's tick and an ingest run to launch (30 wall s seen on 2 loaded cores: 15 minutes at 30x)
INGEST_LAG_WALL_S = 60.0


def ingest_lag_s(speed: float | None = None) -> float:
    """How far behind `now` readings may still be on their way to the database [s of platform time]:
    INGEST_LAG_S, and at least INGEST_LAG_WALL_S of wall time at `speed` platform seconds per wall
    second (None: this process's clock)."""
    return max(INGEST_LAG_S, INGEST_LAG_WALL_S * (_clock.speed if speed is None else speed))


def wall_s(platform_s: float) -> float:
    """Wall seconds that `platform_s` seconds of platform time take (a wait, a back-off) [s]."""
    return platform_s / _clock.speed


def _read_anchor(path: Path, start: datetime, speed: float) -> float | None:
    try:
        held = json.loads(path.read_text())
        fresh = time.time() - path.stat().st_mtime <= STALE_AFTER_S
    except (OSError, ValueError):
        return None
    same = held.get("start") == start.isoformat() and float(held.get("speed", 0)) == speed
    return float(held["anchor"]) if same and fresh and "anchor" in held else None


def shared_anchor(folder: Path, start: datetime, speed: float) -> float:
    """The anchor of the accelerated clock that processes on this landing already use (same start and
    speed, file fresh), or a new one (now) written to `folder/clock.json` for those that start later.
    Created atomically (link of a complete file): two processes starting at once agree."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLOCK_FILE
    for _ in range(3):
        anchor = _read_anchor(path, start, speed)
        if anchor is not None:
            return anchor
        anchor = time.time()
        tmp = folder / f".{CLOCK_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps({"start": start.isoformat(), "speed": speed, "anchor": anchor}))
        try:
            if path.exists():
                path.unlink()  # stale, or another start/speed: this run's clock replaces it
            os.link(tmp, path)
            return anchor
        except FileExistsError:
            continue  # another process wrote it between our look and our write: read theirs
        finally:
            tmp.unlink(missing_ok=True)
    raise RuntimeError(f"cannot settle the shared clock in {path}")


def _held_clock(path: Path) -> Clock | None:
    """The accelerated clock described by a fresh `clock.json`, or None."""
    try:
        held = json.loads(path.read_text())
        if time.time() - path.stat().st_mtime > STALE_AFTER_S:
            return None
        return Clock(
            datetime.fromisoformat(held["start"]), float(held["speed"]), float(held["anchor"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


_followed: dict[str, tuple[float, Clock | None]] = {}


def shared_clock(folder: Path | str) -> Clock:
    """The platform clock as a process outside the run sees it (the dashboards): this process's own
    when it is accelerated, else the one the running simulator, collector and Dagster share through
    `folder/clock.json` while they keep it fresh, else the wall clock. Re-read at most once a second."""
    if _clock.accelerated:
        return _clock
    key = str(folder)
    read_at, held = _followed.get(key, (0.0, None))
    if time.monotonic() - read_at > 1.0:
        held = _held_clock(Path(folder) / CLOCK_FILE)
        _followed[key] = (time.monotonic(), held)
    return held or _clock


def _keep_fresh(path: Path, anchor: float) -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        try:
            if float(json.loads(path.read_text())["anchor"]) == anchor:
                os.utime(path)
        except (OSError, ValueError, KeyError):
            pass


def use_settings(settings, start: datetime | None = None, speed: float | None = None) -> Clock:
    """The clock the settings (or the `pvp simulate` flags) describe, made this process's clock:
    PVP_CLOCK_START/SPEED with PVP_CLOCK_ANCHOR, or else the anchor shared through the landing folder."""
    start, speed = start or settings.clock_start, speed or settings.clock_speed
    if start is None and speed == 1.0:
        return set_clock()
    anchor = settings.clock_anchor
    if anchor is None and start is not None:
        path = Path(settings.resolved_landing_dir)
        anchor = shared_anchor(path, start, speed)
        threading.Thread(
            target=_keep_fresh, args=(path / CLOCK_FILE, anchor), daemon=True, name="clock"
        ).start()
    return set_clock(start, speed, anchor)
