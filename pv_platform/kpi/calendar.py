"""Site-local periods: which UTC instants a local day, month or year spans, and which periods an hour
belongs to. Pure functions of time; the Dagster sensors and assets use them to pick partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# partition dimension of each rollup grain, and the key format of a site-local period start
PERIOD_KEY_FORMAT = {"date": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y"}


def local_window(period_key: str, grain: str, tz: str) -> tuple[datetime, datetime]:
    """The site-local [start, end) of a daily/monthly/yearly period key, as UTC instants.

    >>> local_window("2026-10-25", "daily", "Europe/Zurich")[1] - local_window(
    ...     "2026-10-25", "daily", "Europe/Zurich")[0]
    datetime.timedelta(days=1, seconds=3600)
    """
    zone = ZoneInfo(tz)
    first = datetime.strptime(period_key, "%Y" if grain == "yearly" else "%Y-%m-%d")
    if grain == "daily":
        nxt = first + timedelta(days=1)
    elif grain == "monthly":
        nxt = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    else:
        nxt = first.replace(year=first.year + 1)
    return first.replace(tzinfo=zone).astimezone(UTC), nxt.replace(tzinfo=zone).astimezone(UTC)


def expected_hours(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """The UTC hours starting in [start, end) that have begun by `now` (a running period: the hours so
    far). Hour partitions are whole UTC hours: in a zone at a half-hour offset (Asia/Kolkata) a local day
    holds the 24 UTC hours that start in it."""
    hours = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    hour += timedelta(hours=1) if hour < start else timedelta(0)
    while hour < end and hour <= now:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def periods_for_hours(hours: list[datetime], timezone: str) -> dict[str, set[str]]:
    """The site-local day, month and year keys that contain each UTC hour (an hour is in one local
    day), by partition dimension ("date", "month", "year")."""
    zone = ZoneInfo(timezone)
    out: dict[str, set[str]] = {dim: set() for dim in PERIOD_KEY_FORMAT}
    for hour in hours:
        local = hour.astimezone(zone)
        for dim, fmt in PERIOD_KEY_FORMAT.items():
            out[dim].add(local.strftime(fmt))
    return out


def closed_period(now: datetime, timezone: str, dim: str) -> str | None:
    """The key of the local day ("date") or month ("month") that ended in the hour before `now`, if one
    did. Comparing dates, not reading the clock's 00:xx, also closes days in zones whose DST change skips
    local midnight (America/Santiago: 23:59 is followed by 01:00)."""
    zone = ZoneInfo(timezone)
    local, before = now.astimezone(zone), (now - timedelta(hours=1)).astimezone(zone)
    changed = (
        local.date() != before.date()
        if dim == "date"
        else (local.year, local.month) != (before.year, before.month)
    )
    return before.strftime(PERIOD_KEY_FORMAT[dim]) if changed else None
