"""Which hours of KPIs to (re)compute, and the runs that do it.

`hourly_kpis_sensor` compares, per hour partition, the newest `telemetry` report with the newest
`hourly_kpis` materialization: an hour whose telemetry is newer (new hours, late data, a run that failed)
is requested again, contiguous hours together in one run of up to MAX_HOURS_PER_RUN (24 back-filled hours
are one run, not 24). Hours in a queued or running run are left alone; an hour whose run failed is retried
with a growing delay (RETRY_BASE_S doubling up to RETRY_MAX_S); the running hour, whose telemetry changes
with every ingest, at most every `PVP_KPI_LIVE_INTERVAL_S`. The comparison is made afresh on each tick,
so a daemon that was down, or a database outage, leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

from pv_platform import clock
from pv_platform.defs.kpis import alerts, hourly_kpis
from pv_platform.defs.partitions import HOUR_KEY_FORMAT
from pv_platform.settings import get_settings

MAX_HOURS_PER_RUN = 48
RETRY_BASE_S, RETRY_MAX_S = 30.0, 600.0
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

hourly_kpis_job = dg.define_asset_job(
    "hourly_kpis_job",
    selection=[hourly_kpis, alerts],
    executor_def=dg.in_process_executor,
    # after ingest (10), before the day/month/year rollups (0) that need these hours
    tags={"pvp/kind": "kpi", "dagster/priority": "5"},
)


def retry_delay_s(failures: int) -> float:
    """How long to wait before requesting again after `failures` failed runs [s]: none before the
    first run, then RETRY_BASE_S doubling, at most RETRY_MAX_S (hourly and rollup runs alike)."""
    return 0.0 if failures <= 0 else min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (failures - 1))


def _hour(key: str) -> datetime:
    return datetime.strptime(key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)


def _key(hour: datetime) -> str:
    return hour.strftime(HOUR_KEY_FORMAT)


def hours_between(first: str, last: str) -> list[str]:
    """Every hour key from `first` to `last`, both included."""
    a, b = _hour(first), _hour(last)
    return [_key(a + timedelta(hours=i)) for i in range(int((b - a) / timedelta(hours=1)) + 1)]


def contiguous_ranges(keys: list[str], longest: int = MAX_HOURS_PER_RUN) -> list[tuple[str, str]]:
    """Sorted hour keys as (first, last) ranges of consecutive hours, each at most `longest` hours."""
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys):
        if ranges:
            first, last = ranges[-1]
            joins = _hour(key) - _hour(last) == timedelta(hours=1)
            if joins and len(hours_between(first, key)) <= longest:
                ranges[-1] = (first, key)
                continue
        ranges.append((key, key))
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
    open_hour : key of the hour the platform clock is in (it and later hours change with every ingest)
    """
    book: dict[str, list] = {}
    due: list[str] = []
    for key, telemetry_id in telemetry.items():
        if computed.get(key, -1) > telemetry_id:
            continue  # computed from its newest telemetry
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
            if key >= open_hour:
                wait = max(wait, live_interval_s)
            if now_s - last_s < wait:
                book[key] = previous
                continue
        due.append(key)
        book[key] = [n + 1, now_s, telemetry_id]
    return sorted(due), book


def running_hours(instance: dg.DagsterInstance) -> set[str]:
    """Hours covered by queued or running KPI runs (their partition or partition range tags)."""
    hours: set[str] = set()
    for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=hourly_kpis_job.name, statuses=ACTIVE)
    ):
        tags = run.tags
        if RANGE_START in tags and RANGE_END in tags:
            hours.update(hours_between(tags[RANGE_START], tags[RANGE_END]))
        elif "dagster/partition" in tags:
            hours.add(tags["dagster/partition"])
    return hours


@dg.sensor(
    job=hourly_kpis_job,
    minimum_interval_seconds=get_settings().kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def hourly_kpis_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Request hourly KPI (and KPI alert) runs for every hour whose telemetry is newer than its KPIs."""
    materialization = dg.DagsterEventType.ASSET_MATERIALIZATION
    instance = context.instance
    telemetry = instance.get_latest_storage_id_by_partition(
        dg.AssetKey("telemetry"), materialization
    )
    computed = instance.get_latest_storage_id_by_partition(hourly_kpis.key, materialization)
    attempts = json.loads(context.cursor) if context.cursor else {}
    open_hour = _key(clock.now().replace(minute=0, second=0, microsecond=0))
    due, book = due_hours(
        telemetry,
        computed,
        running_hours(instance),
        attempts,
        time.time(),
        open_hour,
        get_settings().kpi_live_interval_s,
    )
    runs = [
        dg.RunRequest(
            run_key=f"hourly:{first}:{last}:{int(time.time())}",
            tags={
                RANGE_START: first,
                RANGE_END: last,
                "pvp/hours": str(len(hours_between(first, last))),
            },
        )
        for first, last in contiguous_ranges(due)
    ]
    retried = [k for k in due if book[k][0] > 1 and attempts.get(k, [0, 0, None])[2] == book[k][2]]
    if retried:
        context.log.warning(
            f"re-requesting {len(retried)} hour(s) whose KPI run failed: {retried[:5]}"
        )
    skip = (
        None if runs else dg.SkipReason("every hour's KPIs are computed from its newest telemetry")
    )
    return dg.SensorResult(run_requests=runs, cursor=json.dumps(book), skip_reason=skip)
