"""KPI alert rules on sub-hourly windows (15 minutes by default): `underperformance`,
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
    _availability_candidate,
    model_band,
    string_ratios,
)
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.kpi.samples import moves_at_resolution
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
    band = [
        model_band(i, t, h)
        for i, t, h in zip(inv["insolation_poa_kwh_m2"], limits, inv["period_h"], strict=True)
    ]
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
            candidate = _availability_candidate(row, a, now)
            if candidate.severity != Severity.MEDIUM:
                candidate = AlertCandidate(
                    "availability_drop", Severity.MEDIUM, row.site_id, row.device_id,
                    f"{row.device_id}: no production in the {row.period_h * 60:.0f} minutes from"
                    f" {pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC", now,
                    context={"availability": 0.0, "hour": str(row.period_start)},
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
    Where other devices of the site measure the same quantity, one of them must have moved in the
    second half of the stuck stretch: every inverter's cabinet temperature flat together (the same
    weather, all clipping at noon, 0.1 degree steps) is the plant's physics, not a sensor's fault.

    samples : a SampleSet reaching back at least `frozen_windows` windows before `end`
    """
    end_us = pd.Timestamp(end).value // 1000
    newest_us = end_us - window_min * 60_000_000
    ratings = {(s.id, d.id): d.p_ac_kw * 1000.0 for s in plant.sites for d in s.inverters}
    sunny, stuck, flat_since = set(), {}, {}
    for key in samples:
        ts, v = samples.arrays(key)
        keep = ts < end_us
        ts, v = ts[keep], v[keep]
        if key[2] == Metric.POA_IRRADIANCE and bool((v[ts >= newest_us] > SUN_WM2).any()):
            sunny.add(key[0])
        if key[2] in NOT_FROZEN or len(v) < 3 or ts[-1] < newest_us or v[-1] == 0.0:
            continue
        changed = np.flatnonzero(v != v[-1])
        first = changed[-1] + 1 if len(changed) else 0  # the newest run of one value starts here
        flat_since[key] = int(ts[first])
        if moves_at_resolution(v[ts >= ts[first] - 1_800_000_000]):  # the run and 30 min before
            continue  # whole degrees: flat for long stretches by nature
        held_min = (end_us - ts[first]) / 60e6
        t = _limits(thresholds, key[0])
        clipping = key[2] == Metric.AC_POWER and v[-1] >= 0.98 * ratings.get(key[:2], np.inf)
        if len(v) - first >= 3 and held_min >= t.frozen_windows * window_min and not clipping:
            stuck.setdefault(key[:2], []).append(
                (key, float(v[-1]), pd.Timestamp(ts[first], unit="us", tz="UTC"))
            )
    stuck = {
        device: kept
        for device, found in stuck.items()
        if (kept := [f for f in found if _alone_flat(f[0], flat_since, end_us)])
    }
    out = []
    for (site_id, device_id), found in sorted(stuck.items()):
        if site_id not in sunny:
            continue
        since = min(f[2] for f in found)
        names = ", ".join(f"{k[2]} at {v:g}" for k, v, _ in found)
        out.append(
            AlertCandidate(
                "data_quality", Severity.MEDIUM, site_id, device_id,
                f"{device_id}: {names} unchanged since {since:%Y-%m-%d %H:%M} UTC in daylight (frozen"
                f" sensor: at least {_limits(thresholds, site_id).frozen_windows * window_min} min)",
                end, key="frozen_values",
                context={"hour": str(since), "entities": [".".join(k) for k, _, _ in found]},
            )
        )  # fmt: skip
    return out


