"""Which hours and periods to (re)compute now: pure bookkeeping over storage ids and attempt books, used by
the KPI sensors (kept apart from them so it is tested without a Dagster instance).

Hours: an hour whose newest `telemetry` report is newer than its newest `hourly_kpis` materialization
(new hours, late data, a run that failed) is due, contiguous hours together in one run of up to
MAX_HOURS_PER_RUN; an hour whose run failed is retried with a growing delay (RETRY_BASE_S doubling up to
RETRY_MAX_S); the running hour, whose telemetry changes with every ingest, at most every live interval.
Periods: a site-local day, month or year stays pending until a run requested for its newest hours
materializes it; failed runs are retried the same way, at most MAX_ATTEMPTS times per change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pv_platform.defs.partitions import HOUR_KEY_FORMAT

MAX_HOURS_PER_RUN = 48
NO_OPEN_HOUR = (
    "~"  # `due_hours`' open hour for history: sorts after every hour key, so none is live
)
RETRY_BASE_S, RETRY_MAX_S = 30.0, 600.0
MAX_ATTEMPTS = 6  # failed runs per change of a period, before it waits for its hours to change


def retry_delay_s(failures: int) -> float:
    """How long to wait before requesting again after `failures` failed runs [s]: none before the
    first run, then RETRY_BASE_S doubling, at most RETRY_MAX_S (hourly and rollup runs alike)."""
    return 0.0 if failures <= 0 else min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (failures - 1))


def hour_of(key: str) -> datetime:
    return datetime.strptime(key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)


def hour_key(hour: datetime) -> str:
    return hour.strftime(HOUR_KEY_FORMAT)


def hours_between(first: str, last: str) -> list[str]:
    """Every hour key from `first` to `last`, both included."""
    a, b = hour_of(first), hour_of(last)
    return [hour_key(a + timedelta(hours=i)) for i in range(int((b - a) / timedelta(hours=1)) + 1)]


def contiguous_ranges(keys, longest: int | None = MAX_HOURS_PER_RUN) -> list[tuple[str, str]]:
    """Sorted hour keys as (first, last) ranges of consecutive hours, each at most `longest` hours
    (None: as long as they run; a sensor cursor holds a year of hours as a few ranges)."""
    ranges: list[tuple[str, str]] = []
    length = 0  # of the newest range [h]
    previous = None
    for key in sorted(keys):
        hour = hour_of(key)
        joins = previous is not None and hour - previous == timedelta(hours=1)
        if joins and (longest is None or length < longest):
            ranges[-1] = (ranges[-1][0], key)
            length += 1
        else:
            ranges.append((key, key))
            length = 1
        previous = hour
    return ranges


def due_hours(
    telemetry: Mapping[str, int],
    computed: Mapping[str, int],
    running: set[str],
    attempts: Mapping[str, list],
    now_s: float,
    open_hour: str,
    live_interval_s: float,
) -> tuple[list[str], dict[str, list]]:
    """The hours to request now, and the new attempt book {hour: [attempts, last request time [s],
    telemetry storage id then]}.

    telemetry, computed : newest storage id per hour partition of `telemetry` and of `hourly_kpis`
    running : hours in a queued or running KPI run
    open_hour : key of the hour the platform clock is in: it, later hours and the hour before it
        change with every ingest (the running hour's first 15 minutes touch the hour before: the
        KPIs interpolate across the edge), so they wait `live_interval_s` between runs
    """
    book: dict[str, list] = {}
    due: list[str] = []
    live_from = (
        open_hour
        if open_hour == NO_OPEN_HOUR
        else hour_key(hour_of(open_hour) - timedelta(hours=1))
    )
    for key, telemetry_id in telemetry.items():
        if computed.get(key, -1) > telemetry_id:  # computed from its newest telemetry
            if key >= live_from and key in attempts:
                book[key] = attempts[key]  # its last request paces the next live run
            continue
        previous = attempts.get(key)
        if key in running:
            if previous:
                book[key] = previous
            continue
        wait = 0.0
        n = 0
        if previous:
            n, last_s, telemetry_then = previous
            if telemetry_then == telemetry_id:  # same data, still not computed: that run failed
                wait = retry_delay_s(max(1, n))
            else:
                n = 0  # new data since: not a failure
            if key >= live_from:
                wait = max(wait, live_interval_s)
            if now_s - last_s < wait:
                book[key] = previous
                continue
        due.append(key)
        book[key] = [n + 1, now_s, telemetry_id]
    return sorted(due), book


def due_periods(
    pending: dict[str, list],
    materialized: dict[str, int],
    active: set[str],
    now_s: float,
) -> tuple[list[str], dict[str, list], list[str]]:
    """Which periods to request now: (due, new pending book, given up).

    pending : period -> [trigger, requested_for, last request time [s], attempts, materialized then,
        *anything the caller keeps with it (carried along unchanged)];
        `trigger` is the storage id of the newest hourly materialization in the period, `requested_for`
        the trigger the latest request was made for (a run reads every hour up to it), and the last
        the period's newest materialization when that request was made (done needs a newer one)
    materialized : period -> storage id of its newest materialization
    active : periods with a queued or running run
    A period is done once materialized after its trigger by a run requested for that trigger; a run that
    failed is requested again after RETRY_BASE_S, doubling, at most MAX_ATTEMPTS times per trigger.
    """
    due, book, given_up = [], {}, []
    for period, entry in pending.items():
        trigger, requested_for, last_s, attempts, seen = entry[:5]
        extra = list(entry[5:])  # the caller's (the sites the period is wanted for)
        newest = materialized.get(period, -1)
        if newest > max(trigger, seen) and requested_for >= trigger:
            continue
        if period in active:
            book[period] = [trigger, requested_for, last_s, attempts, seen, *extra]
            continue
        if requested_for < trigger:
            attempts = 0  # new hours since the last request: not a failure
        if attempts >= MAX_ATTEMPTS:
            given_up.append(period)
            continue
        wait = retry_delay_s(attempts)
        if now_s - last_s < wait:
            book[period] = [trigger, requested_for, last_s, attempts, seen, *extra]
            continue
        due.append(period)
        book[period] = [trigger, trigger, now_s, attempts + 1, newest, *extra]
    return sorted(due), book, given_up
