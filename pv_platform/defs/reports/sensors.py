"""`report_sensor`: a site's monthly (yearly) report is made once the period's KPIs have been computed
after the period closed, and made again whenever those KPIs are recomputed (late data). It reads each
KPI materialization's per-site states (`sites` metadata of the time-only partitions) after its cursor
and keeps only the sites still waiting, so its cursor stays small for a 1,000-site fleet."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from pv_platform.defs.kpis.assets import hourly_kpis
from pv_platform.defs.kpis.backfills import IN_PROGRESS, history_backfills, target_keys
from pv_platform.defs.kpis.jobs import ROLLUPS
from pv_platform.defs.kpis.rollup import BLOCKED, CLOSED, COMPLETE, OPEN
from pv_platform.defs.kpis.sensors import (
    ACTIVE,
    RANGE_END,
    RANGE_START,
    describe_sites,
    materializations_after,
)
from pv_platform.defs.partitions import HOUR_KEY_FORMAT
from pv_platform.defs.reports.jobs import REPORTS, monthly_report_job, yearly_report_job
from pv_platform.defs.resources import PlantResource
from pv_platform.defs.shape import SHAPE
from pv_platform.kpi.calendar import local_window

MAX_REQUESTS_PER_TICK = 20  # an upgrade with years of closed months: a few at a time
EARLIEST, LATEST = "Etc/GMT-14", "Etc/GMT+12"  # the first and the last time zone on Earth (UTC±)
REPORT_SETTLE_S = 3600.0  # a closed period still missing hours gets its report this long after
ROLLUP_GRAIN = {
    "daily_kpis_job": "daily",
    "monthly_kpis_job": "monthly",
    "yearly_kpis_job": "yearly",
}
GRAIN = {"monthly_kpis": "monthly", "yearly_kpis": "yearly"}


# the KPI grains a report's numbers are made of: a yearly run does not change a month's report (the
# demo's live data keep a run of the running year queued almost always: it held November's back)
FEEDS = {
    "monthly": {"hourly", "daily", "monthly"},
    "yearly": {"hourly", "daily", "monthly", "yearly"},
}


def pending_kpi_windows(instance: dg.DagsterInstance) -> list[tuple[datetime, datetime, str]]:
    """The UTC (start, end, grain) of each queued or running KPI run: an hourly range, or a day, month
    or year (range) in the earliest to the latest time zone (UTC+14 .. UTC-12: whichever sites it
    covers)."""
    windows = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE), limit=500):
        tags = run.tags
        if run.job_name == "hourly_kpis_job" and RANGE_START in tags:
            start = datetime.strptime(tags[RANGE_START], HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(tags[RANGE_END], HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            windows.append((start, end + timedelta(hours=1), "hourly"))
        elif run.job_name in ROLLUP_GRAIN:
            first = tags.get(RANGE_START, tags.get("dagster/partition"))
            last = tags.get(RANGE_END, first)
            if first and "|" not in first:  # (a run of the old per-site partitions: not waited for)
                grain = ROLLUP_GRAIN[run.job_name]
                windows.append(
                    (
                        local_window(first, grain, EARLIEST)[0],
                        local_window(last, grain, LATEST)[1],
                        grain,
                    )
                )
    return windows + backfill_windows(instance)


def backfill_windows(instance: dg.DagsterInstance) -> list[tuple[datetime, datetime, str]]:
    """The UTC span and grain of each history backfill's hours, days, months and years while it is in
    progress: from its first (day, month or year in the earliest zone) to its last (in the latest
    zone), whether or not a run of it is under way."""
    windows = []
    for backfill in history_backfills(instance, IN_PROGRESS):
        hours = target_keys(backfill, hourly_kpis.key)
        if hours:
            start = datetime.strptime(min(hours), HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(max(hours), HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            windows.append((start, end + timedelta(hours=1), "hourly"))
        for asset, _, job in ROLLUPS:
            periods = target_keys(backfill, asset.key)
            if periods:
                grain = ROLLUP_GRAIN[job.name]
                windows.append(
                    (
                        local_window(min(periods), grain, EARLIEST)[0],
                        local_window(max(periods), grain, LATEST)[1],
                        grain,
                    )
                )
    return windows


def _overlaps(windows: list[tuple], start: datetime, end: datetime, grain: str) -> bool:
    """Whether a pending run of a grain that feeds a `grain` report overlaps [start, end)."""
    return any(a < end and b > start for a, b, g in windows if g in FEEDS[grain])


def _read_new(instance, kpi_name: str, after: int | None, book: dict) -> int | None:
    """Add the per-site states of the KPI materializations after `after` to `book` (period -> site ->
    [KPI storage id, its time [s], state]); the newest storage id read."""
    records = materializations_after(instance, dg.AssetKey(kpi_name), after)
    for record in records:
        event = record.asset_materialization
        states = event.metadata.get("sites") if event else None
        if event is None or not isinstance(getattr(states, "value", None), dict):
            continue  # (a materialization of the old per-site partitions)
        period = book.setdefault(event.partition, {})
        for site_id, state in states.value.items():
            period[site_id] = [record.storage_id, record.timestamp, state]
    return records[-1].storage_id if records else after


def ready_sites(
    sites: dict[str, list], period: str, grain: str, zones: dict[str, str],
    windows: list[tuple], now_s: float,
) -> list[str]:  # fmt: skip
    """The sites whose report of `period` is due now, taken out of `sites` (site -> [KPI id, time,
    state]): computed after the period closed from every hour (`complete`), or closed but incomplete
    REPORT_SETTLE_S ago (hours that never came: the report says which), and no KPI run under way over
    the site's period. A running period (`open`), a blocked one or a site gone from the plant file is
    dropped (a later materialization brings it back); a closed one that may still get hours waits."""
    ready = []
    for site_id, (_, at_s, state) in sorted(sites.items()):
        if site_id not in zones or state in (OPEN, BLOCKED):
            del sites[site_id]
            continue
        if _overlaps(windows, *local_window(period, grain, zones[site_id]), grain):
            continue
        if state == COMPLETE or (state == CLOSED and now_s - at_s > REPORT_SETTLE_S):
            ready.append(site_id)
            del sites[site_id]
    return ready


def due_reports(
    instance, report, kpi_name: str, job, state: dict, zones: dict[str, str], windows: list[tuple],
    room: int,
) -> list[dg.RunRequest]:  # fmt: skip
    """At most `room` report runs: one per period with sites ready, for those sites. `state` (the
    cursor's part for this grain: {"after": storage id, "book": ...}) is updated in place."""
    state["after"] = _read_new(instance, kpi_name, state.get("after"), state.setdefault("book", {}))
    active = {
        run.tags.get("dagster/partition")
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job.name, statuses=ACTIVE))
    }
    requests = []
    for period, sites in sorted(state["book"].items()):
        if len(requests) >= room:
            break
        if period in active:
            continue
        newest = max((v[0] for v in sites.values()), default=0)
        ready = ready_sites(sites, period, GRAIN[kpi_name], zones, windows, time.time())
        if ready:
            chosen = [] if set(ready) >= set(zones) else ready
            requests.append(
                dg.RunRequest(
                    run_key=f"{report.key.to_user_string()}:{period}:{newest}:{','.join(chosen)}",
                    job_name=job.name,
                    partition_key=period,
                    run_config={"ops": {report.key.path[-1]: {"config": {"sites": chosen}}}},
                    tags={"pvp/sites": describe_sites(chosen)},
                )
            )
    state["book"] = {p: sites for p, sites in state["book"].items() if sites}
    return requests


