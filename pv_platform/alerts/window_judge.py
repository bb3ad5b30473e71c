"""`WindowJudge`: the sub-hourly window rules of `window_rules` over a range of windows at once, each
window judged as it would have been when it closed (live, or in a back-filled range of many windows)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.alerts.kpi_rules import KpiThresholds, string_ratios
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.alerts.window_rules import _limits, availability_windows

EPOCH = pd.Timestamp(0, tz="UTC")


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
