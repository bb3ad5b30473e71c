"""Which site-local days, months and years to recompute when hours change, and when periods close."""

import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pv_platform.defs.kpi_runs import ACTIVE, retry_delay_s
from pv_platform.defs.kpis import daily_kpis, monthly_kpis, yearly_kpis
from pv_platform.defs.resources import PlatformResource
from pv_platform.settings import get_settings

# One job per grain: a job (and a schedule or sensor target) needs assets with one partitions definition.
daily_job = dg.define_asset_job(
    "daily_kpis_job", selection=[daily_kpis], executor_def=dg.in_process_executor
)
monthly_job = dg.define_asset_job(
    "monthly_kpis_job", selection=[monthly_kpis], executor_def=dg.in_process_executor
)
yearly_job = dg.define_asset_job(
    "yearly_kpis_job", selection=[yearly_kpis], executor_def=dg.in_process_executor
)
JOB_OF = {
    "daily_kpis": "daily_kpis_job",
    "monthly_kpis": "monthly_kpis_job",
    "yearly_kpis": "yearly_kpis_job",
}

ROLLUPS = (  # asset, partition dimension, key format of the site-local period start
    (daily_kpis, "date", "%Y-%m-%d"),
    (monthly_kpis, "month", "%Y-%m-01"),
    (yearly_kpis, "year", "%Y"),
)


def periods_for_hours(hours: list[datetime], timezone: str) -> dict[str, set[str]]:
    """The site-local day, month and year keys that contain each UTC hour (an hour is in one local day)."""
    zone = ZoneInfo(timezone)
    out: dict[str, set[str]] = {dim: set() for _, dim, _ in ROLLUPS}
    for hour in hours:
        local = hour.astimezone(zone)
        for _, dim, fmt in ROLLUPS:
            out[dim].add(local.strftime(fmt))
    return out


def _request(asset, dim: str, period: str, site_id: str, tag: str) -> dg.RunRequest:
    """A run of one (period, site) partition of a rollup asset; the run key makes it once per tag."""
    pk = dg.MultiPartitionKey({dim: period, "site": site_id})
    name = asset.key.to_user_string()
    return dg.RunRequest(
        run_key=f"{name}:{pk}:{tag}",
        job_name=JOB_OF[name],  # the sensor targets three jobs: each request names its own
        asset_selection=[asset.key],
        partition_key=pk,
    )


def rollup_requests(plant, hours: list[datetime], tag: str) -> list[dg.RunRequest]:
    """One run request per (asset, site, period) touched by the hours."""
    requests = []
    for site in plant.sites:
        keys = periods_for_hours(hours, site.timezone)
        for asset, dim, _ in ROLLUPS:
            for period in sorted(keys[dim]):
                requests.append(_request(asset, dim, period, site.id, tag))
    return requests


def due_periods(
    pending: dict[str, list],
    materialized: dict[str, int],
    active: set[str],
    now_s: float,
) -> tuple[list[str], dict[str, list], list[str]]:
    """Which periods to request now: (due, new pending book, given up).

    pending : period -> [trigger, requested_for, last request time [s], attempts, materialized then];
        `trigger` is the storage id of the newest hourly materialization in the period, `requested_for`
        the trigger the latest request was made for (a run reads every hour up to it), and the last
        the period's newest materialization when that request was made (done needs a newer one)
    materialized : period -> storage id of its newest materialization
    active : periods with a queued or running run
    A period is done once materialized after its trigger by a run requested for that trigger; a run that
    failed is requested again after RETRY_BASE_S, doubling, at most MAX_ATTEMPTS times per trigger.
    """
    due, book, given_up = [], {}, []
    for period, (trigger, requested_for, last_s, attempts, seen) in pending.items():
        newest = materialized.get(period, -1)
        if newest > max(trigger, seen) and requested_for >= trigger:
            continue
        if period in active:
            book[period] = [trigger, requested_for, last_s, attempts, seen]
            continue
        if requested_for < trigger:
            attempts = 0  # new hours since the last request: not a failure
        if attempts >= MAX_ATTEMPTS:
            given_up.append(period)
            continue
        wait = retry_delay_s(attempts)
        if now_s - last_s < wait:
            book[period] = [trigger, requested_for, last_s, attempts, seen]
            continue
        due.append(period)
        book[period] = [trigger, trigger, now_s, attempts + 1, newest]
    return sorted(due), book, given_up


MAX_ATTEMPTS = 6  # failed runs per change of a period, before it waits for its hours to change


