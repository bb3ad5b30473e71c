"""Site-level detector findings over a window of telemetry (days, not hours: a clear day or a noon
offset is judged on whole days): POA sensors against the clear sky, and the clock against the sun."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from pv_platform.analytics import sun
from pv_platform.kpi.samples import SampleSet
from pv_platform.plant import Site
from pv_platform.vocabulary import Metric

STEP_S, MAX_GAP_S = 60.0, 900.0
DRIFT_TOL = 0.05  # a POA sensor reading 5 % off the clear sky on clear days is drifting or dirty
MIN_CLEAR_DAYS = 2


@dataclass(frozen=True)
class Finding:
    """What one detector found for one device of a site over the window."""

    check: str  # irradiance_clearsky or clock_shift
    site_id: str
    device_id: str
    passed: bool
    detail: str
    metadata: dict = field(default_factory=dict)


def _minutes(series: SampleSet, key, start: datetime, end: datetime) -> pd.Series | None:
    found = series.step_means(key, start, end, STEP_S, MAX_GAP_S)
    if found is None:
        return None
    index = pd.date_range(pd.Timestamp(start), periods=len(found[0]), freq="1min")
    return pd.Series(found[0], index=index)


def poa_findings(
    series: SampleSet, site: Site, start: datetime, end: datetime, clear: pd.Series
) -> list[Finding]:
    """Each POA sensor: its insolation over the modelled clear sky in the clear hours of the window's
    days (`sun.clearsky_ratio_per_day`)."""
    out = []
    for device in (d for d in site.devices if d.kind == "weather_station"):
        poa = _minutes(series, (site.id, device.id, Metric.POA_IRRADIANCE), start, end)
        if poa is None:
            continue
        days = sun.clearsky_ratio_per_day(poa, clear)
        judged = days[days["judged"] & days["ratio"].notna()]
        flagged = sun.clearsky_deviation(poa, clear, days=days)
        meta = {"clear_days": len(judged), "flagged_minutes": int(flagged.sum())}
        if len(judged) < MIN_CLEAR_DAYS:
            out.append(Finding("irradiance_clearsky", site.id, device.id, True,
                               f"{len(judged)} day(s) with enough clear sky: not judged", meta))  # fmt: skip
            continue
        ratio = float(judged["ratio"].median())
        meta["ratio"] = round(ratio, 4)
        ok = abs(ratio - 1.0) <= DRIFT_TOL
        detail = (f"{device.id} reads {ratio:.1%} of the clear-sky POA in the clear hours of {len(judged)} days"
                  + ("" if ok else f" (more than {DRIFT_TOL:.0%} off: drifting, dirty or shaded)"))  # fmt: skip
        out.append(Finding("irradiance_clearsky", site.id, device.id, ok, detail, meta))
    return out


def clock_finding(
    series: SampleSet, site: Site, start: datetime, end: datetime, clear: pd.Series
) -> Finding | None:
    """The site's noon (POA, else the inverters' summed power) against the solar noon."""
    keys = [
        (site.id, d.id, Metric.POA_IRRADIANCE) for d in site.devices if d.kind == "weather_station"
    ]
    keys = keys or [(site.id, d.id, Metric.AC_POWER) for d in site.inverters]
    parts = [s for s in (_minutes(series, k, start, end) for k in keys) if s is not None]
    if not parts:
        return None
    signal = pd.concat(parts, axis=1).sum(axis=1, min_count=1)
    offset = sun.noon_offset_min(signal, clear, site.longitude).dropna()
    if offset.empty:
        return None
    latest = float(offset.iloc[-1])
    ok = abs(latest) <= sun.SHIFT_TOL_MIN
    detail = f"noon {latest:+.0f} min from the solar noon" + ("" if ok else ": timestamps shifted")
    return Finding("clock_shift", site.id, "*", ok, detail, {"offset_min": round(latest, 1)})


def site_findings(series: SampleSet, site: Site, start: datetime, end: datetime) -> list[Finding]:
    """Every site-level finding over [start, end) (whole UTC days work best)."""
    index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1min", inclusive="left")
    clear = sun.clearsky_poa_wm2(index, site.latitude, site.longitude, site.tilt_deg,
                                 site.azimuth_deg, site.altitude_m)  # fmt: skip
    found = poa_findings(series, site, start, end, clear)
    clock = clock_finding(series, site, start, end, clear)
    return found + ([clock] if clock else [])
