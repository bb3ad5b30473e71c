"""KPI alert rules on sub-hourly windows (10 minutes by default): `underperformance`,
`availability_drop` and `string_outlier` judged as each window closes, not once its hour is over (the
hourly rules of `kpi_rules` detected a fault 1.5-2 h after it began). The same gates as the hourly
rules: the minimum irradiance (mean POA of the window), the expected-power model's uncertainty band,
no downtime of any kind in a judged window, and a shortfall held for N windows. Pure functions; the
Dagster `alerts` asset feeds them window KPI rows (`hourly_kpis_range(..., window_min=15)`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.alerts.kpi_rules import (
    DOWNTIME_COLUMNS,
    KpiThresholds,
    model_bands,
    total_loss,
)
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.kpi.flatness import moves_at_resolution, peers_held_still, resolution_of
from pv_platform.vocabulary import Metric

EPOCH = pd.Timestamp(0, tz="UTC")
WINDOW_RULES = {"underperformance", "availability_drop", "string_outlier"}


def _limits(thresholds: Mapping[str, KpiThresholds] | None, site_id: str) -> KpiThresholds:
    return (thresholds or {}).get(site_id) or KpiThresholds()


def judged_windows(
    rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None = None
) -> pd.DataFrame:
    """The inverter windows a performance rule may judge, with `t` (window start), `band` (the model's
    uncertainty as a fraction of expected energy) and `judged`: no downtime of any kind, a mean POA of at
    least the site's minimum (`min_insolation_kwh_m2` per hour: 0.2 = 200 W/m2) and enough samples.

    rows : window KPI rows (inverters and sites), `period_h` the window's length [h]
    """
    if rows.empty:
        return rows.assign(t=[], band=[], judged=[])
    inv = rows[rows["device_id"] != "*"]
    limits = inv["site_id"].map(lambda s: _limits(thresholds, s))
    mean_poa_kwh_m2_h = inv["insolation_poa_kwh_m2"] / inv["period_h"]
    downtime_s = inv[DOWNTIME_COLUMNS].fillna(1.0).sum(axis=1)
    judged = (
        (downtime_s == 0)
        & (mean_poa_kwh_m2_h >= limits.map(lambda t: t.min_insolation_kwh_m2))
        & (inv["samples"] >= limits.map(lambda t: t.window_min_samples))
    )
    uncertainty_wm2 = limits.map(lambda t: t.model_uncertainty_wm2).to_numpy(dtype=float)
    band = model_bands(
        inv["insolation_poa_kwh_m2"], uncertainty_wm2, inv["period_h"].to_numpy(float)
    )
    return inv.assign(t=pd.to_datetime(inv["period_start"], utc=True), band=band, judged=judged)


def availability_windows(
    windows: pd.DataFrame, start: datetime, end: datetime, now: datetime, thresholds=None
) -> list[AlertCandidate]:
    """`availability_drop` (MEDIUM) per inverter window in [start, end) below `availability_min`: a
    stopped inverter is seen within one window. A total loss is CRITICAL once a whole hour shows it
    (the hourly rule); one window of it is a drop."""
    out: dict[str, AlertCandidate] = {}
    inside = windows[(windows["t"] >= pd.Timestamp(start)) & (windows["t"] < pd.Timestamp(end))]
    for row in inside.sort_values("t").itertuples():
        a = row.availability_time
        if a == a and a < _limits(thresholds, row.site_id).availability_min:
            total = total_loss(a, row.time_forced_outage_s)
            span = f"the {row.period_h * 60:.0f} minutes from {pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC"
            candidate = AlertCandidate(
                "availability_drop", Severity.MEDIUM, row.site_id, row.device_id,
                f"{row.device_id}: no production in {span}" if total else
                f"{row.device_id}: availability {a:.0%} in {span} ({row.time_forced_outage_s / 60:.0f} min forced outage)",
                now, context={"availability": 0.0 if total else float(a), "hour": str(row.period_start)},
            )  # fmt: skip
            out[candidate.fingerprint] = candidate  # the newest window's text
    return list(out.values())


def string_window_means(samples, windows: pd.DatetimeIndex, window_min: int) -> pd.DataFrame:
    """Mean current of each string entity in each window: site_id, device_id, metric, bucket,
    avg_value [A] (time-weighted, on the KPI maths' one-minute grid; NaN-free rows only).

    samples : a SampleSet of the `mpptN_dc_current` entities over the windows
    """
    from pv_platform.kpi.hourly import MAX_GAP_S, STEP_S

    rows = []
    if len(windows) == 0:
        return pd.DataFrame(columns=["site_id", "device_id", "metric", "bucket", "avg_value"])
    start, end = windows[0], windows[-1] + pd.Timedelta(minutes=window_min)
    for key in samples:
        found = samples.step_means(key, start, end, STEP_S, MAX_GAP_S)
        if found is None:
            continue
        means = found[0].reshape(len(windows), window_min)
        with np.errstate(invalid="ignore"):
            per_window = np.nanmean(np.where(np.isnan(means), np.nan, means), axis=1)
        for bucket, value in zip(windows, per_window, strict=True):
            if value == value:
                rows.append((*key, bucket, float(value)))
    return pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "bucket", "avg_value"])


# constant by nature (counters, states, set-points): never "frozen"
NOT_FROZEN = {
    Metric.AC_ENERGY, Metric.EXPORT_ENERGY, Metric.IMPORT_ENERGY, Metric.OPERATING_STATE,
    Metric.EVENTS, Metric.POWER_FACTOR, Metric.ACTIVE_POWER_LIMIT_PCT,
}  # fmt: skip
SUN_WM2 = 100.0  # a window with a POA sample above this has sun: measurements should vary


def frozen_windows(
    samples, plant, end: datetime, window_min: int, thresholds=None
) -> list[AlertCandidate]:
    """`data_quality` (key `frozen_values`, per device) when the window ending at `end` closes: a
    measurement stuck at one non-zero value for `frozen_windows` windows (30 min) up to `end`, still
    reporting in the newest window (a silent device is not frozen), while its site had sun in that
    window (a POA sample above 100 W/m2: at night idle signals are legitimately flat). AC power held
    at 98 % of the rating or more is clipping; counters, states and set-points are constant by nature,
    and a signal moving by single steps of a coarse resolution is flat for long stretches by nature.
    Where other devices of the site measure the same quantity and reported in the second half of the
    stuck stretch, one of them must have moved there (`peers_held_still`): every inverter's cabinet
    temperature flat together (the same weather, all clipping at noon) is the plant's physics.

    samples : a SampleSet reaching back at least `frozen_windows` windows before `end`
    """
    end_us = pd.Timestamp(end).value // 1000
    newest_us = end_us - window_min * 60_000_000
    ratings = {(s.id, d.id): d.p_ac_kw * 1000.0 for s in plant.sites for d in s.inverters}
    sunny, stuck = set(), {}
    for key in samples:
        ts, v = samples.arrays(key)
        # the samples before `end`, as views (a month's run asks at each of its 2,976 window ends)
        n, newest = (int(i) for i in np.searchsorted(ts, [end_us, newest_us]))
        ts, v = ts[:n], v[:n]
        if key[2] == Metric.POA_IRRADIANCE and bool((v[newest:] > SUN_WM2).any()):
            sunny.add(key[0])
        if key[2] in NOT_FROZEN or n < 3 or ts[-1] < newest_us or v[-1] == 0.0:
            continue
        first = int(samples.run_starts(key)[n - 1])  # the newest run of one value starts here
        near = v[np.searchsorted(ts, ts[first] - 1_800_000_000) :]  # the run and 30 min before
        if moves_at_resolution(near):
            continue  # whole degrees: flat for long stretches by nature
        held_min = (end_us - ts[first]) / 60e6
        t = _limits(thresholds, key[0])
        clipping = key[2] == Metric.AC_POWER and v[-1] >= 0.98 * ratings.get(key[:2], np.inf)
        if len(v) - first >= 3 and held_min >= t.frozen_windows * window_min and not clipping:
            since = pd.Timestamp(ts[first], unit="us", tz="UTC")
            found = (key, float(v[-1]), since, int(ts[first]), resolution_of(near))
            stuck.setdefault(key[:2], []).append(found)
    stuck = {
        device: kept
        for device, found in stuck.items()
        if (kept := [f for f in found if not peers_held_still(samples, f[0], f[3], end_us, f[4])])
    }
    out = []
    for (site_id, device_id), found in sorted(stuck.items()):
        if site_id not in sunny:
            continue
        since = min(f[2] for f in found)
        names = ", ".join(f"{k[2]} at {v:g}" for k, v, *_ in found)
        out.append(
            AlertCandidate(
                "data_quality", Severity.MEDIUM, site_id, device_id,
                f"{device_id}: {names} unchanged since {since:%Y-%m-%d %H:%M} UTC in daylight (frozen"
                f" sensor: at least {_limits(thresholds, site_id).frozen_windows * window_min} min)",
                end, key="frozen_values",
                context={"hour": str(since), "entities": [".".join(f[0]) for f in found]},
            )
        )  # fmt: skip
    return out


LIVE_STEP = timedelta(
    minutes=5
)  # how often the running hour is judged live (PVP_KPI_LIVE_INTERVAL_S)


def frozen_by_end(
    samples, plant, ends: list[datetime], window_min: int, thresholds=None
) -> tuple[dict[datetime, list[AlertCandidate]], dict[datetime, list]]:
    """(`frozen_windows` at each window end; for the findings new at an end, the first live step
    inside that window at which they already held: {end: [(step, [candidates])]}). A stuck value is
    known once it has been flat long enough, not at the next window end: live, the running hour is
    judged every `LIVE_STEP`, so a back-fill opens it at the step where a live run would have."""
    found, early, before = {}, {}, set()
    for end in ends:
        found[end] = frozen_windows(samples, plant, end, window_min, thresholds)
        new = {c.fingerprint for c in found[end]} - before
        before = {c.fingerprint for c in found[end]}
        step = end - timedelta(minutes=window_min) + LIVE_STEP
        while new and step < end:
            at_step = [c for c in frozen_windows(samples, plant, step, window_min, thresholds)
                       if c.fingerprint in new]  # fmt: skip
            if at_step:
                early.setdefault(end, []).append((step, at_step))
                new -= {c.fingerprint for c in at_step}
            step += LIVE_STEP
    return found, early


def window_ends(start: datetime, end: datetime, window_min: int) -> list[datetime]:
    """The ends of the windows that close in (start, end]."""
    step = pd.Timedelta(minutes=window_min)
    ends = pd.date_range(pd.Timestamp(start) + step, pd.Timestamp(end), freq=step)
    return [e.to_pydatetime() for e in ends]
