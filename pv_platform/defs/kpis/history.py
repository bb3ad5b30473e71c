"""`history_backfill_sensor`: hours older than OLD_HISTORY (an import, the demo's month, a late batch
after an outage) are computed by one Dagster backfill with their local days, months and years, not by
`hourly_kpis_sensor`'s runs (see `backfills` for how the other sensors treat it)."""

from __future__ import annotations

import json
import time

import dagster as dg

from pv_platform.defs.alerts.assets import alerts
from pv_platform.defs.kpis.assets import hourly_kpis
from pv_platform.defs.kpis.backfills import (
    TELEMETRY_UPTO_TAG,
    canceled_hours,
    history_request,
    still_canceled,
)
from pv_platform.defs.kpis.jobs import ROLLUPS
from pv_platform.defs.kpis.planning import NO_OPEN_HOUR, due_hours, hour_of
from pv_platform.defs.kpis.sensors import (
    MATERIALIZATION,
    periods_touched,
    running_hours,
    telemetry_ids,
)
from pv_platform.defs.partitions import hourly
from pv_platform.defs.resources import PlantResource, TelemetryResource
from pv_platform.defs.shape import SHAPE
from pv_platform.importing.run import imports_landing

HISTORY_SETTLE_TICKS = 6  # history is handed to a backfill once it stopped changing this many ticks


def history_backfill(hours: list[str], zones: dict[str, str], telemetry_upto: int) -> dg.RunRequest:
    """One backfill over history hours (`hourly_kpis` and `alerts`) and the local days, months and
    years of every site that contain them."""
    touched = periods_touched(zones, [hour_of(k) for k in hours])
    partitions = {hourly_kpis.key: (hourly, hours), alerts.key: (hourly, hours)}
    for asset, _, job in ROLLUPS:
        keys = [p.split(":", 1)[1] for p in touched if p.startswith(f"{job.name}:")]
        partitions[asset.key] = (asset.partitions_def, sorted(keys))
    return history_request(
        partitions,
        tags={
            TELEMETRY_UPTO_TAG: str(telemetry_upto),
            "pvp/hours": str(len(hours)),
            "pvp/span": f"{min(hours)}...{max(hours)}",
            "dagster/priority": "1",  # live hours and their rollups go first
        },
    )


@dg.sensor(
    asset_selection=[hourly_kpis, alerts, *(asset for asset, _, _ in ROLLUPS)],
    minimum_interval_seconds=SHAPE.kpi_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def history_backfill_sensor(
    context: dg.SensorEvaluationContext, plant: PlantResource, telemetry_store: TelemetryResource
) -> dg.SensorResult:
    """Hand the history hours (older than OLD_HISTORY) whose telemetry is newer than their KPIs to one
    backfill, with their local days, months and years, once no import is still landing and no new
    history has arrived for HISTORY_SETTLE_TICKS ticks (an import, a replay or a late batch becomes
    one backfill, not one per ingest run). A failed backfill's hours are handed over again with the
    same growing delay as failed runs; a cancelled one's only when their telemetry changes."""
    instance = context.instance
    telemetry = telemetry_ids(instance, history=True)
    computed = instance.get_latest_storage_id_by_partition(hourly_kpis.key, MATERIALIZATION)
    state = json.loads(context.cursor) if context.cursor else {}
    attempts, (seen, changed_s) = state.get("book", {}), state.get("settle", [-1, 0.0])
    now_s = time.time()
    newest = max(telemetry.values(), default=-1)
    if newest != seen:
        seen, changed_s = newest, now_s
    cursor = {"book": attempts, "settle": [seen, changed_s], "held": state.get("held", 0)}
    settle_s = HISTORY_SETTLE_TICKS * SHAPE.kpi_sensor_interval_s
    held = canceled_hours(instance, hourly_kpis.key)
    due, book = due_hours(
        telemetry, computed, running_hours(instance), attempts, now_s, NO_OPEN_HOUR, 0.0
    )
    left = still_canceled(due, held, telemetry)
    notes = [
        f"{len(left)} history hour(s) of a cancelled backfill stay uncomputed until their telemetry"
        f" changes or the backfill is re-executed in the UI ({left[0]} … {left[-1]})"
    ] if left else []  # fmt: skip
    if len(left) != cursor["held"]:  # logged when it changes, not on every tick
        context.log.info(notes[0] if notes else "no history hour is held by a cancelled backfill")
        cursor["held"] = len(left)
    due = [k for k in due if k not in set(left)]
    waiting = imports_landing(telemetry_store.landing_dir) if due else []
    if due and (waiting or now_s - changed_s < settle_s):
        why = f"an import is landing: {waiting[:3]}" if waiting else "history is still arriving"
        notes.insert(0, f"{len(due)} history hour(s) wait: {why}")
        due = []
    else:
        cursor["book"] = {k: v for k, v in book.items() if k not in set(left)}
    if not due:
        return dg.SensorResult(
            cursor=json.dumps(cursor),
            skip_reason=dg.SkipReason("; ".join(notes) or "every history hour's KPIs are computed"),
        )
    zones = {s.id: s.timezone for s in plant.load().sites}
    context.log.info(f"{len(due)} history hour(s) ({due[0]} … {due[-1]}) in one backfill")
    return dg.SensorResult(
        run_requests=[history_backfill(due, zones, max(telemetry[k] for k in due))],
        cursor=json.dumps(cursor),
    )
