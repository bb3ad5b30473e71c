"""The sensors that keep KPIs current: `hourly_kpis_sensor` requests the hours whose telemetry is newer
than their KPIs, `kpi_rollup_sensor` the site-local days, months and years that contain recomputed hours — one run per
period (consecutive days together) for all the sites it touched, not one per site — and registers the
plant's sites. Both decide afresh on each tick from the instance's storage ids
(`planning`), so a daemon that was down, or a database outage, leaves nothing behind."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import dagster as dg

from pv_platform import clock
from pv_platform.defs.kpis.assets import DAYS_PER_RUN, hourly_kpis, site_reference_temperatures
from pv_platform.defs.kpis.backfills import (
    deferred_from,
    deferred_to,
    history_runs,
    hours_in_progress,
    released_hours,
)
from pv_platform.defs.kpis.jobs import (
    ROLLUPS,
    daily_job,
    hourly_kpis_job,
    monthly_job,
    site_reference_job,
    yearly_job,
)
from pv_platform.defs.kpis.planning import (
    MAX_ATTEMPTS,
    contiguous_ranges,
    due_hours,
    due_periods,
    hour_key,
    hour_of,
    hours_between,
)
from pv_platform.defs.kpis.rollup import sites_by_zone
from pv_platform.defs.resources import PlantResource
from pv_platform.defs.shape import SHAPE
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.kpi.calendar import periods_for_hours
from pv_platform.settings import get_settings

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION
OLD_HISTORY = timedelta(hours=48)  # hours older than this are history: their runs have priority 1
LIVE_MIN_WALL_S = 10.0  # the running hour's KPI and alert runs never closer together than this
# ... and while other runs wait for a slot (rollups, a history backfill, a report), at most every
# LIVE_YIELD_WALL_S: at 20x the live interval is 15 wall s, about what a run costs to start on 2 cores,
# so back-to-back live runs held the second slot and the queue behind them never moved
LIVE_YIELD_WALL_S = 120.0


def running_hours(instance: dg.DagsterInstance) -> set[str]:
    """Hours covered by queued or running KPI runs (their partition or partition range tags) or by a
    history backfill in progress."""
    hours = hours_in_progress(instance, hourly_kpis.key)
    for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=hourly_kpis_job.name, statuses=ACTIVE)
    ):
        tags = run.tags
        if RANGE_START in tags and RANGE_END in tags:
            hours.update(hours_between(tags[RANGE_START], tags[RANGE_END]))
        elif "dagster/partition" in tags:
            hours.add(tags["dagster/partition"])
    return hours


def telemetry_ids(instance: dg.DagsterInstance, history: bool) -> dict[str, int]:
    """The newest `telemetry` storage id per hour partition: of the hours older than OLD_HISTORY on the
    platform clock (history: `history_backfill_sensor`) or of the later ones (`hourly_kpis_sensor`)."""
    old = hour_key(clock.now() - OLD_HISTORY)
    ids = instance.get_latest_storage_id_by_partition(dg.AssetKey("telemetry"), MATERIALIZATION)
    return {k: v for k, v in ids.items() if (k < old) == history}


def others_waiting(instance: dg.DagsterInstance) -> int:
    """Queued runs that are neither ingest nor the running hour's: rollups, a history backfill's, a
    report (they wait for a slot the live runs would otherwise take)."""
    queued = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    return sum(r.job_name not in (hourly_kpis_job.name, ingest_job.name) for r in queued)


def live_interval_wall_s(waiting: int) -> float:
    """How long the running hour waits between KPI runs [wall s]: the live interval in platform seconds
    (an accelerated run judges its running hour as often in simulated time), at least LIVE_MIN_WALL_S,
    and at least LIVE_YIELD_WALL_S while `waiting` other runs wait for a slot."""
    floor = LIVE_YIELD_WALL_S if waiting else LIVE_MIN_WALL_S
    return max(floor, clock.wall_s(get_settings().kpi_live_interval_s))


@dg.sensor(
    job=hourly_kpis_job,
    minimum_interval_seconds=SHAPE.kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def hourly_kpis_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Request hourly KPI (and KPI alert) runs for every recent hour (the last OLD_HISTORY) whose
    telemetry is newer than its KPIs; older hours are history, for `history_backfill_sensor`."""
    instance = context.instance
    telemetry = telemetry_ids(instance, history=False)
    computed = instance.get_latest_storage_id_by_partition(hourly_kpis.key, MATERIALIZATION)
    attempts = json.loads(context.cursor) if context.cursor else {}
    open_hour = hour_key(clock.now().replace(minute=0, second=0, microsecond=0))
    due, book = due_hours(
        telemetry,
        computed,
        running_hours(instance),
        attempts,
        time.time(),
        open_hour,
        live_interval_wall_s(others_waiting(instance)),
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
        None
        if runs
        else dg.SkipReason("every recent hour's KPIs are computed from its newest telemetry")
    )
    return dg.SensorResult(run_requests=runs, cursor=json.dumps(book), skip_reason=skip)


