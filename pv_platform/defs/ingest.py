"""Landing → samples: a sensor that only looks at the landing folder, and the job that loads segments."""

import json
import time
from datetime import UTC, timedelta

import dagster as dg

from pv_platform import landing
from pv_platform.defs.partitions import HOUR_KEY_FORMAT, hourly
from pv_platform.defs.resources import PlatformResource
from pv_platform.kpi.hourly import EDGE_MARGIN
from pv_platform.landing import archive, list_closed, read_segment, segment_path
from pv_platform.settings import get_settings

telemetry = dg.AssetSpec(
    "telemetry",
    partitions_def=hourly,
    group_name="telemetry",
    description="Raw readings in the `samples` table; a partition is materialized when an ingest run loads rows of that hour.",
)
RETRY_AFTER_S = 600  # a segment requested this long ago and still not archived is requested again


class IngestConfig(dg.Config):
    segment_ids: list[str]


# A database outage fails the op; it is retried in the same run with growing delays (15, 30, 60, 120,
# 240 s by default: a four-minute outage costs no run), and the segments wait in the landing meanwhile.
INGEST_RETRY = dg.RetryPolicy(
    max_retries=get_settings().ingest_retries,
    delay=get_settings().ingest_retry_delay_s,
    backoff=dg.Backoff.EXPONENTIAL,
)


@dg.op(out=dg.Out(dg.Nothing), retry_policy=INGEST_RETRY)
def ingest_segments(
    context: dg.OpExecutionContext, config: IngestConfig, platform: PlatformResource
) -> None:
    """Load each segment exactly once (ledger + ON CONFLICT), archive it, report the hours it touched."""
    db = platform.db()
    report_changed_hours(context, db)  # hours an earlier, failed attempt or run loaded
    totals = {"segments": 0, "rows": 0, "inserted": 0, "quarantined": 0, "already_loaded": 0}
    for segment_id in config.segment_ids:
        path = segment_path(platform.landing_dir, segment_id)
        if not path.exists():
            context.log.info(
                f"segment {segment_id} is no longer waiting (archived by an earlier run)"
            )
            continue
        try:  # an unreadable segment goes to rejected/ (quarantine row, alert); the rest still load
            segment = read_segment(path, landing.TimeLimits.for_plant_file(platform.plant_file))
        except landing.SegmentError as exc:
            db.telemetry.reject_segment(segment_id, str(exc), path.read_bytes()[:65536])
            landing.reject(platform.landing_dir, segment_id, str(exc))
            context.log.warning(f"segment {segment_id} rejected: {exc}")
            continue
        result = db.telemetry.ingest_segment(segment, EDGE_MARGIN.total_seconds())
        archive(platform.landing_dir, segment_id)
        totals["segments"] += 1
        totals["rows"] += result.rows
        totals["inserted"] += result.inserted
        totals["quarantined"] += result.quarantined
        totals["already_loaded"] += int(result.already_loaded)
    reported = report_changed_hours(context, db)
    context.log.info(f"ingest: {totals}; {reported} hour(s) reported")


def report_changed_hours(context: dg.OpExecutionContext, db) -> int:
    """Report every hour loaded and not yet reported as a `telemetry` materialization (the KPI sensor
    computes from these). The hours are recorded with the samples, in the same transaction, so an attempt
    that fails after loading some segments loses no report: the next attempt or run makes it."""
    changes = db.telemetry.unreported_hours()
    if not changes:
        return 0
    db.telemetry.refresh_rollup(
        min(h for h, _ in changes), max(h for h, _ in changes) + timedelta(hours=1)
    )
    valid = set(hourly.get_partition_keys())
    outside = []
    for hour, _ in changes:
        key = hour.astimezone(UTC).strftime(HOUR_KEY_FORMAT)
        if key in valid:
            context.log_event(dg.AssetMaterialization("telemetry", partition=key))
        else:
            outside.append(key)
    if outside:  # stored, but no KPI partition exists for them: say so loudly
        context.log.error(
            f"{len(outside)} loaded hour(s) lie outside the KPI partitions (PVP_KPI_START ="
            f" {get_settings().kpi_start}): {outside[:5]}{' ...' if len(outside) > 5 else ''};"
            " their KPIs are not computed"
        )
    db.telemetry.mark_reported(changes)
    return len(changes) - len(outside)


# Ingest runs go ahead of KPI runs in the run queue: late KPIs are fine, a growing landing is not.
@dg.job(executor_def=dg.in_process_executor, tags={"pvp/kind": "ingest", "dagster/priority": "10"})
def ingest_job() -> None:
    """Load landing segments into `samples` (in-process executor: a run starts in ~1.5 s, not ~5 s)."""
    ingest_segments()


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=get_settings().sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(
    context: dg.SensorEvaluationContext, platform: PlatformResource
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
    waiting = list_closed(platform.landing_dir)
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
