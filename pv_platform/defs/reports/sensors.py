"""`report_sensor`: a site's monthly (yearly) report is made once the period's KPIs have been computed
after the period closed, and made again whenever those KPIs are recomputed (late data)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from pv_platform.defs.kpis.sensors import ACTIVE, MATERIALIZATION, RANGE_END, RANGE_START
from pv_platform.defs.partitions import HOUR_KEY_FORMAT
from pv_platform.defs.reports.jobs import REPORTS, monthly_report_job, yearly_report_job
from pv_platform.defs.resources import PlantResource
from pv_platform.defs.shape import SHAPE
from pv_platform.kpi.calendar import local_window

MAX_REQUESTS_PER_TICK = 20  # an upgrade with years of closed months: a few at a time
REPORT_SETTLE_S = 3600.0  # a closed period still missing hours gets its report this long after
ROLLUP_GRAIN = {
    "daily_kpis_job": "daily",
    "monthly_kpis_job": "monthly",
    "yearly_kpis_job": "yearly",
}
GRAIN = {"monthly_kpis": "monthly", "yearly_kpis": "yearly"}


def _state(instance: dg.DagsterInstance, kpi_key: dg.AssetKey, partition: str) -> str:
    """'ready' when the partition's newest KPI materialization was computed after its period ended and
    from every hour (`closed`, `complete` metadata), or was closed but incomplete REPORT_SETTLE_S ago
    (hours that never came: the report says which); 'wait' when closed but hours may still come;
    'running' when its period had not ended."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=kpi_key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return "running"
    metadata = records[0].asset_materialization.metadata

    def flag(name: str) -> bool:
        return bool(metadata.get(name) and metadata[name].value)

    if not (flag("closed") or flag("complete")):
        return "running"
    if flag("complete") or time.time() - records[0].timestamp > REPORT_SETTLE_S:
        return "ready"
    return "wait"


def pending_kpi_windows(instance: dg.DagsterInstance, zones: dict[str, str]) -> list[tuple]:
    """(site or None for every site, UTC start, UTC end) of each queued or running KPI run: an hourly
    range (every site), or a site's local day, month or year."""
    windows = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE), limit=500):
        tags = run.tags
        if run.job_name == "hourly_kpis_job" and RANGE_START in tags:
            start = datetime.strptime(tags[RANGE_START], HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(tags[RANGE_END], HOUR_KEY_FORMAT).replace(tzinfo=UTC)
            windows.append((None, start, end + timedelta(hours=1)))
        elif run.job_name in ROLLUP_GRAIN and "|" in tags.get("dagster/partition", ""):
            period, site_id = tags["dagster/partition"].split(
                "|", 1
            )  # dimensions sorted: period first
            if site_id in zones:
                start, end = local_window(period, ROLLUP_GRAIN[run.job_name], zones[site_id])
                windows.append((site_id, start, end))
    return windows


def _overlaps(windows: list[tuple], site_id: str, start: datetime, end: datetime) -> bool:
    return any((s is None or s == site_id) and a < end and b > start for s, a, b in windows)


def due_reports(
    instance: dg.DagsterInstance, report, kpi_name: str, job, checked: dict[str, int],
    pending: list[tuple], zones: dict[str, str],
) -> list[dg.RunRequest]:  # fmt: skip
    """Report runs for partitions whose newest closed KPIs are newer than their newest report and
    whose period has no KPI run still queued or running (`pending`: its days may still be on their
    way). `checked` (partition -> KPI storage id found not closed) is updated in place."""
    kpi_key = dg.AssetKey(kpi_name)
    kpi_ids = instance.get_latest_storage_id_by_partition(kpi_key, MATERIALIZATION)
    report_ids = instance.get_latest_storage_id_by_partition(report.key, MATERIALIZATION)
    active = {
        run.tags.get("dagster/partition")
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job.name, statuses=ACTIVE))
    }
    requests = []
    for partition, kpi_id in sorted(kpi_ids.items()):
        if report_ids.get(partition, -1) > kpi_id or checked.get(partition) == kpi_id:
            continue
        if partition in active:
            continue
        period, site_id = partition.split("|", 1)
        if site_id not in zones:
            continue
        bounds = local_window(period, GRAIN[kpi_name], zones[site_id])
        if _overlaps(pending, site_id, *bounds):
            continue
        state = _state(instance, kpi_key, partition)
        if state != "ready":
            if state == "running":
                checked[partition] = kpi_id  # a running period's KPIs: looked at once
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{report.key.to_user_string()}:{partition}:{kpi_id}",
                job_name=job.name,
                asset_selection=[report.key],
                partition_key=partition,
            )
        )
    return requests


@dg.sensor(
    jobs=[monthly_report_job, yearly_report_job],
    minimum_interval_seconds=SHAPE.kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def report_sensor(context: dg.SensorEvaluationContext, plant: PlantResource) -> dg.SensorResult:
    """Request the monthly and yearly report of every (period, site) whose KPIs were computed after the
    period closed, from all its hours (or an hour after, if some never came), and are newer than its
    report, and whose period has no KPI run queued or running (its hours or days may still be on their
    way; runs of other periods, the live hour's, do not hold it up). One request per KPI materialization
    (run key): a failed report run is tried again when the period's KPIs change, or from the UI."""
    state = json.loads(context.cursor) if context.cursor else {}
    zones = {site.id: site.timezone for site in plant.load().sites}
    pending = pending_kpi_windows(context.instance, zones)
    runs: list[dg.RunRequest] = []
    for report, kpi_name, _, job in REPORTS:
        checked = state.setdefault(kpi_name, {})
        runs += due_reports(context.instance, report, kpi_name, job, checked, pending, zones)
    if runs:
        context.log.info(f"{len(runs)} report(s) due: {[r.partition_key for r in runs[:5]]}")
    return dg.SensorResult(
        run_requests=runs[:MAX_REQUESTS_PER_TICK],
        cursor=json.dumps(state),
        skip_reason=None if runs else dg.SkipReason("every closed period has its newest report"),
    )
