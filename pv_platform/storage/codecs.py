"""PostgreSQL's binary formats, read and written with numpy: array results, COPY streams, text."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's zero time, in µs since 1970-01-01
SAMPLE_RECORD = np.dtype([("ts", ">i8"), ("value", ">f8")])  # timestamptz_send || float8send


class _BinaryArrayLoader(Loader):
    """A one-dimensional array of a fixed-size type without NULLs, in PostgreSQL's binary format,
    straight into numpy: 20 header bytes, then per element a 4-byte length and the big-endian value."""

    format = Format.BINARY
    element = np.dtype(">f8")

    def load(self, data: Any) -> np.ndarray:
        ndim, has_nulls = np.frombuffer(data, ">i4", 2)
        if ndim == 0:
            return np.zeros(0, self.element.newbyteorder("="))
        if ndim != 1 or has_nulls:
            raise ValueError("expected a one-dimensional array without NULLs")
        n = int(np.frombuffer(data, ">i4", 1, 12)[0])
        items = np.frombuffer(data, [("length", ">i4"), ("value", self.element)], n, 20)
        return items["value"].astype(self.element.newbyteorder("="))


class Float8ArrayLoader(_BinaryArrayLoader):
    element = np.dtype(">f8")


class TimestampArrayLoader(_BinaryArrayLoader):
    """timestamptz[] -> int64 µs since 1970-01-01 UTC."""

    element = np.dtype(">i8")

    def load(self, data: Any) -> np.ndarray:
        return super().load(data) + PG_EPOCH_US


class Int4ArrayLoader(_BinaryArrayLoader):
    element = np.dtype(">i4")


def register_array_loaders(cur: psycopg.Cursor) -> None:
    """float8[], int4[] and timestamptz[] results of this cursor as numpy arrays (binary cursors only)."""
    types = psycopg.postgres.types
    cur.adapters.register_loader(types["timestamptz"].array_oid, TimestampArrayLoader)
    cur.adapters.register_loader(types["float8"].array_oid, Float8ArrayLoader)
    cur.adapters.register_loader(types["int4"].array_oid, Int4ArrayLoader)


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY header: no flags, no extension
COPY_TRAILER = b"\xff\xff"


def field_bytes(values: np.ndarray, kind: str, present: np.ndarray | None = None):
    """Binary COPY fields of a block of columns of one type: (n, columns * (4 + size)) bytes of
    big-endian length and value per field, and the mask of the bytes that belong in the stream (a NULL
    is the length -1 and no value).

    values : (n,) or (n, columns); present : same shape, False where the field is NULL
    """
    values = values.reshape(len(values), -1)
    n, k = values.shape
    data = np.ascontiguousarray(values, dtype=kind).view(np.uint8).reshape(n, k, -1)
    size = data.shape[2]
    lengths = np.full((n, k), size, ">i4")
    keep = np.ones((n, k, 4 + size), bool)
    if present is not None:
        present = present.reshape(n, k)
        lengths[~present] = -1
        keep[~present, 4:] = False
    fields = np.concatenate([lengths.view(np.uint8).reshape(n, k, 4), data], axis=2)
    return fields.reshape(n, -1), keep.reshape(n, -1)


def kpi_copy_stream(rows: pd.DataFrame, columns: list[str]) -> bytes:
    """KPI rows as one binary COPY stream, built with numpy a column at a time (no per-value
    formatting): text names, timestamptz, float8 (NaN and None as NULL) and the int4 sample count."""
    if columns[:3] != ["site_id", "device_id", "period_start"]:
        raise ValueError("KPI rows start with site_id, device_id, period_start")
    site_codes, sites = pd.factorize(rows["site_id"])
    device_codes, devices = pd.factorize(rows["device_id"])
    pair_ids, codes = np.unique(site_codes * len(devices) + device_codes, return_inverse=True)
    uniques = [(sites[i // len(devices)], devices[i % len(devices)]) for i in pair_ids]
    # the row header and the two names are the same for every row of a (site, device): a small table
    heads = [
        len(columns).to_bytes(2, "big")
        + b"".join(len(b := str(x).encode()).to_bytes(4, "big") + b for x in pair)
        for pair in uniques
    ]
    width = max(len(h) for h in heads)
    table = np.zeros((len(heads), width), np.uint8)
    for i, head in enumerate(heads):
        table[i, : len(head)] = np.frombuffer(head, np.uint8)
    head_len = np.array([len(h) for h in heads])
    parts = [(table[codes], np.arange(width) < head_len[codes][:, None])]
    stamps = pd.DatetimeIndex(rows["period_start"]).tz_convert("UTC").as_unit("us").asi8
    parts.append(field_bytes(stamps - PG_EPOCH_US, ">i8"))
    numbers = columns[3:-1] if columns[-1] == "samples" else columns[3:]
    values = rows[numbers].astype(float).to_numpy(dtype=float, na_value=np.nan)
    parts.append(field_bytes(values, ">f8", ~np.isnan(values)))
    if columns[-1] == "samples":
        parts.append(field_bytes(rows["samples"].to_numpy(dtype=np.int64), ">i4"))
    matrix = np.hstack([m for m, _ in parts])
    keep = np.hstack([k for _, k in parts])
    return COPY_SIGNATURE + matrix[keep].tobytes() + COPY_TRAILER


def sample_copy_stream(entity_ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> bytes:
    """(entity_id int4, ts timestamptz, value float8) rows as one binary COPY stream, built with numpy:
    per row a 2-byte field count, then each field's 4-byte length and big-endian value (34 bytes)."""
    n = len(values)
    rows = np.empty(
        n,
        dtype=[("count", ">i2"), ("l1", ">i4"), ("entity", ">i4"), ("l2", ">i4"), ("ts", ">i8"),
               ("l3", ">i4"), ("value", ">f8")],
    )  # fmt: skip
    rows["count"], rows["l1"], rows["l2"], rows["l3"] = 3, 4, 8, 8
    rows["entity"] = entity_ids
    rows["ts"] = ts_us - PG_EPOCH_US
    rows["value"] = values
    return COPY_SIGNATURE + rows.tobytes() + COPY_TRAILER


