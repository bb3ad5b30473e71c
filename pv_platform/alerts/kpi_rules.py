"""KPI alert rules: underperformance and availability drops from hourly KPI rows, and data-quality alerts
from failed ERROR checks. Pure functions; the Dagster `alerts` asset feeds them to the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.alerts.model import STICKY, AlertCandidate, Severity

KPI_RULES = {"underperformance", "availability_drop", "data_quality", "string_outlier"}
STRING_CURRENT_LIKE = "mppt%_dc_current"  # model 160 string/MPPT currents


@dataclass(frozen=True)
class KpiThresholds:
    pr_min: float = 0.80  # PR below this ...
    expected_margin: float = 0.15  # ... and actual energy this far below expected: underperformance
    availability_min: float = 0.90  # time-based availability of an hour
    min_insolation_kwh_m2: float = (
        0.2  # hours with less sun are not judged (200 W/m2 mean over 1 h)
    )
    model_uncertainty_wm2: float = (
        30.0  # the expected-power model's error band: margin + this / POA
    )
    held_margin: float = 0.08  # a smaller shortfall (plus the band) in each of ...
    held_hours: int = 2  # ... this many judged hours running is underperformance too
    quarantine_per_hour_max: float = 10.0  # rejected inputs of one device per hour
    string_outlier_fraction: float = 0.80  # a string's hourly mean current below this share of the
    string_outlier_hours: int = 3  # site's median string, in this many judged hours running
    # the same rules on sub-hourly windows (`window_rules`): judged as each window closes
    window_min: int = 10  # window length [min] (a divisor of 60; 60: hourly rules only)
    window_hold: int = 1  # the full shortfall (margin + band) in this many windows running ...
    window_held: int = 2  # ... or the held shortfall (held_margin + band) in this many
    string_outlier_windows: int = 2  # a string below the fraction in this many windows running
    frozen_windows: int = 2  # a measurement stuck at one value this many windows long (in daylight)
    window_min_samples: int = (
        3  # an inverter's window with fewer samples is not judged (sparse data)
    )


def kpi_candidates(
    hour_rows: pd.DataFrame,
    failed_checks: pd.DataFrame,
    now: datetime,
    thresholds: Mapping[str, KpiThresholds] | None = None,
) -> list[AlertCandidate]:
    """Candidates from one or more hours of `kpi_hourly` rows (inverters only) and failed ERROR checks.
    thresholds: per site id (sites not in it use the defaults)."""
    flagged, short = flagged_hours(hour_rows, thresholds)
    out = [
        c
        for row, is_short in zip(flagged.itertuples(), short, strict=True)
        for c in row_candidates(row, is_short, now, thresholds)
    ]
    return out + data_quality_candidates(failed_checks, now)


def flagged_hours(
    hour_rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """(the inverter rows with an underperformance or availability finding, whether each is
    underperformance): judged on every row at once, so that only these rows are built into
    candidates. Underperformance is judged only on hours the inverter ran throughout (downtime is
    availability's): PR below `pr_min` and below expected by more than the margin + model band."""
    if hour_rows.empty:
        return hour_rows, np.zeros(0, bool)
    inverters = hour_rows[hour_rows["device_id"] != "*"]
    ran = ran_throughout(inverters, thresholds).to_numpy(dtype=bool)
    site = site_limits(inverters, thresholds)
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN compares False
        band = model_bands(inverters["insolation_poa_kwh_m2"], site["model_uncertainty_wm2"])
        deviation = inverters["expected_deviation"].to_numpy(dtype=float)
        short = (
            ran
            & (inverters["pr"].to_numpy(dtype=float) < site["pr_min"])
            & (deviation < -(site["expected_margin"] + band))
        )
        low = inverters["availability_time"].to_numpy(dtype=float) < site["availability_min"]
    return inverters[short | low], short[short | low]


def row_candidates(
    row, short: bool, now: datetime, thresholds: Mapping[str, KpiThresholds] | None
) -> list[AlertCandidate]:
    """The candidates of one row `flagged_hours` found: underperformance (when `short`) and an
    availability drop (availability below the limit)."""
    out = []
    t = (thresholds or {}).get(row.site_id) or KpiThresholds()
    band = model_band(row.insolation_poa_kwh_m2, t)
    if short:
        out.append(
            AlertCandidate(
                "underperformance", Severity.HIGH, row.site_id, row.device_id,
                f"{row.device_id}: PR {row.pr:.2f} < {t.pr_min:.2f} and {abs(row.expected_deviation):.0%} below expected"
                f" (limit {t.expected_margin + band:.0%}) in the hour from {pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC",
                now, context={"pr": float(row.pr), "expected_deviation": float(row.expected_deviation), "hour": str(row.period_start)},
            )
        )  # fmt: skip
    availability = row.availability_time
    if availability == availability and availability < t.availability_min:
        out.append(_availability_candidate(row, availability, now))
    return out


def data_quality_candidates(failed_checks: pd.DataFrame, now: datetime) -> list[AlertCandidate]:
    """One `data_quality` alert per failed check and device whose entities it names (`entity_keys` in
    the outcome's metadata: a frozen weather sensor is the weather station's alert), else per site."""
    out = []
    for check in failed_checks.itertuples() if not failed_checks.empty else ():
        site_id = getattr(check, "site_id", "*")
        keys = (getattr(check, "metadata", None) or {}).get("entity_keys") or []
        devices = sorted({k.split(".")[1] for k in keys if k.count(".") == 2}) or ["*"]
        hour = f"{pd.Timestamp(check.period_start):%Y-%m-%d %H:%M} UTC"
        for device_id in devices:
            mine = [k for k in keys if k.split(".")[1:2] == [device_id]]
            out.append(
                AlertCandidate(
                    "data_quality", Severity.MEDIUM, site_id, device_id,
                    f"{check.check_name} failed for {', '.join(mine) or site_id} in the hour from {hour}: {check.detail}",
                    now, key=check.check_name, context={"hour": str(check.period_start), "entities": mine},
                )
            )  # fmt: skip
    return out


def source_devices(plant) -> dict[str, tuple[str, str]]:
    """Quarantine source (poll:<site>.<device>, mqtt:<topic>) -> (site, device)."""
    devices = {f"poll:{s.id}.{d.id}": (s.id, d.id) for s in plant.sites for d in s.devices}
    return devices | {
        f"mqtt:{d.config['topic']}": (s.id, d.id)
        for s in plant.sites
        for d in s.devices
        if isinstance(d.config, dict) and d.config.get("topic")
    }


def quarantine_rate_candidates(
    counts: pd.DataFrame, plant, hours: float, now: datetime, thresholds=None
) -> list[AlertCandidate]:
    """`data_quality` (key `quarantine`) per device whose rejected inputs in the judged window exceed
    `quarantine_per_hour_max` per hour (malformed payloads a device keeps sending).

    counts : source, rejected, first_reason (`TelemetryStore.quarantine_counts`); hours : window [h]
    """
    devices, out = source_devices(plant), []
    for row in counts.itertuples() if not counts.empty else ():
        site_id, device_id = devices.get(row.source, ("*", "*"))
        t = (thresholds or {}).get(site_id) or KpiThresholds()
        if row.rejected > t.quarantine_per_hour_max * hours:
            out.append(
                AlertCandidate(
                    "data_quality", Severity.MEDIUM, site_id, device_id,
                    f"{row.rejected} inputs from {row.source} quarantined in {hours:g} h (limit"
                    f" {t.quarantine_per_hour_max:g}/h), e.g. {row.first_reason}", now,
                    key="quarantine" if device_id != "*" else f"quarantine:{row.source}",
                    context={"source": row.source, "rejected": int(row.rejected)},
                )
            )  # fmt: skip
    return out


def model_band(insolation_kwh_m2: float, t: KpiThresholds, hours: float = 1.0) -> float:
    """The expected-power model's uncertainty as a fraction of expected energy at this much sun [1]:
    `model_uncertainty_wm2 / mean POA`. A fixed irradiance-like error (reflection, spectrum, sensor
    offset) weighs more at low sun, so a dawn hour needs a larger shortfall to count.

    insolation_kwh_m2 : POA insolation of the window [kWh/m2]; hours : the window's length [h]
    """
    return float(model_bands(np.array([insolation_kwh_m2]), t.model_uncertainty_wm2, hours)[0])


def site_limits(
    rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None
) -> dict[str, np.ndarray]:
    """Each `KpiThresholds` field as an array over `rows`, by the row's site."""
    by_site = {s: (thresholds or {}).get(s) or KpiThresholds() for s in rows["site_id"].unique()}
    sites = rows["site_id"].to_numpy()
    return {
        f.name: np.array([getattr(by_site[s], f.name) for s in sites], dtype=float)
        for f in fields(KpiThresholds)
    }


def model_bands(insolation_kwh_m2, uncertainty_wm2, hours=1.0) -> np.ndarray:
    """`model_band` of many windows at once: `uncertainty_wm2` [W/m2] over each window's mean POA
    (insolation [kWh/m2] over `hours` [h]; each may be per window or one for all); infinity where the
    insolation is unknown or not positive (never judged)."""
    poa_wm2 = np.asarray(insolation_kwh_m2, dtype=float) * 1000.0 / hours
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(poa_wm2 > 0, uncertainty_wm2 / poa_wm2, np.inf)


def total_loss(availability: float, forced_outage_s: float) -> bool:
    """No operating minute in the period's daylight, and some of it forced outage (not a grid outage
    or planned downtime alone): a producing device lost."""
    return availability == 0 and forced_outage_s > 0


def _availability_candidate(row, availability: float, now: datetime) -> AlertCandidate:
    """MEDIUM for a drop; CRITICAL and sticky for a total loss (no operating minute in the hour's
    daylight, all of it forced outage): it stays open until the device is seen producing again."""
    hour = f"{pd.Timestamp(row.period_start):%Y-%m-%d %H:%M} UTC"
    forced_min = row.time_forced_outage_s / 60
    context = {"availability": float(availability), "hour": str(row.period_start)}
    if total_loss(availability, row.time_forced_outage_s):
        return AlertCandidate(
            "availability_drop", Severity.CRITICAL, row.site_id, row.device_id,
            f"{row.device_id}: total loss, no production in the hour from {hour} ({forced_min:.0f} min forced"
            " outage); open until it produces again", now, context={**context, STICKY: True},
        )  # fmt: skip
    return AlertCandidate(
        "availability_drop", Severity.MEDIUM, row.site_id, row.device_id,
        f"{row.device_id}: availability {availability:.0%} in the hour from {hour} ({forced_min:.0f} min forced outage)",
        now, context=context,
    )  # fmt: skip


def cleared_fingerprints(
    hour_rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None
) -> tuple[pd.DataFrame, list[str | None]]:
    """(the inverter rows with availability known (a night hour is no evidence); per row, the
    `availability_drop` fingerprint it shows clear - availability at or above the site's limit - or
    None)."""
    rows = hour_rows[(hour_rows["device_id"] != "*") & hour_rows["availability_time"].notna()]
    if rows.empty:
        return rows, []
    ok = (
        rows["availability_time"].to_numpy(float)
        >= site_limits(rows, thresholds)["availability_min"]
    )
    fps = ("availability_drop:" + rows["site_id"] + ":" + rows["device_id"]).tolist()
    return rows, [fp if o else None for fp, o in zip(fps, ok, strict=True)]


def kpi_cleared(
    hour_rows: pd.DataFrame,
    thresholds: Mapping[str, KpiThresholds] | None = None,
    start: datetime | None = None,
) -> set[str]:
    """Fingerprints of `availability_drop` alerts the rows (from `start`) show clear: the inverter's
    latest judged hour (daylight, availability known) has availability at or above the limit. Night
    hours are no evidence."""
    if hour_rows.empty:
        return set()
    rows = hour_rows
    if start is not None:
        rows = rows[pd.to_datetime(rows["period_start"], utc=True) >= pd.Timestamp(start)]
    rows = rows[(rows["device_id"] != "*") & rows["availability_time"].notna()]
    latest = rows.sort_values("period_start", kind="stable").drop_duplicates(
        ["site_id", "device_id"], keep="last"
    )
    return {fp for fp in cleared_fingerprints(latest, thresholds)[1] if fp is not None}


DOWNTIME_COLUMNS = [
    "time_forced_outage_s",
    "time_no_data_s",
    "time_grid_outage_s",
    "time_planned_s",
]


def ran_throughout(rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None) -> pd.Series:
    """Per inverter-hour row: no downtime of any kind (a missing part counts as downtime) and at least
    the site's minimum insolation (missing insolation: not judged)."""
    if rows.empty:
        return pd.Series(dtype=bool)
    downtime_s = rows[DOWNTIME_COLUMNS].fillna(1.0).sum(axis=1)
    min_sun = rows["site_id"].map(
        {
            s: ((thresholds or {}).get(s) or KpiThresholds()).min_insolation_kwh_m2
            for s in rows["site_id"].unique()
        }
    )
    return (downtime_s == 0) & (rows["insolation_poa_kwh_m2"] >= min_sun)


def _judged_hours(
    hour_rows: pd.DataFrame, thresholds: Mapping[str, KpiThresholds] | None
) -> pd.DataFrame:
    """(site_id, device_id, bucket) of inverter hours with no downtime of any kind and enough sun."""
    if hour_rows.empty:
        return pd.DataFrame(columns=["site_id", "device_id", "bucket"])
    rows = hour_rows[hour_rows["device_id"] != "*"]
    ok = rows[ran_throughout(rows, thresholds)]
    return pd.DataFrame(
        {
            "site_id": ok["site_id"],
            "device_id": ok["device_id"],
            "bucket": pd.to_datetime(ok["period_start"], utc=True),
        }
    )


def string_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """The string rows with `ratio`: each string's mean current [A] over the median of its site's
    strings in the same bucket (hour or window); only buckets with at least 3 strings and a positive
    median are kept (fewer peers make no median to judge against)."""
    median = frame.groupby(["site_id", "bucket"])["avg_value"].transform("median")
    peers = frame.groupby(["site_id", "bucket"])["avg_value"].transform("size")
    return frame.assign(ratio=frame["avg_value"] / median)[(peers >= 3) & (median > 0)]


def string_outliers(
    string_hours: pd.DataFrame,
    hour_rows: pd.DataFrame,
    now: datetime,
    thresholds: Mapping[str, KpiThresholds] | None = None,
) -> list[AlertCandidate]:
    """Strings whose hourly mean current stayed below `string_outlier_fraction` of the site's median string
    in each of the last `string_outlier_hours` judged hours before `now` (persistent shading, soiling or
    degradation of one string; a dead string is the real-time `string_fault`).

    string_hours : per string entity and hour: site_id, device_id, metric (mpptN_dc_current), bucket,
                   avg_value [A] (`TelemetryStore.hourly_rollup`)
    hour_rows : `kpi_hourly` rows over the same hours; hours with any inverter downtime or little sun are
                not judged
    """
    if string_hours.empty:
        return []
    frame = string_hours.assign(bucket=pd.to_datetime(string_hours["bucket"], utc=True)).merge(
        _judged_hours(hour_rows, thresholds), on=["site_id", "device_id", "bucket"]
    )
    if frame.empty:
        return []
    frame = string_ratios(frame)
    out = []
    for (site_id, device_id, metric), part in frame.groupby(["site_id", "device_id", "metric"]):
        t = (thresholds or {}).get(site_id) or KpiThresholds()
        last = part.sort_values("bucket").tail(t.string_outlier_hours)
        if len(last) < t.string_outlier_hours:
            continue
        if (last["ratio"] < t.string_outlier_fraction).all() and (last["ratio"] > 0.05).all():
            string = metric.removesuffix("_dc_current")
            out.append(
                AlertCandidate(
                    "string_outlier", Severity.MEDIUM, site_id, device_id,
                    f"{device_id} {string}: {last['ratio'].mean():.0%} of the median string current over its last"
                    f" {len(last)} judged hours (limit {t.string_outlier_fraction:.0%})",
                    now, key=string, context={"ratios": [round(float(x), 3) for x in last["ratio"]]},
                )
            )  # fmt: skip
    return out
