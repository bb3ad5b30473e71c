"""The landing sensor: requests ingest runs for closed segments; never polls devices or the database."""

import json
import time

import dagster as dg

from pv_platform.defs.resources import TelemetryResource
from pv_platform.defs.shape import SHAPE
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.landing import list_closed
from pv_platform.settings import get_settings

RETRY_AFTER_S = 600  # a segment requested this long ago and still not archived is requested again


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=SHAPE.landing_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(
    context: dg.SensorEvaluationContext, telemetry_store: TelemetryResource
) -> dg.SensorResult:
    """List closed segments and request ingest runs for the new ones. Never polls devices or the database.

    The cursor maps segment id → when it was requested; entries leave when the segment is archived, and a
    segment still waiting after RETRY_AFTER_S is requested again (ingest is idempotent).
    """
    requested: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    queued = context.instance.get_runs_count(
        dg.RunsFilter(
            job_name=ingest_job.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    if (
        queued
    ):  # the machine is busy: the next run takes every segment waiting by then, in one batch
        return dg.SensorResult(
            cursor=context.cursor, skip_reason=f"{queued} ingest run(s) still queued"
        )
    waiting = list_closed(telemetry_store.landing_dir)
    now = time.time()
    requested = {sid: at for sid, at in requested.items() if sid in set(waiting)}
    due = [sid for sid in waiting if sid not in requested or now - requested[sid] > RETRY_AFTER_S]
    batch = get_settings().ingest_batch_segments
    runs = []
    for i in range(0, len(due), batch):
        chunk = due[i : i + batch]
        runs.append(
            dg.RunRequest(
                run_key=f"ingest:{chunk[0]}:{chunk[-1]}:{len(chunk)}:{int(now)}",
                run_config={"ops": {"ingest_segments": {"config": {"segment_ids": chunk}}}},
                tags={"pvp/segments": str(len(chunk))},
            )
        )
        requested.update(dict.fromkeys(chunk, now))
    skip = (
        None if runs else dg.SkipReason(f"no new segments ({len(waiting)} waiting, all requested)")
    )
    return dg.SensorResult(run_requests=runs, cursor=json.dumps(requested), skip_reason=skip)
