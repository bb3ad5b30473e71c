"""The `alerts` asset: the KPI alert rules judged on every hour whose KPIs were computed, and on the
closed 10-minute windows (`window_min`) of each hour (the running hour's too, as its data arrive)."""

from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from pv_platform import clock
from pv_platform.alerts.hour_judge import HourJudge
from pv_platform.alerts.kpi_rules import (
    KPI_RULES,
    STRING_CURRENT_LIKE,
    quarantine_rate_candidates,
)
from pv_platform.alerts.limits import fleet_from_settings, kpi_thresholds
from pv_platform.alerts.window_judge import WindowJudge
from pv_platform.alerts.window_rules import (
    WINDOW_RULES,
    frozen_by_end,
    judged_windows,
    string_window_means,
    window_ends,
)
from pv_platform.defs.kpis.assets import HOURS_PER_RUN, KPI_RETRY, hourly_kpis
from pv_platform.defs.partitions import hourly
from pv_platform.defs.resources import (
    AlertResource,
    KpiResource,
    PlantResource,
    TelemetryResource,
)
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.settings import get_settings
from pv_platform.vocabulary import MpptMetric, mppt_metric

HOUR = timedelta(hours=1)
MAX_MPPT = 12  # string inputs read per inverter for the window string rule


def _floor(t: datetime, step_s: int) -> datetime:
    return datetime.fromtimestamp(t.timestamp() // step_s * step_s, tz=UTC)


def _windows(telemetry, plant, limits: dict, start: datetime, end: datetime, now, lag_s: float):
    """(window length [min], how far the holds reach back, window ends closed in (start, end] and
    judged now, the `WindowJudge` of the judged window KPI rows and string means, data-quality
    candidates by window end: frozen values, and quarantine rates over the hour up to each window's
    end) for the sub-hourly rules: window KPIs from the telemetry, reaching back over the longest
    hold, not stored. No windows when the rules are hourly (`window_min` 60).

    A window closed by `now` (the platform clock) is judged once a reading from its end on is stored,
    or `lag_s` after its end (`clock.ingest_lag_s`: a silent plant is not waited for): a window judged while
    its last minutes were still on their way was judged on part of its data, once (at 30x, 30 wall s
    of ingest are 15 minutes: a 10-minute window judged on nothing). The hour is run again when they
    land, and judges it then."""
    window_min = min((t.window_min for t in limits.values()), default=60)
    step_s = window_min * 60
    closed_end = min(end, _floor(now, step_s))
    none = window_min, timedelta(0), [], WindowJudge(pd.DataFrame(), pd.DataFrame(), 60), {}, {}
    if window_min >= 60 or closed_end <= start:
        return none
    holds = max(
        max(t.window_hold, t.window_held, t.string_outlier_windows, t.frozen_windows)
        for t in limits.values()
    )
    lead = holds * timedelta(seconds=step_s)
    first = start - lead
    samples = telemetry.sample_set(first - EDGE_MARGIN, closed_end + EDGE_MARGIN, HOURLY_METRICS)
    stored = max(samples.newest() or first, now - timedelta(seconds=lag_s))
    closed_end = min(closed_end, _floor(stored, step_s))
    if closed_end <= start:
        return none
    rows = hourly_kpis_range(samples, plant, first, closed_end, window_min=window_min)
    strings = telemetry.sample_set(
        first, closed_end, [mppt_metric(i, MpptMetric.DC_CURRENT) for i in range(1, MAX_MPPT + 1)]
    )
    grid = pd.date_range(first, closed_end, freq=f"{window_min}min", inclusive="left")
    means = string_window_means(strings, grid, window_min)
    ends = window_ends(start, closed_end, window_min)
    # rejected inputs are rare (and history's were received when it was imported): one look at the
    # whole range first, not one query per window for nothing
    rejected = bool(ends) and not telemetry.quarantine_counts(ends[0] - HOUR, ends[-1]).empty
    frozen, early = frozen_by_end(samples, plant, ends, window_min, limits)
    quality = {
        t: frozen[t]
        + (
            quarantine_rate_candidates(
                telemetry.quarantine_counts(t - HOUR, t), plant, 1.0, t, limits
            )
            if rejected
            else []
        )
        for t in ends
    }
    return (
        window_min,
        lead,
        ends,
        WindowJudge(judged_windows(rows, limits), means, window_min, limits),
        quality,
        early,
    )


def _judge_windows(engine, done, found, ends, hour: datetime) -> tuple[list, list]:
    """Each closed window of the hour starting at `hour` but the last judged at its end, as it would
    have been live (an earlier run of the running hour judged those up to `done`: skipped), on the
    windows a run of that one hour sees (from `lead` before it: a range run judges alike): (alerts
    opened, the last window's candidates, judged with the hourly rules)."""
    opened, (_, lead, _, judge, quality, early) = [], found

    def judged_at(t: datetime) -> list:
        for step, frozen in early.get(t, []) if done is None or t > done else []:
            # a stuck value, at the live step it was known; judging nothing else (clears nothing)
            opened.extend(engine.process(frozen, step, set()).opened)
        active = engine.active_fingerprints()  # open alerts hold by hysteresis
        return judge.candidates(t, active, since=hour - lead) + quality.get(t, [])

    for t in ends[:-1]:
        if done is None or t > done:
            opened += engine.process(judged_at(t), t, WINDOW_RULES).opened
    return opened, judged_at(ends[-1]) if ends else []


def _evaluated_to(context: dg.AssetExecutionContext) -> datetime | None:
    """How far the previous run of this (one) hour judged it: its `evaluated_to` (the running hour is
    run again as its data arrive)."""
    if len(context.partition_keys) != 1:
        return None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=context.asset_key, asset_partitions=[context.partition_key]
        ),
        limit=1,
    ).records
    found = records[0].asset_materialization if records else None
    value = found.metadata.get("evaluated_to") if found else None
    return datetime.fromisoformat(value.value) if value else None


