"""Watchdog of `pvp demo`: when the demo process ends by any means - Ctrl-C, SIGTERM or kill -9 - stop
every process group it started and its embedded PostgreSQL, so nothing is left running.

Started by the demo in a session of its own (a signal to the demo's group does not reach it); reads the
process groups from a file the demo appends to as it starts children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_groups(pgids: list[int], grace_s: float = 10.0) -> None:
    """SIGTERM every group, then SIGKILL what is still there after `grace_s`."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_group_alive(g) for g in pgids):
        time.sleep(0.2)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def stop_postgres(pgdata: Path, grace_s: float = 20.0) -> None:
    """Fast shutdown (SIGINT) of the postmaster whose pid is in pgdata/postmaster.pid."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGQUIT)


def main(argv: list[str]) -> int:
    parent, groups_file = int(argv[0]), Path(argv[1])
    pgdata = Path(argv[2]) if len(argv) > 2 and argv[2] else None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the demo's end ends the watch
    while _alive(parent) and os.getppid() == parent:
        time.sleep(0.5)
    pgids = []
    if groups_file.exists():
        pgids = [int(line) for line in groups_file.read_text().split() if line.strip().isdigit()]
    stop_groups(pgids)
    if pgdata is not None:
        stop_postgres(pgdata)
    groups_file.unlink(missing_ok=True)  # its ids mean nothing once these processes are gone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
