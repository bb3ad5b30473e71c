"""The hourly KPI rules of `kpi_rules` per hour, and `HourJudge`: the same rules over a range of hours
at once, each hour judged as it would have been when it ended (live, or in a back-filled month of 744
hours: the rows are judged once, not once per hour)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.alerts.kpi_rules import (
    KpiThresholds,
    cleared_fingerprints,
    data_quality_candidates,
    flagged_hours,
    kpi_candidates,
    model_bands,
    ran_throughout,
    row_candidates,
    site_limits,
    string_outliers,
)
from pv_platform.alerts.model import AlertCandidate, Severity

HeldRun = tuple[str, str, pd.Timestamp, list[float], list[float]]


class ByTime:
    """Rows sorted by a time column, sliced by [start, end) with a binary search (a range run takes
    overlapping slices for each of its hundreds of hours)."""

    def __init__(self, rows: pd.DataFrame, column: str = "period_start") -> None:
        t = pd.DatetimeIndex(pd.to_datetime(rows[column], utc=True)) if not rows.empty else None
        order = np.argsort(t.asi8, kind="stable") if t is not None else []
        self.rows, self.t = rows.iloc[order], t[order] if t is not None else None

    def between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The rows whose time is in [start, end)."""
        if self.t is None:
            return self.rows
        first, last = self.t.searchsorted([pd.Timestamp(start), pd.Timestamp(end)])
        return self.rows.iloc[first:last]