def _judge_hours(engine, done, window, now, inputs, found, extra) -> tuple[list, dict]:
    """Hour by hour, as it would have been live: the hour's closed windows, then at the hour's end its
    hourly rules with its last window (a range run judged every window first and the hours after, so a
    fault's window alert was resolved before its hour re-opened it: two alerts for one fault).
    (alerts opened, counts of updated, resolved and suppressed)."""
    judge, ends = HourJudge(*inputs), found[2]
    opened, counts = [], {"updated": 0, "resolved": 0, "suppressed": 0}
    starts = pd.date_range(window.start, window.end, freq="h", inclusive="left")
    for h0 in (t.to_pydatetime() for t in starts):
        h1 = min(h0 + timedelta(hours=1), window.end)
        mine = ends[bisect_right(ends, h0) : bisect_right(ends, h1)]  # the windows in (h0, h1]
        got, last = _judge_windows(engine, done, found, mine, h0)
        candidates = judge.candidates(h0, h1) + last
        if h1 >= window.end:
            candidates += extra  # quarantine rates over the whole window, at its end
        cleared = judge.cleared(h0)  # what a total-loss alert needs to resolve
        result = engine.process(candidates, min(h1, now), KPI_RULES, cleared)
        opened += got + result.opened
        counts["updated"] = result.updated
        counts["resolved"] += len(result.resolved)
        counts["suppressed"] += len(result.suppressed)
    return opened, counts


@dg.asset(
    partitions_def=hourly,
    deps=[hourly_kpis],
    group_name="alerts",
    kinds={"postgres"},
    backfill_policy=HOURS_PER_RUN,
    retry_policy=KPI_RETRY,
)
def alerts(
    context: dg.AssetExecutionContext,
    kpi_store: KpiResource,
    telemetry_store: TelemetryResource,
    plant: PlantResource,
    alert_service: AlertResource,
) -> dg.MaterializeResult:
    """KPI alerts of each hour: underperformance, availability drops, failed ERROR data-quality checks →
    the same engine and `alerts` table as the real-time rules."""
    window = context.partition_time_window
    fleet = fleet_from_settings(get_settings())
    limits = {site.id: kpi_thresholds(site, fleet) for site in plant.load().sites}
    back = timedelta(
        hours=max((max(t.string_outlier_hours, t.held_hours) for t in limits.values()), default=1)
    )
    # every hour of the window is judged (a run over 48 back-filled hours judges 48), and the string
    # rule looks back `back` hours before its start
    kpis = kpi_store.store()
    recent = kpis.read("kpi_hourly", window.start - back, window.end)
    failed = kpis.alerting_failures(window.start, window.end)
    telemetry = telemetry_store.store()
    strings = telemetry.hourly_rollup(
        window.start - back, window.end, metric_like=STRING_CURRENT_LIKE
    )
    platform_now = clock.now()
    now = min(window.end, platform_now)
    found = _windows(telemetry, plant.load(), limits, window.start, window.end, platform_now,
                     clock.ingest_lag_s())  # fmt: skip
    hours = (window.end - window.start).total_seconds() / 3600.0
    rejected = telemetry.quarantine_counts(window.start, window.end)
    extra = quarantine_rate_candidates(rejected, plant.load(), hours, window.end, limits)
    engine = alert_service.engine()  # with the notifiers: MQTT and webhook
    inputs = (recent, strings, failed, back, limits)
    done = _evaluated_to(context)
    opened, result = _judge_hours(engine, done, window, now, inputs, found, extra)
    if not engine.flush(timeout_s=30.0):  # the run process exits next: deliver first
        context.log.warning("some alert notifications were still under way after 30 s")
    return dg.MaterializeResult(
        metadata={
            "opened": len(opened),
            # the newest window judged: a window held back for its data is judged by a later run
            "evaluated_to": max(
                found[2][-1] if found[2] else window.start, done or window.start
            ).isoformat(),  # fmt: skip
            "still_active": result["updated"],
            "resolved": result["resolved"],
            "suppressed": result["suppressed"],
            "opened_alerts": dg.MetadataValue.md(
                "\n".join(f"- {a['severity']} {a['message']}" for a in opened) or "none"
            ),
        }
    )