def describe_sites(site_ids: list[str]) -> str:
    """A run tag naming a run's sites: all of them, or the first few and how many."""
    if not site_ids:
        return "all"
    head = ",".join(site_ids[:5])
    return head if len(site_ids) <= 5 else f"{head},… ({len(site_ids)} sites)"


def rollup_request(
    asset, periods: list[str], site_ids: list[str], tag: str, all_sites: set[str] | None = None
) -> dg.RunRequest:
    """One run of a rollup asset over consecutive periods (one partition, or a range of days) for the
    given sites (all of them: no `sites` config, so the run covers every site of the plant file)."""
    job = next(j for a, _, j in ROLLUPS if a is asset)
    chosen = [] if all_sites is not None and set(site_ids) >= all_sites else sorted(site_ids)
    first, last = periods[0], periods[-1]
    span = first if first == last else f"{first}...{last}"
    tags = {"pvp/sites": describe_sites(chosen)}
    if first != last:
        tags |= {RANGE_START: first, RANGE_END: last}
    return dg.RunRequest(
        run_key=f"{asset.key.to_user_string()}:{span}:{len(chosen) or 'all'}:{tag}",
        job_name=job.name,  # the sensor targets several jobs: each request names its own
        partition_key=first if first == last else None,
        run_config={"ops": {asset.key.path[-1]: {"config": {"sites": chosen}}}},
        tags=tags,
    )


def periods_touched(zones: dict[str, str], hours: list[datetime]) -> dict[str, set[str]]:
    """'<job>:<period>' -> the sites whose local day, month or year holds one of the hours (sites are
    taken a time zone at a time: a fleet has far fewer zones than sites)."""
    touched: dict[str, set[str]] = {}
    for tz, site_ids in sites_by_zone(zones).items():
        keys = periods_for_hours(hours, tz)
        for _, dim, job in ROLLUPS:
            for period in keys[dim]:
                touched.setdefault(f"{job.name}:{period}", set()).update(site_ids)
    return touched


def grouped_requests(
    due: list[str], book: dict[str, list], all_sites: set[str], tag: str
) -> list[dg.RunRequest]:
    """The due '<job>:<period>' keys as run requests: consecutive days together (up to DAYS_PER_RUN
    a run), each month and year alone (the report sensor reads each one's per-site states)."""
    by_job: dict[str, list[str]] = {}
    for key in sorted(due):
        job_name, period = key.split(":", 1)
        by_job.setdefault(job_name, []).append(period)
    runs = []
    for asset, dim, job in ROLLUPS:
        periods = by_job.get(job.name, [])
        groups = day_ranges(periods, DAYS_PER_RUN) if dim == "date" else [[p] for p in periods]
        for group in groups:
            sites = set().union(*(book[f"{job.name}:{p}"][5] for p in group))
            runs.append(rollup_request(asset, group, sorted(sites), tag, all_sites))
    return runs


def day_ranges(days: list[str], longest: int) -> list[list[str]]:
    """Sorted day keys (YYYY-MM-DD) as runs of consecutive days, each at most `longest` long."""
    groups: list[list[str]] = []
    for day in sorted(days):
        if groups and len(groups[-1]) < longest:
            previous = datetime.strptime(groups[-1][-1], "%Y-%m-%d")
            if datetime.strptime(day, "%Y-%m-%d") - previous == timedelta(days=1):
                groups[-1].append(day)
                continue
        groups.append([day])
    return groups


def materializations_after(instance, asset_key: dg.AssetKey, after: int | None, limit: int = 5000):
    """The asset's materialization records after storage id `after` (a sensor's cursor), oldest first."""
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=after),
        limit=limit,
        ascending=True,
    ).records


def _pending_after(instance, zones, state: dict) -> tuple[dict[str, list], int | None, int, dict]:
    """The pending-period book ('<job>:<period>' -> [trigger, requested_for, last request time,
    attempts, materialized then, sites]) updated with the hourly materializations since the cursor:
    (book, newest storage id read, how many hours changed, deferred hours for the cursor). The hours
    a history backfill computed are its own (it computes their periods) unless it fails before their
    periods: then they are this sensor's (deferred meanwhile)."""
    records = materializations_after(instance, hourly_kpis.key, state["after"])
    deferred = deferred_from(state)
    by_hour = released_hours(instance, deferred)
    backfilled = history_runs(instance, {r.run_id for r in records})
    for record in records:
        partition = record.asset_materialization and record.asset_materialization.partition
        if not partition:
            continue
        if record.run_id in backfilled:  # its backfill's until the backfill ends
            entry = deferred.setdefault(backfilled[record.run_id], [-1, set()])
            entry[0] = max(entry[0], record.storage_id)
            entry[1].add(partition)
        else:
            by_hour[hour_of(partition)] = record.storage_id  # ascending: the newest wins
    # (a cursor of the old per-site partitions has 5-long entries keyed 'job:period|site': dropped)
    pending = {k: v for k, v in state["pending"].items() if len(v) == 6 and "|" not in k}
    for hour, storage_id in by_hour.items():
        for period, site_ids in periods_touched(zones, [hour]).items():
            entry = pending.get(period, [-1, -1, 0.0, 0, -1, []])
            entry[0] = max(entry[0], storage_id)
            entry[5] = sorted(set(entry[5]) | site_ids)
            pending[period] = entry
    after = records[-1].storage_id if records else state["after"]
    return pending, after, len(records), deferred_to(deferred)


