"""History (an import, the demo's month, hours that landed late after an outage) is computed as ONE
Dagster asset backfill, visible and cancellable in the UI's Backfills tab: its hours (`hourly_kpis` and
`alerts`, in runs of up to 48 hours) and then the site-local days, months and years that contain them.
The rollups depend on every hour (`AllPartitionMapping`), so the backfill daemon starts a day only when
all the backfill's hours are done: each period is computed once, from all of its imported hours.

The KPI sensors treat the hours and periods of a backfill in progress as running; the rollup sensor
leaves the periods a history backfill computes to it; the hours of a CANCELED one are left alone until
their telemetry changes again (cancelling means "not now", so the sensor does not start it again).

A sensor submits a backfill by returning `RunRequest.for_asset_graph_subset` (Dagster's sensor daemon
then adds the backfill). `AssetGraphSubset`, `BulkActionStatus` and `PartitionBackfill` are not in
Dagster's public API: pinned to dagster 1.13.27, and covered by tests/test_import_daemon.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

from pv_platform.defs.kpis.planning import contiguous_ranges, hour_of, hours_between

HISTORY_TAG = "pvp/backfill"  # on the backfill and every run it launches
HISTORY = "history"
TELEMETRY_UPTO_TAG = (
    "pvp/telemetry_upto"  # the newest telemetry storage id the backfill was made for
)
IN_PROGRESS = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING]
CANCELED = [BulkActionStatus.CANCELED]
RECENT = 50  # history backfills looked at per status (each covers any number of hours)


def history_backfills(instance: dg.DagsterInstance, statuses: list) -> list:
    """The platform's history backfills with one of `statuses`, newest first (other backfills, made by
    hand in the UI, are the user's: not counted)."""
    found = instance.get_backfills(filters=BulkActionsFilter(statuses=statuses), limit=RECENT)
    return [b for b in found if b.tags.get(HISTORY_TAG) == HISTORY and b.is_asset_backfill]


def history_runs(instance: dg.DagsterInstance, run_ids: set[str]) -> dict[str, str]:
    """Those of `run_ids` that a history backfill launched -> that backfill's id."""
    if not run_ids:
        return {}
    runs = instance.get_runs(
        filters=dg.RunsFilter(run_ids=sorted(run_ids), tags={HISTORY_TAG: HISTORY})
    )
    return {run.run_id: run.tags.get("dagster/backfill", "") for run in runs}


def backfill_outcomes(instance: dg.DagsterInstance, backfill_ids: Iterable[str]) -> dict[str, str]:
    """Each backfill's end: "failed" (it stopped short: a run failed, or the daemon could not load the
    code location during a database outage), "done" (completed, cancelled or gone) or "running"."""
    failed = {BulkActionStatus.FAILED, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILING}
    outcomes = {}
    for backfill_id in backfill_ids:
        backfill = instance.get_backfill(backfill_id)
        if backfill is not None and backfill.status in failed:
            outcomes[backfill_id] = "failed"
        elif backfill is None or backfill.status not in IN_PROGRESS:
            outcomes[backfill_id] = "done"
        else:
            outcomes[backfill_id] = "running"
    return outcomes


def target_keys(backfill, asset_key: dg.AssetKey) -> list[str]:
    """The partition keys of `asset_key` that a backfill targets (none: [])."""
    data = backfill.asset_backfill_data
    subset = data.target_subset.partitions_subsets_by_asset_key.get(asset_key) if data else None
    return list(subset.get_partition_keys()) if subset is not None else []


def hours_in_progress(instance: dg.DagsterInstance, hourly_asset: dg.AssetKey) -> set[str]:
    """Hours in a history backfill that is still requested or being cancelled."""
    return {
        key
        for backfill in history_backfills(instance, IN_PROGRESS)
        for key in target_keys(backfill, hourly_asset)
    }


def canceled_hours(instance: dg.DagsterInstance, hourly_asset: dg.AssetKey) -> dict[str, int]:
    """Hours of cancelled history backfills -> the telemetry storage id the backfill was made for (the
    newest of several)."""
    held: dict[str, int] = {}
    for backfill in history_backfills(instance, CANCELED):
        upto = int(backfill.tags.get(TELEMETRY_UPTO_TAG, "-1"))
        for key in target_keys(backfill, hourly_asset):
            held[key] = max(held.get(key, -1), upto)
    return held


def still_canceled(due: Iterable[str], held: Mapping[str, int], telemetry: Mapping[str, int]):
    """The due hours a cancelled backfill held whose telemetry has not changed since (left alone)."""
    return [k for k in due if k in held and telemetry.get(k, -1) <= held[k]]


def history_request(
    partitions: Mapping[dg.AssetKey, tuple[dg.PartitionsDefinition, Iterable[str]]],
    tags: Mapping[str, str],
) -> dg.RunRequest:
    """A run request the sensor daemon turns into one asset backfill over the given partitions (keys
    a partitions definition does not have are left out)."""
    subsets = {
        key: part.subset_with_partition_keys([k for k in keys if part.has_partition_key(k)])
        for key, (part, keys) in partitions.items()
    }
    subset = AssetGraphSubset(
        partitions_subsets_by_asset_key={k: s for k, s in subsets.items() if not s.is_empty}
    )
    return dg.RunRequest.for_asset_graph_subset(subset, tags={HISTORY_TAG: HISTORY, **tags})


def released_hours(instance, deferred: dict[str, list]) -> dict[datetime, int]:
    """The hours of history backfills that failed (their periods are the rollup sensor's now), taken
    out of `deferred` (backfill id -> [newest storage id, hour keys]) with those of backfills that
    ended otherwise; hours of running backfills stay."""
    released: dict[datetime, int] = {}
    for backfill_id, outcome in backfill_outcomes(instance, list(deferred)).items():
        if outcome == "running":
            continue
        storage_id, keys = deferred.pop(backfill_id)
        if outcome == "failed":
            released.update(dict.fromkeys(map(hour_of, keys), storage_id))
    return released


def deferred_from(state: dict) -> dict[str, list]:
    """The cursor's deferred backfill hours: backfill id -> [newest storage id, set of hour keys]."""
    return {
        backfill_id: [storage_id, {k for a, b in spans for k in hours_between(a, b)}]
        for backfill_id, (storage_id, spans) in state.get("deferred", {}).items()
    }


def deferred_to(deferred: dict[str, list]) -> dict[str, list]:
    """`deferred_from`'s inverse for the cursor: each backfill's hours as (first, last) ranges."""
    return {
        b: [storage_id, contiguous_ranges(keys, longest=None)]
        for b, (storage_id, keys) in deferred.items()
    }