@dg.sensor(
    jobs=[daily_job, monthly_job, yearly_job],
    minimum_interval_seconds=get_settings().kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def kpi_rollup_sensor(
    context: dg.SensorEvaluationContext, platform: PlatformResource
) -> dg.SensorResult:
    """When hourly KPI partitions are materialized (new or late data), recompute the local days, months and
    years that contain them, until each is materialized from its newest hours (a failed run is requested
    again with a growing delay). Registers the plant's sites as partitions."""
    plant = platform.plant()
    instance = context.instance
    known = set(instance.get_dynamic_partitions("sites"))
    new_sites = [s.id for s in plant.sites if s.id not in known]
    state = json.loads(context.cursor) if context.cursor else {"after": None, "pending": {}}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("hourly_kpis"), after_storage_id=state["after"]
        ),
        limit=5000,
        ascending=True,
    ).records
    pending: dict[str, list] = state["pending"]
    for record in records:
        partition = record.asset_materialization and record.asset_materialization.partition
        if not partition:
            continue
        hour = datetime.strptime(partition, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        for request in rollup_requests(plant, [hour], tag=""):
            period = f"{request.job_name}:{request.partition_key}"
            entry = pending.get(period, [-1, -1, 0.0, 0, -1])
            entry[0] = max(entry[0], record.storage_id)
            pending[period] = entry
    after = records[-1].storage_id if records else state["after"]
    materialized: dict[str, int] = {}
    for asset, _, _ in ROLLUPS:
        job = JOB_OF[asset.key.to_user_string()]
        mine = {p.split(":", 1)[1] for p in pending if p.startswith(f"{job}:")}
        if mine:
            ids = instance.get_latest_storage_id_by_partition(
                asset.key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=mine
            )
            materialized.update({f"{job}:{pk}": sid for pk, sid in ids.items()})
    active = {
        f"{run.job_name}:{run.tags.get('dagster/partition')}"
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE))
        if run.job_name in JOB_OF.values()
    }
    due, book, given_up = due_periods(pending, materialized, active, time.time())
    if given_up:
        context.log.error(
            f"{len(given_up)} period(s) failed {MAX_ATTEMPTS} times and are left until their hours"
            f" change again: {given_up[:5]}"
        )
    runs = []
    for period in due:
        job, pk = period.split(":", 1)
        asset, dim = next((a, d) for a, d, _ in ROLLUPS if JOB_OF[a.key.to_user_string()] == job)
        parts = dict(zip(sorted([dim, "site"]), pk.split("|"), strict=True))
        runs.append(_request(asset, dim, parts[dim], parts["site"], f"{after}:{int(time.time())}"))
    cursor = json.dumps({"after": after, "pending": book})
    partition_requests = [dg.AddDynamicPartitionsRequest("sites", new_sites)] if new_sites else []
    if runs:
        context.log.info(f"{len(records)} hour(s) changed → {len(runs)} rollup run(s)")
    return dg.SensorResult(
        run_requests=runs,
        cursor=cursor,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None
        if runs
        else dg.SkipReason("every period is computed from its newest hours"),
    )


def closing_requests(plant, now: datetime, grain: str) -> list[dg.RunRequest]:
    """Run requests for the periods that ended in the past hour in each site's own time: the local day
    (or month) of an hour ago, for a site whose local day (month) has changed since then. Comparing dates,
    not reading the clock's 00:xx, also closes days in zones whose DST change skips local midnight
    (America/Santiago: 23:59 is followed by 01:00)."""
    requests = []
    asset, dim, fmt = next(r for r in ROLLUPS if r[1] == grain)
    for site in plant.sites:
        zone = ZoneInfo(site.timezone)
        local, before = now.astimezone(zone), (now - timedelta(hours=1)).astimezone(zone)
        changed = (
            local.date() != before.date()
            if grain == "date"
            else (local.year, local.month) != (before.year, before.month)
        )
        if changed:
            requests.append(_request(asset, dim, before.strftime(fmt), site.id, "close"))
    return requests


@dg.schedule(
    cron_schedule="20 * * * *", job=daily_job, default_status=dg.DefaultScheduleStatus.RUNNING
)
def kpi_calendar_schedule(context: dg.ScheduleEvaluationContext, platform: PlatformResource):
    """Every hour at :20, close the day that just ended in each site's own time (after local midnight).
    Sites span time zones, so the cron runs hourly and picks the sites whose midnight just passed."""
    requests = closing_requests(platform.plant(), context.scheduled_execution_time, "date")
    return requests or dg.SkipReason("no site just passed local midnight")


@dg.schedule(
    cron_schedule="40 * * * *", job=monthly_job, default_status=dg.DefaultScheduleStatus.RUNNING
)
def kpi_monthly_schedule(context: dg.ScheduleEvaluationContext, platform: PlatformResource):
    """Every hour at :40, close the month that just ended for each site whose local clock reads the 1st,
    00:40. (Months also recompute through `kpi_rollup_sensor` whenever any of their hours change.)"""
    requests = closing_requests(platform.plant(), context.scheduled_execution_time, "month")
    return requests or dg.SkipReason("no site just entered a new month")