def _run_periods(run) -> list[str]:
    """The partition keys a run covers (its partition, or every key of its range)."""
    tags = run.tags
    if RANGE_START in tags and RANGE_END in tags:
        first, last = tags[RANGE_START], tags[RANGE_END]
        if run.job_name == daily_job.name:
            days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days
            start = datetime.fromisoformat(first)
            return [f"{start + timedelta(days=i):%Y-%m-%d}" for i in range(days + 1)]
        return [first, last]
    return [tags["dagster/partition"]] if "dagster/partition" in tags else []


def _period_states(instance, pending: dict[str, list]) -> tuple[dict[str, int], set[str]]:
    """(newest materialization storage id per pending period, periods with an active run)."""
    materialized: dict[str, int] = {}
    for asset, _, job in ROLLUPS:
        mine = {p.split(":", 1)[1] for p in pending if p.startswith(f"{job.name}:")}
        if mine:
            ids = instance.get_latest_storage_id_by_partition(
                asset.key, MATERIALIZATION, partitions=mine
            )
            materialized.update({f"{job.name}:{pk}": sid for pk, sid in ids.items()})
    jobs = {job.name for _, _, job in ROLLUPS}
    active = {
        f"{run.job_name}:{period}"
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE))
        if run.job_name in jobs
        for period in _run_periods(run)
    }
    return materialized, active


def _site_reference_request(instance, plant) -> list[dg.RunRequest]:
    """A `site_reference_temperatures` run when the plant has sites its newest materialization lacks."""
    event = instance.get_latest_materialization_event(site_reference_temperatures.key)
    covered = set()
    if event and event.asset_materialization:
        text = event.asset_materialization.metadata.get("sites")
        covered = set(text.value.split(",")) if text and text.value else set()
    missing = sorted(s.id for s in plant.sites if s.id not in covered)
    if not missing:
        return []
    # once per hour at most while missing (a failed run is tried again; meanwhile `hourly_kpis`
    # computes the same modelled value itself)
    key = f"t_ref:{','.join(missing)}:{int(time.time() // 3600)}"
    return [dg.RunRequest(run_key=key, job_name=site_reference_job.name)]


@dg.sensor(
    jobs=[daily_job, monthly_job, yearly_job, site_reference_job],
    minimum_interval_seconds=SHAPE.kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def kpi_rollup_sensor(context: dg.SensorEvaluationContext, plant: PlantResource) -> dg.SensorResult:
    """When hourly KPI partitions are materialized (new or late data), recompute the local days, months and
    years that contain them, until each is materialized from its newest hours (a failed run is requested
    again with a growing delay). Registers the plant's sites as partitions, and requests their reference
    temperatures when new sites appear."""
    model, instance = plant.load(), context.instance
    zones = {s.id: s.timezone for s in model.sites}
    known = set(instance.get_dynamic_partitions("sites"))
    new_sites = [s.id for s in model.sites if s.id not in known]
    state = json.loads(context.cursor) if context.cursor else {"after": None, "pending": {}}
    pending, after, changed, deferred = _pending_after(instance, zones, state)
    materialized, active = _period_states(instance, pending)
    # a period with hours still in a queued or running hourly run waits for them (an imported year is
    # computed hour ranges first, then each day, month and year once, not again after every range)
    active |= set(periods_touched(zones, [hour_of(k) for k in running_hours(instance)]))
    due, book, given_up = due_periods(pending, materialized, active, time.time())
    if given_up:
        context.log.error(
            f"{len(given_up)} period(s) failed {MAX_ATTEMPTS} times and are left until their hours"
            f" change again: {given_up[:5]}"
        )
    tag = f"{after}:{int(time.time())}"
    runs = _site_reference_request(instance, model) + grouped_requests(due, book, set(zones), tag)
    if due:
        context.log.info(f"{changed} hour(s) changed → {len(due)} period(s) in {len(runs)} run(s)")
    return dg.SensorResult(
        run_requests=runs,
        cursor=json.dumps({"after": after, "pending": book, "deferred": deferred}),
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest("sites", new_sites)]
        if new_sites
        else [],
        skip_reason=None
        if runs
        else dg.SkipReason("every period is computed from its newest hours"),
    )
