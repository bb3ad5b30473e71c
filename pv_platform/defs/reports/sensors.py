"""`report_sensor`: a site's monthly (yearly) report is made once the period's KPIs have been computed
after the period closed, and made again whenever those KPIs are recomputed (late data)."""

from __future__ import annotations

import json
import time

import dagster as dg

from pv_platform.defs.kpis.sensors import ACTIVE, MATERIALIZATION
from pv_platform.defs.reports.jobs import REPORTS, monthly_report_job, yearly_report_job
from pv_platform.defs.shape import SHAPE

MAX_REQUESTS_PER_TICK = 20  # an upgrade with years of closed months: a few at a time
REPORT_SETTLE_S = 3600.0  # a closed period still missing hours gets its report this long after
ROLLUP_JOBS = ("hourly_kpis_job", "daily_kpis_job", "monthly_kpis_job", "yearly_kpis_job")


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


def due_reports(
    instance: dg.DagsterInstance, report, kpi_name: str, job, checked: dict[str, int]
) -> list[dg.RunRequest]:
    """Report runs for partitions whose newest closed KPIs are newer than their newest report.
    `checked` (partition -> KPI storage id found not closed) is updated in place."""
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
def report_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Request the monthly and yearly report of every (period, site) whose KPIs were computed after the
    period closed, from all its hours (or an hour after, if some never came), and are newer than its
    report; not while KPI runs are queued or running (the period's days may still be on their way). One request per KPI materialization (run key): a
    failed report run is tried again when the period's KPIs change, or from the UI."""
    state = json.loads(context.cursor) if context.cursor else {}
    busy = context.instance.get_runs(
        filters=dg.RunsFilter(statuses=ACTIVE), limit=50
    )  # KPI runs still queued or running: their days may belong in the report
    if any(run.job_name in ROLLUP_JOBS for run in busy):
        return dg.SensorResult(
            cursor=json.dumps(state), skip_reason=dg.SkipReason("KPI runs are still under way")
        )
    runs: list[dg.RunRequest] = []
    for report, kpi_name, _, job in REPORTS:
        checked = state.setdefault(kpi_name, {})
        runs += due_reports(context.instance, report, kpi_name, job, checked)
    if runs:
        context.log.info(f"{len(runs)} report(s) due: {[r.partition_key for r in runs[:5]]}")
    return dg.SensorResult(
        run_requests=runs[:MAX_REQUESTS_PER_TICK],
        cursor=json.dumps(state),
        skip_reason=None if runs else dg.SkipReason("every closed period has its newest report"),
    )