@dg.sensor(
    jobs=[monthly_report_job, yearly_report_job],
    minimum_interval_seconds=SHAPE.kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def report_sensor(context: dg.SensorEvaluationContext, plant: PlantResource) -> dg.SensorResult:
    """Request the monthly and yearly reports of every site whose period KPIs were computed after the
    period closed, from all its hours (or an hour after, if some never came), and whose period has no
    KPI run queued or running (its hours or days may still be on their way; runs of other periods, the
    live hour's, do not hold it up): one run per period for the sites ready in it. Once per KPI
    materialization: a failed report run is tried again when the period's KPIs change, or from the UI."""
    state = json.loads(context.cursor) if context.cursor else {}
    if any("after" not in v for v in state.values()):
        state = {}  # the cursor of the old per-site partitions
    zones = {site.id: site.timezone for site in plant.load().sites}
    windows = pending_kpi_windows(context.instance)
    runs: list[dg.RunRequest] = []
    for report, kpi_name, _, job in REPORTS:
        room = MAX_REQUESTS_PER_TICK - len(runs)
        mine = state.setdefault(kpi_name, {})
        runs += due_reports(context.instance, report, kpi_name, job, mine, zones, windows, room)
    if runs:
        context.log.info(f"{len(runs)} report run(s) due: {[r.partition_key for r in runs[:5]]}")
    waiting = sorted(p for v in state.values() for p in v.get("book", {}))
    why = (
        f"{len(waiting)} period(s) wait for their KPIs ({', '.join(waiting[:3])})"
        if waiting
        else "every closed period has its newest report"
    )
    return dg.SensorResult(
        run_requests=runs,
        cursor=json.dumps(state),
        skip_reason=None if runs else dg.SkipReason(why),
    )
