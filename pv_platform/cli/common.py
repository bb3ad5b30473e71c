"""Helpers shared by the commands: signals, time flags, the accelerated clock, serving."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from datetime import UTC, datetime


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def utc_time(text: str) -> datetime:
    """An ISO time for a flag; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time (2026-11-01T00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def use_clock(settings, start=None, speed=None) -> None:
    """Accelerated time from settings (or the simulate flags): the same clock on both sides."""
    from pv_platform.clock import use_settings

    clock = use_settings(settings, start, speed)
    if clock.accelerated:
        print(
            f"accelerated time: {clock.speed:g}x, now {clock.now():%Y-%m-%d %H:%M:%S} UTC"
            f" (PVP_CLOCK_ANCHOR={clock.anchor:.3f})",
            flush=True,
        )


def clock_flags(p: argparse.ArgumentParser) -> None:
    """--start/--speed, the same on `pvp simulate` and `pvp collect` (they then share one clock)."""
    p.add_argument(
        "--speed",
        type=float,
        help="accelerated time: simulated seconds per second (PVP_CLOCK_SPEED)",
    )
    p.add_argument(
        "--start",
        type=lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")),
        help="accelerated time: simulated UTC start, e.g. 2026-06-21T04:00Z (PVP_CLOCK_START)",
    )


def serve_until_stopped(server, db) -> int:
    """Serve until SIGTERM or Ctrl-C, then close the server and the database pool."""
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        db.dispose()
    return 0