def held_runs(
    rows: pd.DataFrame,
    thresholds: Mapping[str, KpiThresholds] | None,
    back: timedelta | None = None,
) -> tuple[pd.DataFrame, list[HeldRun | None]]:
    """(each inverter's judged hours (ran throughout, enough sun) sorted by inverter and time, with
    `t`; per row, the held shortfall it ends or None). A row ends one when it and the inverter's
    `held_hours` - 1 judged hours before it (the first no more than `back` before it, when given) are
    all below expected by more than `held_margin` + the model band: (site, device, hour start,
    deviations, limits). Judged on every row at once: a range run asks for each of its hours."""
    rows = rows[rows["device_id"] != "*"] if not rows.empty else rows
    if rows.empty:
        return rows.assign(t=pd.Series(dtype="datetime64[ns, UTC]")), []
    rows = rows[ran_throughout(rows, thresholds).to_numpy(dtype=bool)]
    rows = rows.assign(t=pd.to_datetime(rows["period_start"], utc=True))
    rows = rows.sort_values(["site_id", "device_id", "t"], kind="stable")
    if rows.empty:
        return rows, []
    site = site_limits(rows, thresholds)
    limit = site["held_margin"] + model_bands(
        rows["insolation_poa_kwh_m2"], site["model_uncertainty_wm2"]
    )
    deviation = rows["expected_deviation"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):  # NaN is not short
        shorts = np.concatenate([[0], np.cumsum(deviation < -limit)])
    n = site["held_hours"].astype(int)
    i = np.arange(len(rows))
    first = np.maximum(i - n + 1, 0)
    t_ns = rows["t"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    reach_ns = back.total_seconds() * 1e9 if back is not None else np.inf
    fired = (
        (rows.groupby(["site_id", "device_id"]).cumcount().to_numpy() >= n - 1)
        & (shorts[i + 1] - shorts[first] == n)
        & (t_ns[first] >= t_ns - reach_ns)
    )
    sites, devices, times = (rows[c].to_numpy() for c in ("site_id", "device_id", "t"))
    runs: list[HeldRun | None] = [None] * len(rows)
    for k in np.flatnonzero(fired):
        runs[k] = (sites[k], devices[k], times[k], deviation[first[k] : k + 1].tolist(),
                   limit[first[k] : k + 1].tolist())  # fmt: skip
    return rows, runs


def held_candidate(found: HeldRun, now: datetime) -> AlertCandidate:
    """The `underperformance` alert of one held shortfall (`held_runs`), judged at `now`."""
    site_id, device_id, hour, deviations, limits = found
    return AlertCandidate(
        "underperformance", Severity.HIGH, site_id, device_id,
        f"{device_id}: {_span(deviations)} below expected in each of its last {len(deviations)}"
        f" judged hours (limit {max(limits):.0%} held), to {hour:%Y-%m-%d %H:%M} UTC",
        now, context={"expected_deviation": [round(float(d), 3) for d in deviations], "held": True},
    )  # fmt: skip


def _span(deviations: list[float]) -> str:
    low, high = f"{abs(max(deviations)):.0%}", f"{abs(min(deviations)):.0%}"
    return low if low == high else f"{low} to {high}"


def held_underperformance(
    recent_rows: pd.DataFrame,
    start: datetime,
    end: datetime,
    now: datetime,
    thresholds: Mapping[str, KpiThresholds] | None = None,
) -> list[AlertCandidate]:
    """`underperformance` for a smaller shortfall held: each of an inverter's last `held_hours` judged
    hours (ran throughout, enough sun), the newest in [start, end), below expected by more than
    `held_margin` + the model band (an efficiency drop or soiling too small for one hour's limit)."""
    if recent_rows.empty:
        return []
    rows = recent_rows[pd.to_datetime(recent_rows["period_start"], utc=True) < pd.Timestamp(end)]
    judged, runs = held_runs(rows, thresholds)
    newest = {
        (r[0], r[1]): r for r in zip(judged["site_id"], judged["device_id"], runs, strict=True)
    }
    return [
        held_candidate(run, now)
        for run in (r[2] for r in newest.values())  # each inverter's newest judged hour
        if run is not None and run[2] >= pd.Timestamp(start)
    ]


def hour_candidates(
    recent_rows: pd.DataFrame,
    string_hours: pd.DataFrame,
    failed_checks: pd.DataFrame,
    start: datetime,
    end: datetime,
    thresholds: Mapping[str, KpiThresholds] | None = None,
) -> list[AlertCandidate]:
    """Every KPI candidate for the hour(s) [start, end): `recent_rows` and `string_hours` reach back far
    enough for the persistent-string rule; the other rules judge only [start, end)."""
    if recent_rows.empty:
        rows = recent_rows
    else:
        period = pd.to_datetime(recent_rows["period_start"], utc=True)
        rows = recent_rows[(period >= pd.Timestamp(start)) & (period < pd.Timestamp(end))]
        inverters = recent_rows[recent_rows["device_id"] != "*"]
        if not ran_throughout(inverters, thresholds).any():
            # no judged hour within reach (a night): the held and string rules have nothing to judge
            return kpi_candidates(rows, failed_checks, end, thresholds)
    return (
        kpi_candidates(rows, failed_checks, end, thresholds)
        + held_underperformance(recent_rows, start, end, end, thresholds)
        + string_outliers(string_hours, recent_rows, end, thresholds)
    )


class HourJudge:
    """The hourly KPI rules over a range of hours at once: `candidates(start, end)` gives what
    `hour_candidates` gives for the hour [start, end) with the rows from `back` before it, and
    `cleared(start)` the availability alerts that hour shows clear (`kpi_cleared`). The rows are
    judged once; judging an hour is then a lookup (and the string rule on that hour's slice).

    recent_rows : `kpi_hourly` rows from `back` before the range's first hour to its end
    string_hours, failed_checks : as `hour_candidates` takes them, over the same reach
    """

    def __init__(
        self,
        recent_rows: pd.DataFrame,
        string_hours: pd.DataFrame,
        failed_checks: pd.DataFrame,
        back: timedelta,
        thresholds: Mapping[str, KpiThresholds] | None = None,
    ) -> None:
        self.thresholds, self.back = thresholds, back
        self.recent, self.strings = ByTime(recent_rows), ByTime(string_hours, "bucket")
        self.failed = ByTime(failed_checks)
        flagged, short = flagged_hours(recent_rows, thresholds)
        self.flagged = _by_hour(flagged, list(zip(flagged.itertuples(), short, strict=True)))
        judged, runs = held_runs(recent_rows, thresholds, back)
        self.held = _by_hour(judged, runs)
        self.clear = (
            _by_hour(*cleared_fingerprints(recent_rows, thresholds))
            if not recent_rows.empty
            else {}
        )

    def candidates(self, start: datetime, end: datetime) -> list[AlertCandidate]:
        """Every KPI candidate of the hour [start, end), judged at `end`."""
        hour = pd.Timestamp(start)
        out = [
            c
            for row, short in self.flagged.get(hour, [])
            for c in row_candidates(row, short, end, self.thresholds)
        ]
        out += data_quality_candidates(self.failed.between(start, end), end)
        out += [held_candidate(run, end) for run in self.held.get(hour, [])]
        strings = self.strings.between(start - self.back, end)
        if not strings.empty:
            recent = self.recent.between(start - self.back, end)
            out += string_outliers(strings, recent, end, self.thresholds)
        return out

    def cleared(self, start: datetime) -> set[str]:
        """Fingerprints of the `availability_drop` alerts the hour from `start` shows clear."""
        return set(self.clear.get(pd.Timestamp(start), []))


def _by_hour(rows: pd.DataFrame, items: list) -> dict[pd.Timestamp, list]:
    """`items` (one per row, None for nothing) grouped by their row's hour (`period_start`)."""
    out: dict[pd.Timestamp, list] = {}
    if rows.empty:
        return out
    for hour, item in zip(pd.to_datetime(rows["period_start"], utc=True), items, strict=True):
        if item is not None:
            out.setdefault(hour, []).append(item)
    return out
