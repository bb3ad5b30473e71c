"""From a block of an input file to readings: parse times, map columns to entities, convert units, and
say why each refused row or cell is refused. Pure functions on pandas/numpy (no files, no database)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pv_platform.importing.mapping import (
    Mapping,
    MappingError,
    Resolved,
    Target,
    TimeSpec,
    fixed_offset,
    resolve,
)

_ZONED = r"\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"
UTC_NS = "datetime64[ns, UTC]"


@dataclass
class Block:
    """Readings of one input block, per entity, and the refused rows as (line, payload, reason)."""

    readings: list[tuple[Resolved, np.ndarray, np.ndarray]] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    lines: int = 0


def _text(raw: pd.Series) -> pd.Series:
    return raw.astype(object).where(raw.notna(), "").astype(str).str.strip()


def _localize(naive: pd.Series, zone: str) -> tuple[pd.Series, pd.Series]:
    """Naive local times in `zone` (IANA name or fixed offset) as UTC, and why each NaT is one."""
    offset = fixed_offset(zone)
    if offset is not None:
        utc = (naive - pd.Timedelta(offset.utcoffset(None))).dt.tz_localize("UTC")
        return utc, pd.Series("", index=naive.index)
    try:  # a logger's fall-back hour comes twice: in file order pandas can tell which is which
        local = naive.dt.tz_localize(zone, ambiguous="infer", nonexistent="NaT")
    except (ValueError, TypeError):
        local = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    gap = naive.dt.tz_localize(zone, ambiguous=True, nonexistent="NaT").isna()
    why = pd.Series("", index=naive.index)
    lost = local.isna() & naive.notna()
    why[lost & gap] = f"does not exist in {zone} (the clock skipped it: DST change)"
    why[lost & ~gap] = (
        f"is ambiguous in {zone} (DST change, hour repeated out of order); export with a UTC offset"
    )
    return local.dt.tz_convert("UTC"), why


def parse_times(raw: pd.Series, spec: TimeSpec) -> tuple[np.ndarray, pd.Series]:
    """Stamps as int64 ns since 1970 UTC (NaT where refused) and the reason per refused stamp ('' if
    taken). Stamps with an offset are read as written; naive stamps are in `spec.zone`."""
    why = pd.Series("", index=raw.index, dtype=object)
    if spec.epoch:
        number = pd.to_numeric(raw, errors="coerce")
        utc = pd.to_datetime(number, unit=spec.epoch, utc=True, errors="coerce")
        why[utc.isna()] = f"is not a number of {spec.epoch} since 1970 (epoch)"
    elif isinstance(raw.dtype, pd.DatetimeTZDtype):
        utc = raw.dt.tz_convert("UTC")
    else:
        text = _text(raw) if not pd.api.types.is_datetime64_dtype(raw.dtype) else None
        zoned = (
            text.str.contains(_ZONED, regex=True)
            if text is not None and not spec.format
            else pd.Series(False, index=raw.index)
        )
        utc = pd.Series(pd.NaT, index=raw.index, dtype=UTC_NS)
        if zoned.any():
            utc[zoned] = pd.to_datetime(text[zoned], utc=True, format="ISO8601", errors="coerce")
        naive_src = raw[~zoned] if text is None else text[~zoned]
        naive = (
            naive_src
            if text is None
            else pd.to_datetime(naive_src, format=spec.format or "ISO8601", errors="coerce")
        )
        why[~zoned & naive.reindex(raw.index).isna()] = (
            f"is not a date and time{f' in the format {spec.format}' if spec.format else ''}"
        )
        ok_naive = naive.notna()
        if ok_naive.any() and spec.zone is None:
            why[ok_naive[ok_naive].index] = (
                "has no time zone: give time.zone in the mapping (or --zone), e.g. Europe/Zurich or +01:00"
            )
        elif ok_naive.any():
            local, local_why = _localize(naive[ok_naive], spec.zone)
            utc[ok_naive[ok_naive].index] = local.astype(UTC_NS)
            why[local_why[local_why != ""].index] = local_why[local_why != ""]
        why[zoned & utc.isna()] = "is not a date and time"
    utc = utc.astype(UTC_NS)
    return utc.to_numpy(dtype="datetime64[ns]").view("int64"), why


def _values(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, present, refused): blank cells are absent (no reading), text and inf are refused."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(values)
    else:
        text = _text(raw)
        values = pd.to_numeric(text.where(text != "", np.nan), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        present = (text != "").to_numpy()
    refused = present & ~np.isfinite(values)
    return values, present, refused


@dataclass(frozen=True)
class Limits:
    """Oldest (per site: its commissioning) and newest stamp a reading may carry, in ns UTC, and the
    landing's wording of why a stamp is refused."""

    earliest_ns: dict[str, int]
    default_earliest_ns: int
    latest_ns: int
    why_not: Callable[[str, datetime], str | None]

    @classmethod
    def of(cls, time_limits) -> Limits:
        def ns(t: datetime) -> int:
            return int(pd.Timestamp(t).as_unit("ns").value)

        return cls(
            {s: ns(t) for s, t in time_limits.earliest_by_site.items()},
            ns(time_limits.default_earliest),
            ns(time_limits.latest),
            time_limits.why_not,
        )


