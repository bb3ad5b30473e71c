"""Data-quality checks on an hour of telemetry and its KPI rows. Pure functions; Dagster turns each outcome
into an asset check result (WARN or ERROR), and ERROR outcomes block the hour from the daily KPIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pv_platform.kpi.energy import interval_means
from pv_platform.kpi.periods import SITE_DEVICE
from pv_platform.plant import Plant

WARN, ERROR = "WARN", "ERROR"
RANGES = {  # metric -> physically possible range
    "poa_irradiance": (-5.0, 1600.0),
    "ghi_irradiance": (-5.0, 1500.0),
    "module_temperature": (-40.0, 100.0),
    "ambient_temperature": (-50.0, 60.0),
    "cabinet_temperature": (-40.0, 100.0),
    "grid_frequency": (40.0, 70.0),
    "ac_frequency": (40.0, 70.0),
}
POWER_OVER_RATING = 1.10  # AC power above 110 % of the rating is not physical
COMPLETENESS_WARN, COMPLETENESS_ERROR = 0.90, 0.50  # fraction of the hour covered by samples
FROZEN_MINUTES = 30
PR_PLAUSIBLE = (0.5, 1.0)  # outside: WARN; outside PR_POSSIBLE: ERROR
PR_POSSIBLE = (0.0, 1.2)
MIN_INSOLATION_FOR_PR_KWH_M2 = 0.1  # below this an hour's PR is too noisy to judge


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: str  # severity if it failed
    detail: str
    metadata: dict = field(default_factory=dict)


def _entities(samples: pd.DataFrame):
    if samples.empty:
        return
    yield from samples.groupby(["site_id", "device_id", "metric"], sort=True)


def completeness(
    samples: pd.DataFrame, plant: Plant, start: datetime, end: datetime
) -> CheckOutcome:
    """Fraction of the hour covered by each inverter's AC power and each POA sensor (gaps > 15 min uncovered)."""
    worst, coverage = 1.0, {}
    expected = [(s.id, d.id, "ac_power") for s in plant.sites for d in s.inverters]
    expected += [
        (s.id, d.id, "poa_irradiance")
        for s in plant.sites
        for d in s.devices
        if d.kind == "weather_station"
    ]
    groups = {key: part for key, part in _entities(samples)}
    for key in expected:
        part = groups.get(key)
        if part is None:
            fraction = 0.0
        else:
            series = pd.Series(part["value"].to_numpy(float), index=pd.DatetimeIndex(part["ts"]))
            fraction = (
                float(interval_means(series, start, end)["covered_s"].sum())
                / (end - start).total_seconds()
            )
        coverage[".".join(key)] = round(fraction, 3)
        worst = min(worst, fraction)
    gaps = {k: v for k, v in coverage.items() if v < COMPLETENESS_WARN}
    severity = ERROR if worst < COMPLETENESS_ERROR else WARN
    detail = (
        "every entity covered" if not gaps else f"coverage below {COMPLETENESS_WARN:.0%}: {gaps}"
    )
    return CheckOutcome(
        "completeness", not gaps, severity, detail, {"worst_coverage": round(worst, 3)}
    )


def physical_ranges(samples: pd.DataFrame, plant: Plant) -> CheckOutcome:
    """Values that cannot be real: irradiance, temperatures, frequency out of range; AC power over rating."""
    bad: dict[str, int] = {}
    ratings = {(s.id, d.id): d.p_ac_kw * 1000.0 for s in plant.sites for d in s.inverters}
    for (site_id, device_id, metric), part in _entities(samples):
        v = part["value"].to_numpy(float)
        if metric in RANGES:
            lo, hi = RANGES[metric]
            n = int(np.sum((v < lo) | (v > hi)))
        elif metric == "ac_power" and (site_id, device_id) in ratings:
            n = int(np.sum(v > POWER_OVER_RATING * ratings[(site_id, device_id)]))
        else:
            continue
        if n:
            bad[f"{site_id}.{device_id}.{metric}"] = n
    detail = "all values physically possible" if not bad else f"impossible values: {bad}"
    return CheckOutcome(
        "physical_ranges", not bad, ERROR, detail, {"entities_out_of_range": len(bad)}
    )


