"""Data-quality checks on hours of telemetry and their KPI rows. Pure functions over a whole range at once,
reporting per hour; Dagster turns the outcomes into asset check results (WARN or ERROR), and ERROR
outcomes block those hours from the daily KPIs."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.clock import INGEST_LAG_S
from pv_platform.kpi.flatness import moves_at_resolution, peers_held_still, resolution_of
from pv_platform.kpi.hourly import MAX_GAP_S, PER_HOUR, STEP_S
from pv_platform.kpi.periods import SITE_DEVICE
from pv_platform.kpi.samples import SampleSet, as_sample_set, daylight_minutes
from pv_platform.plant import Plant
from pv_platform.vocabulary import Metric

WARN, ERROR = "WARN", "ERROR"
RANGES = {  # metric -> physically possible range
    Metric.POA_IRRADIANCE: (-5.0, 1600.0),
    Metric.GHI_IRRADIANCE: (-5.0, 1500.0),
    Metric.MODULE_TEMPERATURE: (-40.0, 100.0),
    Metric.AMBIENT_TEMPERATURE: (-50.0, 60.0),
    Metric.CABINET_TEMPERATURE: (-40.0, 100.0),
    Metric.GRID_FREQUENCY: (40.0, 70.0),
    Metric.AC_FREQUENCY: (40.0, 70.0),
}
POWER_OVER_RATING = 1.10  # AC power above 110 % of the rating is not physical
COMPLETENESS_WARN, COMPLETENESS_ERROR = 0.90, 0.50  # fraction of the hour covered by samples
# daylight minutes an inverter-hour needs to be judged for completeness: not dusk, nor the last minute
# of the data (which no later POA sample tells apart from day)
MIN_JUDGED_MINUTES = 10
FROZEN_MINUTES = 30
NOT_FROZEN = {  # constant by nature
    Metric.AC_ENERGY, Metric.EXPORT_ENERGY, Metric.IMPORT_ENERGY, Metric.OPERATING_STATE,
    Metric.EVENTS, Metric.POWER_FACTOR,
}  # fmt: skip
PR_PLAUSIBLE = (0.5, 1.0)  # outside: WARN; outside PR_POSSIBLE: ERROR
PR_POSSIBLE = (0.0, 1.2)
MIN_INSOLATION_FOR_PR_KWH_M2 = 0.1  # below this an hour's PR is too noisy to judge
CHECK_NAMES = (
    "completeness", "physical_ranges", "frozen_values", "future_timestamps", "sun_and_power",
    "pr_plausible",
)  # fmt: skip


# A value that is exactly 0 during a grid outage is data, not a broken sensor: the meter reads 0 Hz
OUTAGE_ZERO = {Metric.GRID_FREQUENCY, Metric.AC_FREQUENCY}


@dataclass(frozen=True)
class CheckOutcome:
    hour: pd.Timestamp
    name: str
    passed: bool
    severity: str  # what a failure means: WARN or ERROR
    detail: str
    metadata: dict = field(default_factory=dict)
    site_id: str = "*"


class SiteSamples(Mapping):
    """The entities of one site in a SampleSet, sharing its cached per-minute means."""

    def __init__(self, series: SampleSet, site_id: str) -> None:
        self.series, self.site_id = series, site_id
        self.keys_ = [k for k in series if k[0] == site_id]

    def __getitem__(self, key):
        return self.series[key]

    def __iter__(self):
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)

    def arrays(self, key):
        return self.series.arrays(key)

    def step_means(self, *args, **kwargs):
        return self.series.step_means(*args, **kwargs)


class _Hours:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = pd.Timestamp(start)
        self.n = int(round((pd.Timestamp(end) - self.start).total_seconds() / 3600.0))
        self.index = self.start + pd.to_timedelta(np.arange(self.n), unit="h")

    def of(self, ts_us: np.ndarray) -> np.ndarray:
        """Hour index of each timestamp [µs since the epoch] (negative or >= n when outside)."""
        return np.floor_divide(ts_us - self.start.value // 1000, 3_600_000_000)

    def count(self, ts_us: np.ndarray) -> np.ndarray:
        h = self.of(ts_us)
        h = h[(h >= 0) & (h < self.n)]
        return np.bincount(h, minlength=self.n)


def _per_hour_detail(
    hours: _Hours, problems: dict[str, np.ndarray]
) -> list[dict[str, int | float]]:
    """problems: entity -> per-hour number; returns per hour {entity: number} of the non-zero ones."""
    out: list[dict] = [{} for _ in range(hours.n)]
    for entity, values in problems.items():
        for h in np.flatnonzero(values):
            out[h][entity] = values[h].item()
    return out


def completeness(
    series: SampleSet, plant: Plant, hours: _Hours, end: datetime, up_to: datetime | None = None
) -> list[CheckOutcome]:
    """Fraction of each hour covered by each inverter's AC power and each POA sensor (gaps > 15 min
    uncovered). A running hour is judged on its minutes up to `up_to` (now less `clock.ingest_lag_s`:
    the last readings may still be on their way); an hour with no such minute yet passes as not judged.
    Inverters are judged on daylight minutes only (a sleeping inverter legitimately sends nothing)."""
    judged = np.full(hours.n, PER_HOUR)
    if up_to is not None:
        minutes_done = (pd.Timestamp(up_to) - hours.index).total_seconds() // STEP_S
        judged = np.clip(np.asarray(minutes_done, dtype=int), 0, PER_HOUR)
    covered_minutes = np.arange(PER_HOUR)[None, :] < judged[:, None]
    expected = [(s.id, d.id, Metric.AC_POWER) for s in plant.sites for d in s.inverters]
    expected += [
        (s.id, d.id, Metric.POA_IRRADIANCE)
        for s in plant.sites
        for d in s.devices
        if d.kind == "weather_station"
    ]
    coverage: dict[str, np.ndarray] = {}
    day = daylight_minutes(series, plant, hours.start, end, STEP_S, MAX_GAP_S).reshape(
        hours.n, PER_HOUR
    )
    for key in expected:
        # the same grid as the hourly KPIs: the SampleSet then integrates each series once for both
        mask = covered_minutes & day if key[2] == Metric.AC_POWER else covered_minutes
        means = series.step_means(key, hours.start, end, STEP_S, MAX_GAP_S)
        covered = 0.0 if means is None else means[1].reshape(hours.n, PER_HOUR)
        share = np.where(mask, covered, 0.0).sum(axis=1) / (
            np.maximum(mask.sum(axis=1), 1) * STEP_S
        )
        least = MIN_JUDGED_MINUTES if key[2] == Metric.AC_POWER else 1  # see MIN_JUDGED_MINUTES
        coverage[".".join(key)] = np.where(mask.sum(axis=1) >= least, share, 1.0)
    outcomes = []
    for h, hour in enumerate(hours.index):
        if judged[h] == 0:
            outcomes.append(
                CheckOutcome(hour, "completeness", True, WARN, "hour not started yet", {})
            )
            continue
        gaps = {k: round(float(v[h]), 3) for k, v in coverage.items() if v[h] < COMPLETENESS_WARN}
        worst = min((float(v[h]) for v in coverage.values()), default=1.0)
        detail = (
            f"coverage below {COMPLETENESS_WARN:.0%}: {gaps}" if gaps else "every entity covered"
        )
        severity = ERROR if worst < COMPLETENESS_ERROR else WARN
        metadata = {"worst_coverage": round(worst, 3), "minutes_judged": int(judged[h])}
        metadata["entity_keys"] = sorted(gaps)
        outcomes.append(CheckOutcome(hour, "completeness", not gaps, severity, detail, metadata))
    return outcomes


def physical_ranges(series: SampleSet, plant: Plant, hours: _Hours) -> list[CheckOutcome]:
    """Values that cannot be real: irradiance, temperatures, frequency out of range; AC power over rating."""
    ratings = {(s.id, d.id): d.p_ac_kw * 1000.0 for s in plant.sites for d in s.inverters}
    problems: dict[str, np.ndarray] = {}
    for site_id, device_id, metric in series:
        ts_us, v = series.arrays((site_id, device_id, metric))
        if metric in RANGES:
            lo, hi = RANGES[metric]
            bad = (v < lo) | (v > hi)
            if metric in OUTAGE_ZERO:
                bad &= v != 0.0
        elif metric == Metric.AC_POWER and (site_id, device_id) in ratings:
            bad = v > POWER_OVER_RATING * ratings[(site_id, device_id)]
        else:
            continue
        if bad.any():
            problems[f"{site_id}.{device_id}.{metric}"] = hours.count(ts_us[bad])
    per_hour = _per_hour_detail(hours, problems)
    return [
        CheckOutcome(
            hour,
            "physical_ranges",
            not bad,
            ERROR,
            "all values physically possible" if not bad else f"impossible values: {bad}",
            {"entities": len(bad), "entity_keys": sorted(bad)},
        )
        for hour, bad in zip(hours.index, per_hour, strict=True)
    ]


def frozen_values(
    series: SampleSet, hours: _Hours, plant: Plant | None = None
) -> list[CheckOutcome]:
    """A non-zero measurement stuck at one value for FROZEN_MINUTES or more in an hour with sun (> 100 W/m²).
    AC power held at the inverter's rating is clipping, not a frozen value; a signal that moves by
    single steps of a coarse resolution is flat by nature (`moves_at_resolution`), and so is one whose
    peers (the same quantity at other devices of the site) held still with it (`peers_held_still`)."""
    sites = plant.sites if plant else []
    ratings = {(s.id, d.id): d.p_ac_kw * 1000.0 for s in sites for d in s.inverters}
    sunny = np.zeros(hours.n, bool)
    for key in series:
        if key[2] == Metric.POA_IRRADIANCE:
            ts_us, poa = series.arrays(key)
            h = hours.of(ts_us)
            ok = (h >= 0) & (h < hours.n) & (poa > 100.0)
            sunny[h[ok]] = True
    problems: dict[str, np.ndarray] = {}
    for site_id, device_id, metric in series:
        ts, v = series.arrays((site_id, device_id, metric))
        if metric in NOT_FROZEN or len(v) < 3:
            continue
        run_id = np.cumsum(np.concatenate([[True], v[1:] != v[:-1]]))
        first = np.flatnonzero(np.concatenate([[True], run_id[1:] != run_id[:-1]]))
        last = np.concatenate([first[1:] - 1, [len(v) - 1]])
        long = (
            (ts[last] - ts[first] >= FROZEN_MINUTES * 60_000_000)
            & (last - first >= 2)
            & (v[first] != 0.0)
        )
        if metric == Metric.AC_POWER and (site_id, device_id) in ratings:
            long &= v[first] < 0.98 * ratings[(site_id, device_id)]
        for i in np.flatnonzero(long):  # the resolution of the run and the half hour before it
            near = (ts >= ts[first[i]] - 1_800_000_000) & (ts <= ts[last[i]])
            stretch = (int(ts[first[i]]), int(ts[last[i]]), resolution_of(v[near]))
            key = (site_id, device_id, metric)
            long[i] = not moves_at_resolution(v[near]) and not peers_held_still(
                series, key, *stretch
            )
        flagged = np.zeros(hours.n, int)
        for ha, hb in zip(hours.of(ts[first[long]]), hours.of(ts[last[long]]), strict=True):
            ha, hb = max(ha, 0), min(hb, hours.n - 1)
            if ha <= hb:
                flagged[ha : hb + 1] = 1
        flagged &= sunny
        if flagged.any():
            problems[f"{site_id}.{device_id}.{metric}"] = flagged
    per_hour = _per_hour_detail(hours, problems)
    return [
        CheckOutcome(hour, "frozen_values", not bad, WARN,
                     f"stuck for >= {FROZEN_MINUTES} min in daylight: {sorted(bad)}" if bad
                     else "no frozen values", {"entities": len(bad), "entity_keys": sorted(bad)})
        for hour, bad in zip(hours.index, per_hour, strict=True)
    ]  # fmt: skip


def future_timestamps(series: SampleSet, hours: _Hours, now: datetime) -> list[CheckOutcome]:
    """Samples stamped in the future (a device clock ahead): they would be counted in the wrong hour."""
    limit_us = (pd.Timestamp(now) + pd.Timedelta(minutes=5)).value // 1000
    counts = np.zeros(hours.n, int)
    for key in series:
        ts_us = series.arrays(key)[0]
        counts += hours.count(ts_us[ts_us > limit_us])
    return [
        CheckOutcome(
            hour,
            "future_timestamps",
            n == 0,
            ERROR,
            "no timestamps in the future"
            if n == 0
            else f"{n} samples stamped after {now.isoformat()}",
            {"future_samples": int(n)},
        )
        for hour, n in zip(hours.index, counts, strict=True)
    ]


def _rows(frame: pd.DataFrame):
    """The rows of a KPI frame as light records (attribute access, no pandas per row)."""
    columns = list(frame.columns)
    record = namedtuple("Row", columns)  # noqa: PYI024
    return (record(*values) for values in zip(*(frame[c].tolist() for c in columns), strict=True))


def sun_and_power(kpis: pd.DataFrame, hours: _Hours) -> list[CheckOutcome]:
    """Power without sun, or sun without power that no downtime category explains."""
    problems: dict[int, list[str]] = {}  # by hour start [ns]: a pd.Timestamp key hashes slowly
    inv = kpis[kpis["device_id"] != SITE_DEVICE] if not kpis.empty else kpis
    suspicious = (
        inv[
            (
                (inv["insolation_poa_kwh_m2"] < 0.005)
                & (inv["energy_ac_kwh"] > 0.05 * inv["p_ac_kw"])
            )
            | (
                (inv["insolation_poa_kwh_m2"] > 0.3)
                & ~(inv["energy_ac_kwh"] >= 0.01 * inv["p_ac_kw"])
            )
        ]
        if not inv.empty
        else inv
    )
    for row in _rows(suspicious):
        if row.insolation_poa_kwh_m2 < 0.005 and row.energy_ac_kwh > 0.05 * row.p_ac_kw:
            problems.setdefault(row.period_start.value, []).append(
                f"{row.site_id}.{row.device_id}: {row.energy_ac_kwh:.1f} kWh without sun"
            )
        explained = (
            (row.time_planned_s or 0) + (row.time_grid_outage_s or 0) + (row.time_no_data_s or 0)
        )
        if (
            row.insolation_poa_kwh_m2 > 0.3
            and (row.energy_ac_kwh or 0) < 0.01 * row.p_ac_kw
            and explained < 1800
        ):
            problems.setdefault(row.period_start.value, []).append(
                f"{row.site_id}.{row.device_id}: {row.insolation_poa_kwh_m2:.2f} kWh/m2 of sun, no energy"
            )
    found = [problems.get(hour.value, []) for hour in hours.index]
    return [
        CheckOutcome(
            hour,
            "sun_and_power",
            not items,
            WARN,
            "; ".join(items) or "energy follows the sun",
            {"devices": len(items)},
        )
        for hour, items in zip(hours.index, found, strict=True)
    ]


def pr_plausible(kpis: pd.DataFrame, hours: _Hours) -> list[CheckOutcome]:
    """PR of each inverter and site in a plausible band (hours with enough sun and no missing data
    only: across a gap energy and insolation cover different minutes, which `completeness` reports)."""
    lo, hi = PR_PLAUSIBLE
    odd_by_hour: dict[int, dict[str, float]] = {}  # by hour start [ns]
    impossible_hours: set[int] = set()
    if not kpis.empty:
        covered = kpis["time_no_data_s"].fillna(0.0) == 0 if "time_no_data_s" in kpis else True
        judged = kpis[
            (kpis["insolation_poa_kwh_m2"] >= MIN_INSOLATION_FOR_PR_KWH_M2)
            & kpis["pr"].notna()
            & covered
        ]
        odd = judged[(judged["pr"] < lo) | (judged["pr"] > hi)]
        for row in _rows(odd):
            odd_by_hour.setdefault(row.period_start.value, {})[f"{row.site_id}.{row.device_id}"] = (
                round(float(row.pr), 3)
            )
            if not PR_POSSIBLE[0] <= row.pr <= PR_POSSIBLE[1]:
                impossible_hours.add(row.period_start.value)
    out = []
    for hour in hours.index:
        values = odd_by_hour.get(hour.value, {})
        detail = f"PR within {lo}-{hi}" if not values else f"PR outside {lo}-{hi}: {values}"
        severity = ERROR if hour.value in impossible_hours else WARN
        out.append(
            CheckOutcome(
                hour, "pr_plausible", not values, severity, detail, {"outside": len(values)}
            )
        )
    return out


def run_checks(
    samples: pd.DataFrame | SampleSet,
    kpis: pd.DataFrame,
    plant: Plant,
    start: datetime,
    end: datetime,
    now: datetime,
    lag_s: float = INGEST_LAG_S,
) -> list[CheckOutcome]:
    """Every check for every hour of [start, end) and every site: len(CHECK_NAMES) outcomes per site and
    hour. Each site is judged on its own samples (its sun, its gaps), so one site never fails another's.
    lag_s : how far behind `now` the running hour is judged (`clock.ingest_lag_s`)"""
    hours = _Hours(start, end)
    series = as_sample_set(samples)
    out: list[CheckOutcome] = []
    for site in plant.sites:
        mine = SiteSamples(series, site.id)
        one = Plant.model_construct(sites=[site])
        rows = kpis[kpis["site_id"] == site.id] if not kpis.empty else kpis
        outcomes = [
            *completeness(mine, one, hours, end, now - timedelta(seconds=lag_s)),
            *physical_ranges(mine, one, hours),
            *frozen_values(mine, hours, one),
            *future_timestamps(mine, hours, now),
            *sun_and_power(rows, hours),
            *pr_plausible(rows, hours),
        ]
        out += [replace(o, site_id=site.id) for o in outcomes]
    return out
