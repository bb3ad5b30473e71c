"""`loss_analytics_sensor`: after a site's daily KPIs change (the rollup sensor and the calendar
schedule materialize them), recompute its loss analytics — one run per site at a time."""

from __future__ import annotations

import json

import dagster as dg

from pv_platform.defs.kpis.assets import daily_kpis
from pv_platform.defs.kpis.sensors import ACTIVE, MATERIALIZATION, materializations_after
from pv_platform.defs.losses.assets import loss_analytics
from pv_platform.defs.losses.jobs import loss_job
from pv_platform.defs.shape import SHAPE

# a day rolled up for a 1,000-site fleet changes every site at once: requesting (and validating) 1,000
# runs took 27 s of a tick (bench.fleet); a hundred a tick keeps it short, the rest follow
MAX_REQUESTS_PER_TICK = 100


def sites_of(event: dg.AssetMaterialization | None) -> list[str]:
    """The sites a daily_kpis materialization computed: its `sites` metadata (site -> state; a day
    partition covers many sites), or the site of an old 'date|site' partition key."""
    if event is None:
        return []
    states = event.metadata.get("sites")
    if isinstance(getattr(states, "value", None), dict):
        return sorted(states.value)
    key = event.partition
    return [key.split("|", 1)[1]] if isinstance(key, str) and "|" in key else []


def pending_sites(instance: dg.DagsterInstance, state: dict) -> tuple[dict[str, int], int | None]:
    """The book of sites whose daily KPIs changed (site -> newest daily storage id), updated with the
    daily_kpis materializations after the cursor, less the sites analysed since; and the new cursor."""
    records = materializations_after(instance, daily_kpis.key, state["after"])
    pending: dict[str, int] = state["pending"]
    for record in records:
        for site_id in sites_of(record.asset_materialization):
            pending[site_id] = max(pending.get(site_id, -1), record.storage_id)
    if pending:
        done = instance.get_latest_storage_id_by_partition(
            loss_analytics.key, MATERIALIZATION, partitions=set(pending)
        )
        pending = {s: i for s, i in pending.items() if done.get(s, -1) < i}
    return pending, records[-1].storage_id if records else state["after"]


@dg.sensor(
    job=loss_job,
    minimum_interval_seconds=max(SHAPE.kpi_sensor_interval_s, 60),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def loss_analytics_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per site whose daily KPIs are newer than its loss analytics and that has no run under way."""
    state = json.loads(context.cursor) if context.cursor else {"after": None, "pending": {}}
    pending, after = pending_sites(context.instance, state)
    active = {
        run.tags.get("dagster/partition")
        for run in context.instance.get_runs(
            filters=dg.RunsFilter(job_name=loss_job.name, statuses=ACTIVE)
        )
    }
    requests = [
        dg.RunRequest(run_key=f"loss:{site_id}:{storage_id}", partition_key=site_id)
        for site_id, storage_id in sorted(pending.items())
        if site_id not in active
    ][:MAX_REQUESTS_PER_TICK]  # the rest stay pending: a fleet's day is 1,000 sites
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"after": after, "pending": pending}),
        skip_reason=None if requests else dg.SkipReason("every site's loss analytics is current"),
    )