def frozen_values(samples: pd.DataFrame, start: datetime, end: datetime) -> CheckOutcome:
    """A measurement stuck at one value for FROZEN_MINUTES or more while the sun is up (a frozen sensor)."""
    frozen = []
    poa = samples[samples["metric"] == "poa_irradiance"]
    sunny = not poa.empty and float(poa["value"].max()) > 100.0
    for (site_id, device_id, metric), part in _entities(samples):
        if (
            metric in ("ac_energy", "export_energy", "import_energy", "operating_state", "events")
            or not sunny
        ):
            continue
        part = part[(part["ts"] >= start) & (part["ts"] < end)]
        if len(part) < 3:
            continue
        v, ts = part["value"].to_numpy(float), pd.DatetimeIndex(part["ts"])
        change = np.concatenate([[True], v[1:] != v[:-1]])
        run_id = np.cumsum(change)
        for rid in np.unique(run_id):
            idx = np.flatnonzero(run_id == rid)
            if (
                len(idx) >= 3
                and (ts[idx[-1]] - ts[idx[0]]) >= timedelta(minutes=FROZEN_MINUTES)
                and v[idx[0]] != 0.0
            ):
                frozen.append(f"{site_id}.{device_id}.{metric}")
                break
    detail = (
        "no frozen values"
        if not frozen
        else f"stuck for >= {FROZEN_MINUTES} min in daylight: {frozen}"
    )
    return CheckOutcome("frozen_values", not frozen, WARN, detail, {"frozen_entities": len(frozen)})


def sun_and_power(kpis: pd.DataFrame) -> CheckOutcome:
    """Power without sun (energy while the reference yield is ~0) or sun without power (no energy, no
    explaining downtime category)."""
    problems = []
    for row in kpis[kpis["device_id"] != SITE_DEVICE].itertuples():
        if row.insolation_poa_kwh_m2 < 0.005 and row.energy_ac_kwh > 0.05 * row.p_ac_kw:
            problems.append(
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
            problems.append(
                f"{row.site_id}.{row.device_id}: {row.insolation_poa_kwh_m2:.2f} kWh/m2 of sun, no energy"
            )
    detail = "energy follows the sun" if not problems else "; ".join(problems)
    return CheckOutcome("sun_and_power", not problems, WARN, detail, {"devices": len(problems)})


def future_timestamps(samples: pd.DataFrame, now: datetime) -> CheckOutcome:
    """Samples stamped in the future (a device clock ahead): they would be counted in the wrong hour."""
    future = (
        samples[samples["ts"] > pd.Timestamp(now) + pd.Timedelta(minutes=5)]
        if not samples.empty
        else samples
    )
    n = len(future)
    detail = (
        "no timestamps in the future" if not n else f"{n} samples stamped after {now.isoformat()}"
    )
    return CheckOutcome("future_timestamps", not n, ERROR, detail, {"future_samples": n})


def pr_plausible(kpis: pd.DataFrame) -> CheckOutcome:
    """PR of each inverter and site in a plausible band (hours with enough sun only)."""
    lo, hi = PR_PLAUSIBLE
    judged = kpis[
        (kpis["insolation_poa_kwh_m2"] >= MIN_INSOLATION_FOR_PR_KWH_M2) & kpis["pr"].notna()
    ]
    odd = judged[(judged["pr"] < lo) | (judged["pr"] > hi)]
    impossible = judged[(judged["pr"] < PR_POSSIBLE[0]) | (judged["pr"] > PR_POSSIBLE[1])]
    values = {f"{r.site_id}.{r.device_id}": round(float(r.pr), 3) for r in odd.itertuples()}
    detail = f"PR within {lo}-{hi}" if odd.empty else f"PR outside {lo}-{hi}: {values}"
    return CheckOutcome(
        "pr_plausible", odd.empty, ERROR if len(impossible) else WARN, detail, {"outside": len(odd)}
    )


def run_hourly_checks(
    samples: pd.DataFrame,
    kpis: pd.DataFrame,
    plant: Plant,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[CheckOutcome]:
    """Every check on one hour, in a stable order."""
    inside = (
        samples[(samples["ts"] >= start) & (samples["ts"] < end)] if not samples.empty else samples
    )
    return [
        completeness(samples, plant, start, end),
        physical_ranges(inside, plant),
        frozen_values(samples, start, end),
        future_timestamps(inside, now),
        sun_and_power(kpis),
        pr_plausible(kpis),
    ]
