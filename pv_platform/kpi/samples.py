"""A window of samples, one time-ordered series per (site, device, metric), kept as numpy arrays.

The KPI and quality code reads a week of minute data for a fleet at a time: keeping each entity as two
arrays (µs since the Unix epoch, values) and building pandas objects only on request makes that a few
array operations per entity. The per-minute means are cached, so the KPIs and the checks on the same
window integrate each series once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from pv_platform.kpi.energy import step_means
from pv_platform.vocabulary import Metric

EntityKey = tuple[str, str, str]  # (site_id, device_id, metric)
Arrays = tuple[np.ndarray, np.ndarray]  # (int64 µs since 1970-01-01 UTC, float64 values)


def _us(ts: datetime) -> int:
    return pd.Timestamp(ts).value // 1000  # .value is ns whatever the unit


def _ordered_unique(ts_us: np.ndarray, values: np.ndarray) -> Arrays:
    """Time order; of samples with the same timestamp the last one given is kept."""
    if len(ts_us) > 1 and not np.all(ts_us[1:] > ts_us[:-1]):
        order = np.argsort(ts_us, kind="stable")
        ts_us, values = ts_us[order], values[order]
        last = np.concatenate([ts_us[1:] != ts_us[:-1], [True]])
        ts_us, values = ts_us[last], values[last]
    return ts_us, values


class SampleSet(Mapping[EntityKey, pd.Series]):
    """Samples per entity; `samples[key]` is a pd.Series (built on first use), `arrays(key)` the arrays."""

    def __init__(self, arrays: dict[EntityKey, Arrays]) -> None:
        self._arrays = {
            k: _ordered_unique(np.asarray(t, np.int64), np.asarray(v, float))
            for k, (t, v) in arrays.items()
        }
        self._series: dict[EntityKey, pd.Series] = {}
        self._means: dict[tuple, Arrays] = {}
        self._runs: dict[EntityKey, np.ndarray] = {}

    @classmethod
    def from_columns(
        cls,
        names: Mapping[int, EntityKey],
        entity_id: np.ndarray,
        ts_us: np.ndarray,
        values: np.ndarray,
    ) -> SampleSet:
        """From parallel columns (as read from storage): entity ids, times [µs since epoch], values."""
        order = np.argsort(entity_id, kind="stable")
        ids = entity_id[order]
        cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        return cls(
            {
                names[int(entity_id[rows[0]])]: (ts_us[rows], values[rows])
                for rows in np.split(order, cuts)
                if len(rows)
            }
        )

    @classmethod
    def from_frame(cls, samples: pd.DataFrame) -> SampleSet:
        """From long format: columns site_id, device_id, metric, ts (UTC), value."""
        if samples.empty:
            return cls({})
        columns = [pd.factorize(samples[c]) for c in ("site_id", "device_id", "metric")]
        combined = np.zeros(len(samples), np.int64)
        for codes, uniques in columns:
            combined = combined * len(uniques) + codes
        ids, first = np.unique(combined, return_index=True)
        names = {
            int(i): tuple(uniques[codes[row]] for codes, uniques in columns)
            for i, row in zip(ids, first, strict=True)
        }
        ts_us = pd.DatetimeIndex(samples["ts"]).as_unit("us").asi8
        return cls.from_columns(names, combined, ts_us, samples["value"].to_numpy(dtype=float))

    def to_frame(self) -> pd.DataFrame:
        """Long format: site_id, device_id, metric, ts (UTC), value; by entity, then time."""
        keys = list(self._arrays)
        sizes = [len(self._arrays[k][0]) for k in keys]
        names = np.array(keys, dtype=object).reshape(len(keys), 3)
        ts_us = np.concatenate([self._arrays[k][0] for k in keys] or [np.zeros(0, np.int64)])
        frame = pd.DataFrame(
            {
                column: np.repeat(names[:, i], sizes) if keys else np.array([], dtype=object)
                for i, column in enumerate(("site_id", "device_id", "metric"))
            }
        )
        frame["ts"] = pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC")
        frame["value"] = np.concatenate([self._arrays[k][1] for k in keys] or [np.zeros(0)])
        return frame

    def __getitem__(self, key: EntityKey) -> pd.Series:
        if key not in self._series:
            ts_us, values = self._arrays[key]
            index = pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC")
            self._series[key] = pd.Series(values, index=index)
        return self._series[key]

    def __iter__(self) -> Iterator[EntityKey]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __contains__(self, key: object) -> bool:
        return key in self._arrays

    def arrays(self, key: EntityKey) -> Arrays | None:
        return self._arrays.get(key)

    def newest(self) -> datetime | None:
        """The time of the newest sample of any entity (None: no sample)."""
        last = [int(ts[-1]) for ts, _ in self._arrays.values() if len(ts)]
        return pd.Timestamp(max(last), unit="us", tz="UTC").to_pydatetime() if last else None

    def run_starts(self, key: EntityKey) -> np.ndarray:
        """For each sample of an entity, the index where its run of one repeated value begins
        (computed once per entity: the frozen-value rule asks at every window end)."""
        if key not in self._runs:
            v = self._arrays[key][1]
            begins = np.concatenate([[True], v[1:] != v[:-1]]) if len(v) else np.zeros(0, bool)
            self._runs[key] = np.maximum.accumulate(np.where(begins, np.arange(len(v)), 0))
        return self._runs[key]

    def seconds(self, key: EntityKey, origin: datetime) -> tuple[np.ndarray, np.ndarray] | None:
        """(seconds from origin [s], values) of an entity, None when it has no samples."""
        found = self._arrays.get(key)
        if found is None:
            return None
        return (found[0] - _us(origin)) / 1e6, found[1]

    def step_means(
        self, key: EntityKey, start: datetime, end: datetime, step_s: float, max_gap_s: float
    ) -> Arrays | None:
        """Per-step time-weighted means and covered seconds over [start, end) (see `energy.step_means`),
        computed once per entity and window."""
        cache_key = (key, _us(start), _us(end), step_s, max_gap_s)
        if cache_key not in self._means:
            found = self.seconds(key, start)
            n_steps = int(round((_us(end) - _us(start)) / 1e6 / step_s))
            self._means[cache_key] = (
                None
                if found is None
                else step_means(found[0], found[1], n_steps, step_s, max_gap_s)
            )
        return self._means[cache_key]


def as_sample_set(samples: pd.DataFrame | SampleSet) -> SampleSet:
    """A SampleSet as is; long-format samples converted."""
    return samples if isinstance(samples, SampleSet) else SampleSet.from_frame(samples)


def daylight_minutes(
    series, plant, start: datetime, end: datetime, step_s: float, max_gap_s: float
) -> np.ndarray:
    """Per step of [start, end): daylight unless a POA sensor covers the step and none is at or above
    its site's daylight threshold [W/m2] (a step no sensor covers says nothing about the night)."""
    n = int(round((_us(end) - _us(start)) / 1e6 / step_s))
    known, bright = np.zeros(n, bool), np.zeros(n, bool)
    for site in plant.sites:
        for device in (d for d in site.devices if d.kind == "weather_station"):
            key = (site.id, device.id, Metric.POA_IRRADIANCE)
            means = series.step_means(key, start, end, step_s, max_gap_s)
            if means is not None:
                known |= means[1] > 0
                bright |= np.nan_to_num(means[0], nan=0.0) >= site.daylight_poa_wm2
    return bright | ~known