def _series(
    block: Block, target: Resolved, stamps, values, keep, line0: int, payload, limits: Limits
) -> None:
    """Append one entity's readings where `keep`, refusing those outside the site's time limits."""
    earliest = limits.earliest_ns.get(target.site, limits.default_earliest_ns)
    outside = keep & ((stamps < earliest) | (stamps > limits.latest_ns))
    for i in np.flatnonzero(outside):
        when = datetime.fromtimestamp(stamps[i] / 1e9, UTC)
        block.rejected.append((line0 + i, payload(i), limits.why_not(target.key, when) or ""))
    keep = keep & ~outside
    converted = values[keep] * target.factor + target.offset
    if converted.size:
        block.readings.append((target, stamps[keep], converted))


def resolve_columns(mapping: Mapping, header: list[str], plant) -> dict[str, Resolved]:
    """The wide layout's columns checked against the file header and the plant file."""
    missing = [c for c in [mapping.time.column, *mapping.columns] if c not in header]
    if missing:
        raise MappingError(f"column(s) {missing} not in the file (it has {header[:20]})")
    return {
        col: resolve(t, mapping.site, None, plant, f"column {col!r}")
        for col, t in mapping.columns.items()
    }


def wide_block(
    frame: pd.DataFrame, line0: int, mapping: Mapping, targets: dict[str, Resolved], limits
) -> Block:
    """Readings of a wide block (one column per signal); `line0` is the file line of its first row."""
    block = Block(lines=len(frame))
    raw_time = frame[mapping.time.column]
    stamps, why = parse_times(raw_time, mapping.time)
    bad_time = (why != "").to_numpy()
    for i in np.flatnonzero(bad_time):
        payload = ",".join(str(v) for v in frame.iloc[i].tolist())
        block.rejected.append((line0 + i, payload, f"time {str(raw_time.iloc[i])!r} {why.iloc[i]}"))
    for col, target in targets.items():
        raw = frame[col]
        values, present, refused = _values(raw)
        for i in np.flatnonzero(refused & ~bad_time):
            reason = f"value {raw.iloc[i]!r} in column {col!r} is not a finite number"
            block.rejected.append((line0 + i, f"{raw_time.iloc[i]},{col}={raw.iloc[i]}", reason))
        keep = present & ~refused & ~bad_time

        def payload(i: int, raw=raw, col=col) -> str:
            return f"{raw_time.iloc[i]},{col}={raw.iloc[i]}"

        _series(block, target, stamps, values, keep, line0, payload, limits)
    return block


def long_block(frame: pd.DataFrame, line0: int, mapping: Mapping, plant, limits) -> Block:
    """Readings of a long block (`timestamp, device, metric, value` rows)."""
    spec = mapping.long
    block = Block(lines=len(frame))
    stamps, why = parse_times(frame[mapping.time.column], mapping.time)
    values, present, refused = _values(frame[spec.value])
    cols = [mapping.time.column, spec.device, spec.metric, spec.value]

    def payload(i: int) -> str:
        return ",".join(str(v) for v in frame.iloc[i][cols].tolist())

    bad_time = (why != "").to_numpy()
    for i in np.flatnonzero(bad_time):
        raw = frame[mapping.time.column].iloc[i]
        block.rejected.append((line0 + i, payload(i), f"time {str(raw)!r} {why.iloc[i]}"))
    for i in np.flatnonzero(refused & ~bad_time):
        reason = f"value {frame[spec.value].iloc[i]!r} is not a finite number"
        block.rejected.append((line0 + i, payload(i), reason))
    usable = present & ~refused & ~bad_time
    groups = frame.groupby([spec.device, spec.metric], sort=False, dropna=False).indices
    for (device, metric), rows in groups.items():
        target = spec.metrics.get(str(metric)) or _plain_target(str(metric))
        try:
            if target is None:
                raise MappingError(f"metric {metric!r} is not in the mapping's long.metrics")
            device_id = spec.devices.get(str(device), str(device))
            resolved = resolve(target, mapping.site, device_id, plant, f"{device}/{metric}")
        except MappingError as exc:
            for i in rows[usable[rows]]:
                block.rejected.append((line0 + i, payload(i), str(exc)))
            continue
        keep = np.zeros(len(frame), dtype=bool)
        keep[rows] = usable[rows]
        _series(block, resolved, stamps, values, keep, line0, payload, limits)
    return block


def _plain_target(metric: str) -> Target | None:
    """A long-format metric not in the mapping, taken as is when the platform knows it."""
    from pv_platform.importing.mapping import platform_units

    return Target(metric=metric) if metric in platform_units() else None