def pg_text(value: str) -> str:
    """Text as PostgreSQL stores it: a NUL byte (which `text` cannot hold) written as the escape `\\x00`,
    so one odd byte from a device can never fail its whole segment."""
    return value.replace("\x00", "\\x00")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as dicts of plain Python values, NaN as None (for executemany)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                record[key] = value.item()
    return records


def sample_records(packed: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A bytea of `timestamptz_send(ts) || float8send(value)` records: (times [µs since the epoch], values)."""
    found = np.frombuffer(packed, SAMPLE_RECORD)
    return found["ts"] + PG_EPOCH_US, found["value"].astype(float)


def kpi_frame(groups: list[tuple], value_columns: tuple[str, ...]) -> pd.DataFrame:
    """KPI rows from per-(site, device) array rows: (site_id, device_id, period_start[], samples[],
    computed_at[], *value_columns[]), times in µs since 1970; ordered by period, site and device."""
    columns = ["site_id", "device_id", "period_start", *value_columns, "samples", "computed_at"]
    if not groups:
        return pd.DataFrame(columns=columns)
    for i, g in enumerate(groups):
        if np.any(np.diff(g[2]) <= 0):  # not in time order after all: order every column
            order = np.argsort(g[2], kind="stable")
            groups[i] = (*g[:2], *(a[order] for a in g[2:]))
    sizes = [len(g[2]) for g in groups]
    stamps = lambda i: pd.DatetimeIndex(  # noqa: E731
        np.concatenate([g[i] for g in groups]).astype("datetime64[us]")
    ).tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "site_id": np.repeat([g[0] for g in groups], sizes).astype(object),
            "device_id": np.repeat([g[1] for g in groups], sizes).astype(object),
            "period_start": stamps(2),
            **{c: np.concatenate([g[5 + i] for g in groups]) for i, c in enumerate(value_columns)},
            "samples": np.concatenate([g[3] for g in groups]),
            "computed_at": stamps(4),
        }
    )
    return frame.sort_values(["period_start", "site_id", "device_id"], ignore_index=True)
