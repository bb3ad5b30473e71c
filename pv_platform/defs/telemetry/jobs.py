"""The ingest job: load landing segments into `samples` exactly once and report the hours they touched."""

from datetime import UTC, timedelta

import dagster as dg

from pv_platform import landing
from pv_platform.defs.partitions import HOUR_KEY_FORMAT, hourly
from pv_platform.defs.resources import PlantResource, TelemetryResource
from pv_platform.defs.shape import SHAPE
from pv_platform.kpi.hourly import EDGE_MARGIN
from pv_platform.landing import archive, read_segment, segment_path
from pv_platform.storage.telemetry import TelemetryStore


class IngestConfig(dg.Config):
    segment_ids: list[str]


# A database outage fails the op; it is retried in the same run with growing delays (15, 30, 60, 120,
# 240 s by default: a four-minute outage costs no run), and the segments wait in the landing meanwhile.
INGEST_RETRY = dg.RetryPolicy(
    max_retries=SHAPE.ingest_retries,
    delay=SHAPE.ingest_retry_delay_s,
    backoff=dg.Backoff.EXPONENTIAL,
)


@dg.op(out=dg.Out(dg.Nothing), retry_policy=INGEST_RETRY)
def ingest_segments(
    context: dg.OpExecutionContext,
    config: IngestConfig,
    telemetry_store: TelemetryResource,
    plant: PlantResource,
) -> None:
    """Load each segment exactly once (ledger + ON CONFLICT), archive it, report the hours it touched."""
    store, landing_dir = telemetry_store.store(), telemetry_store.landing_dir
    limits = landing.TimeLimits.for_plant_file(plant.plant_file)
    report_changed_hours(context, store)  # hours an earlier, failed attempt or run loaded
    totals = {"segments": 0, "rows": 0, "inserted": 0, "quarantined": 0, "already_loaded": 0}
    for segment_id in config.segment_ids:
        path = segment_path(landing_dir, segment_id)
        if not path.exists():
            context.log.info(
                f"segment {segment_id} is no longer waiting (archived by an earlier run)"
            )
            continue
        try:  # an unreadable segment goes to rejected/ (quarantine row, alert); the rest still load
            segment = read_segment(path, limits)
        except landing.SegmentError as exc:
            store.reject_segment(segment_id, str(exc), path.read_bytes()[:65536])
            landing.reject(landing_dir, segment_id, str(exc))
            context.log.warning(f"segment {segment_id} rejected: {exc}")
            continue
        result = store.ingest_segment(segment, EDGE_MARGIN.total_seconds())
        archive(landing_dir, segment_id)
        totals["segments"] += 1
        totals["rows"] += result.rows
        totals["inserted"] += result.inserted
        totals["quarantined"] += result.quarantined
        totals["already_loaded"] += int(result.already_loaded)
    reported = report_changed_hours(context, store)
    context.log.info(f"ingest: {totals}; {reported} hour(s) reported")


def report_changed_hours(context: dg.OpExecutionContext, store: TelemetryStore) -> int:
    """Report every hour loaded and not yet reported as a `telemetry` materialization (the KPI sensor
    computes from these). The hours are recorded with the samples, in the same transaction, so an attempt
    that fails after loading some segments loses no report: the next attempt or run makes it."""
    changes = store.unreported_hours()
    if not changes:
        return 0
    store.refresh_rollup(
        min(h for h, _ in changes), max(h for h, _ in changes) + timedelta(hours=1)
    )
    first, last = hourly.get_first_partition_key(), hourly.get_last_partition_key()
    outside = []
    for hour, _ in changes:
        key = hour.astimezone(UTC).strftime(HOUR_KEY_FORMAT)
        if first <= key <= last:  # the keys sort as their hours do
            context.log_event(dg.AssetMaterialization("telemetry", partition=key))
        else:
            outside.append(key)
    store.mark_reported(changes)
    if outside:  # stored, but no KPI partition exists for them: log, alert, fail the run
        message = (
            f"{len(outside)} loaded hour(s) lie outside the KPI partitions ({first} to {last}):"
            f" {outside[:5]}{' ...' if len(outside) > 5 else ''}; their KPIs are not computed."
            " Set the sites' commissioning_date in the plant file (the partitions start at the"
            " earliest) and reload the code location, then run the hours' KPIs"
        )
        context.log.error(message)
        store.alert_unpartitioned_hours(message)
        raise dg.Failure(description=message, allow_retries=False)
    return len(changes)


# Ingest runs go ahead of KPI runs in the run queue: late KPIs are fine, a growing landing is not.
@dg.job(executor_def=dg.in_process_executor, tags={"pvp/kind": "ingest", "dagster/priority": "10"})
def ingest_job() -> None:
    """Load landing segments into `samples` (in-process executor: a run starts in ~1.5 s, not ~5 s)."""
    ingest_segments()