def _alone_flat(key: tuple, flat_since: dict[tuple, int], end_us: int) -> bool:
    """Whether the stuck `key` (site, device, metric) is flat alone: no other device of its site
    measures its metric, or one of them last changed in the second half of the stretch `key` has
    been flat (`flat_since`: when each signal's newest run of one value began [us])."""
    since = flat_since[key]
    peers = [t for k, t in flat_since.items() if k[0] == key[0] and k[2] == key[2] and k != key]
    return not peers or any(t > since + (end_us - since) // 2 for t in peers)


def window_ends(start: datetime, end: datetime, window_min: int) -> list[datetime]:
    """The ends of the windows that close in (start, end]."""
    step = pd.Timedelta(minutes=window_min)
    ends = pd.date_range(pd.Timestamp(start) + step, pd.Timestamp(end), freq=step)
    return [e.to_pydatetime() for e in ends]


def _ns(column: pd.Series) -> np.ndarray:
    """A datetime column as int64 nanoseconds since the epoch (whatever its resolution)."""
    return ((pd.to_datetime(column, utc=True) - EPOCH) // pd.Timedelta(1, "ns")).to_numpy(np.int64)


def _sums(flags: pd.Series | np.ndarray) -> np.ndarray:
    """Running counts of true flags, from 0: how many of rows [i, j) hold is `s[j] - s[i]`."""
    return np.concatenate([[0], np.cumsum(np.asarray(flags, dtype=bool), dtype=np.int64)])


def _run(sums: np.ndarray, first: int, last: int, n: int) -> bool:
    """Whether rows last-n+1 .. last all hold, with at least n rows from `first` on."""
    return last - first + 1 >= n and int(sums[last + 1] - sums[last + 1 - n]) == n


class WindowJudge:
    """The window rules over a range of windows at once: `candidates(end)` gives what holds when the
    window ending at `end` closes, as it would have been live, each alert opened when its evidence was
    complete. The rows are sorted and their conditions summed once, so judging a window costs a few
    lookups per inverter and string, not a pass over the range (a back-filled year is 35,040 windows).

    - `availability_drop` (MEDIUM) per inverter window below `availability_min`: a stopped inverter is
      seen within one window (a total loss is CRITICAL once a whole hour shows it: the hourly rule).
    - `underperformance` of an inverter whose newest window closed in the judged window and whose last
      `window_hold` windows fell short by more than `expected_margin` + band with PR below `pr_min`, or
      its last `window_held` by more than `held_margin` + band. A window any downtime touches is not
      judged and breaks the run (that is availability's). Hysteresis: an open alert (its fingerprint in
      `open_fps`) holds while the newest window is judged and short by more than half `held_margin` +
      band, so a drop near the limit does not open and resolve by turns.
    - `string_outlier` for a string whose mean current stayed below `string_outlier_fraction` of the
      site's median string in each of its last `string_outlier_windows` judged windows, the newest in
      the judged window (persistent shading, soiling or degradation of one string); an open alert holds
      while its newest judged window stays below halfway between the fraction and 1. Every string of an
      inverter low is the inverter's shortfall (underperformance), not its strings'.
    - `data_quality` (key `common_mode`, site-level) for a site of at least 3 inverters all of which
      fell short by more than `held_margin` + band in the judged window: when every inverter is short
      alike, the expected-power model's input is the suspect (an irradiance sensor reading high, frozen
      at noon), or a site-wide loss; not one inverter's underperformance. Their inverters'
      underperformance is the site's finding.

    windows : `judged_windows` of window KPI rows, from far enough back for the holds
    strings : `string_window_means` over the same windows
    """

    def __init__(
        self,
        windows: pd.DataFrame,
        strings: pd.DataFrame,
        window_min: int,
        thresholds: Mapping[str, KpiThresholds] | None = None,
    ) -> None:
        self.window_min, self.thresholds = window_min, thresholds
        self.inverters: list[tuple] = []  # (site, device, t [ns], rows, sums full/held/still)
        self.sites: list[tuple] = []  # (site, t [ns] of each row, short, deviation)
        self.strings: list[tuple] = []  # (site, device, metric, bucket [ns], rows, sums low)
        if windows.empty:
            self.low, self.low_t = windows, np.array([], np.int64)
            self.judged_t = self.low_t
            return
        rows = windows.sort_values(["site_id", "device_id", "t"], kind="stable")
        t_ns = _ns(rows["t"])
        limits = rows["site_id"].map(lambda s: _limits(thresholds, s))
        dev, band, judged = rows["expected_deviation"], rows["band"], rows["judged"].astype(bool)
        full = judged & (dev < -(limits.map(lambda t: t.expected_margin) + band))
        full &= rows["pr"] < limits.map(lambda t: t.pr_min)
        held_margin = limits.map(lambda t: t.held_margin)
        held = judged & (dev < -(held_margin + band))
        still = judged & (dev < -(held_margin / 2 + band))
        keys = list(zip(rows["site_id"], rows["device_id"], strict=True))
        bounds = np.flatnonzero([a != b for a, b in zip(keys[:-1], keys[1:], strict=True)]) + 1
        for a, b in zip([0, *bounds], [*bounds, len(keys)], strict=True):
            self.inverters.append(
                (*keys[a], t_ns[a:b], rows.iloc[a:b])
                + tuple(_sums(c.to_numpy()[a:b]) for c in (full, held, still))
            )
        for site_id, part in pd.DataFrame(
            {"site": rows["site_id"], "t": t_ns, "short": held, "dev": dev}
        ).groupby("site", sort=True):
            part = part.sort_values("t", kind="stable")
            self.sites.append(
                (site_id, part["t"].to_numpy(), part["short"].to_numpy(), part["dev"].to_numpy())
            )
        by_time = np.argsort(t_ns, kind="stable")
        floor = limits.map(lambda t: t.availability_min)
        low = (rows["availability_time"] < floor).to_numpy()[by_time]
        self.low, self.low_t = rows.iloc[by_time[low]], t_ns[by_time[low]]
        self.judged_t = np.sort(t_ns[judged.to_numpy()])
        self._strings(strings, rows[judged.to_numpy()])

    def _strings(self, strings: pd.DataFrame, judged: pd.DataFrame) -> None:
        """The string means of the judged windows with their ratio to the site's median string (per
        window, so the ratios do not depend on the judged window), per string in time order."""
        if strings.empty or judged.empty:
            return
        ok = judged[["site_id", "device_id", "t"]].rename(columns={"t": "bucket"})
        frame = strings.assign(bucket=pd.to_datetime(strings["bucket"], utc=True)).merge(
            ok, on=["site_id", "device_id", "bucket"]
        )
        if frame.empty:
            return
        frame = string_ratios(frame).sort_values(
            ["site_id", "device_id", "metric", "bucket"], kind="stable"
        )
        for (site_id, device_id, metric), part in frame.groupby(
            ["site_id", "device_id", "metric"], sort=True
        ):
            f = _limits(self.thresholds, site_id).string_outlier_fraction
            ratio = part["ratio"].to_numpy()
            low = (ratio < f) & (ratio > 0.05)
            self.strings.append((site_id, device_id, metric, _ns(part["bucket"]), part, _sums(low)))

    def candidates(
        self, end: datetime, open_fps: frozenset[str] = frozenset(), since: datetime | None = None
    ) -> list[AlertCandidate]:
        """What holds when the window ending at `end` closes, seeing the rows from `since` on (None:
        all): a run of one hour sees its windows from the holds' reach before it."""
        end_ns = pd.Timestamp(end).value
        start = end - timedelta(minutes=self.window_min)
        start_ns, since_ns = (
            pd.Timestamp(start).value,
            (pd.Timestamp(since).value if since is not None else np.iinfo(np.int64).min),
        )
        stopped = []
        a, b = np.searchsorted(self.low_t, [start_ns, end_ns])
        if b > a:
            stopped = availability_windows(self.low.iloc[a:b], start, end, end, self.thresholds)
        a, b = np.searchsorted(self.judged_t, [start_ns, end_ns])
        if b == a:
            # the performance rules judge only a run of judged windows ending in this one (the
            # nights of a back-filled range: two thirds of its windows in winter)
            return stopped
        common = self._common(start, start_ns, end_ns, end)
        sites = {c.site_id for c in common}  # their inverters' shortfalls are the site's finding
        under = [
            c for c in self._underperformance(start_ns, end_ns, since_ns, end, open_fps)
            if c.site_id not in sites
        ]  # fmt: skip
        return (
            stopped
            + under
            + self._string_outliers(start_ns, end_ns, since_ns, end, open_fps)
            + common
        )

    def _common(self, start, start_ns: int, end_ns: int, now) -> list[AlertCandidate]:
        out = []
        for site_id, t_ns, short, dev in self.sites:
            a, b = np.searchsorted(t_ns, [start_ns, end_ns])
            if b - a >= 3 and bool(short[a:b].all()):
                t = _limits(self.thresholds, site_id)
                out.append(
                    AlertCandidate(
                        "data_quality", Severity.MEDIUM, site_id, "*",
                        f"every inverter of {site_id} {abs(dev[a:b].max()):.0%} or more below"
                        f" expected in the {t.window_min} minutes from {pd.Timestamp(start):%Y-%m-%d %H:%M} UTC: the"
                        " irradiance sensor reads high (or a site-wide loss: soiling, snow, shading)",
                        now, key="common_mode", context={"hour": str(pd.Timestamp(start))},
                    )
                )  # fmt: skip
        return out

    def _underperformance(self, start_ns, end_ns, since_ns, now, open_fps) -> list[AlertCandidate]:
        out = []
        for site_id, device_id, t_ns, rows, full, held, still in self.inverters:
            last = int(np.searchsorted(t_ns, end_ns)) - 1
            first = int(np.searchsorted(t_ns, since_ns))
            if last < first or t_ns[last] < start_ns:
                continue
            t = _limits(self.thresholds, site_id)
            if _run(full, first, last, t.window_hold):
                n, margin = t.window_hold, t.expected_margin
            elif _run(held, first, last, t.window_held):
                n, margin = t.window_held, t.held_margin
            elif f"underperformance:{site_id}:{device_id}" in open_fps and _run(
                still, first, last, 1
            ):
                n, margin = 1, t.held_margin / 2
            else:
                continue
            tail = rows.iloc[last - n + 1 : last + 1]
            low, high = (f"{abs(tail['expected_deviation'].agg(f)):.0%}" for f in ("max", "min"))
            out.append(
                AlertCandidate(
                    "underperformance", Severity.HIGH, site_id, device_id,
                    f"{device_id}: {low if low == high else f'{low} to {high}'} below expected in each of its"
                    f" last {n} {t.window_min}-minute windows (limit {margin + float(tail['band'].max()):.0%}),"
                    f" to {tail['t'].iloc[-1] + pd.Timedelta(minutes=t.window_min):%Y-%m-%d %H:%M} UTC",
                    now, context={"hour": str(tail["t"].iloc[0]), "window_min": t.window_min,
                                  "expected_deviation": [round(float(d), 3) for d in tail["expected_deviation"]]},
                )
            )  # fmt: skip
        return out

    def _string_outliers(self, start_ns, end_ns, since_ns, now, open_fps) -> list[AlertCandidate]:
        out, present = [], {}
        for site_id, device_id, metric, b_ns, part, low in self.strings:
            last = int(np.searchsorted(b_ns, end_ns)) - 1
            first = int(np.searchsorted(b_ns, since_ns))
            if last >= first:  # the inverter's strings seen: all of them low is its shortfall
                present[(site_id, device_id)] = present.get((site_id, device_id), 0) + 1
            t = _limits(self.thresholds, site_id)
            n = t.string_outlier_windows
            if last - first + 1 < n or b_ns[last] < start_ns:
                continue
            string = metric.removesuffix("_dc_current")
            ratio = float(part["ratio"].iloc[last])
            still = f"string_outlier:{site_id}:{device_id}:{string}" in open_fps and (
                0.05 < ratio < (1.0 + t.string_outlier_fraction) / 2
            )
            if still or _run(low, first, last, n):
                tail = part.iloc[last - n + 1 : last + 1]
                out.append(
                    AlertCandidate(
                        "string_outlier", Severity.MEDIUM, site_id, device_id,
                        f"{device_id} {string}: {tail['ratio'].mean():.0%} of the median string current over its"
                        f" last {n} judged {t.window_min}-minute windows (limit {t.string_outlier_fraction:.0%})",
                        now, key=string, context={"hour": str(tail["bucket"].iloc[0]),
                                                  "ratios": [round(float(x), 3) for x in tail["ratio"]]},
                    )
                )  # fmt: skip
        flagged: dict[tuple, int] = {}
        for c in out:
            flagged[(c.site_id, c.device_id)] = flagged.get((c.site_id, c.device_id), 0) + 1
        whole = {k for k, n in flagged.items() if n >= 2 and n == present.get(k, 0)}
        return [c for c in out if (c.site_id, c.device_id) not in whole]


def window_candidates(
    windows: pd.DataFrame,
    strings: pd.DataFrame,
    end: datetime,
    window_min: int,
    thresholds: Mapping[str, KpiThresholds] | None = None,
    open_fps: frozenset[str] = frozenset(),
) -> list[AlertCandidate]:
    """The candidates that hold when the window ending at `end` closes (`WindowJudge` over every row of
    `windows` and `strings`; a range judges many windows with one judge)."""
    return WindowJudge(windows, strings, window_min, thresholds).candidates(end, open_fps)
