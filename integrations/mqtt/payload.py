"""Pure parsing of JSON payloads into metric values; every rejection says why."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any


class PayloadError(ValueError):
    """A payload that cannot be turned into readings."""


def _field(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def parse_timestamp(raw: Any) -> datetime:
    """ISO-8601 with zone, or epoch seconds, to an aware UTC datetime."""
    if isinstance(raw, bool):
        raise PayloadError(f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or not 946684800 <= raw <= 4102444800:
            raise PayloadError(f"epoch timestamp {raw!r} is out of range (2000..2100)")
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"timestamp {raw!r} is not ISO-8601") from None
        if ts.tzinfo is None:
            raise PayloadError(f"timestamp {raw!r} has no time zone")
        return ts.astimezone(UTC)
    raise PayloadError(f"timestamp {raw!r} is not a string or a number")


def parse_payload(
    payload: bytes, fields: dict[str, str], timestamp_field: str | None
) -> tuple[dict[str, float], datetime | None]:
    """Metric values (finite floats) and the payload's timestamp (None: use receive time)."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {type(data).__name__}")
    ts = None
    if timestamp_field is not None:
        try:
            ts = parse_timestamp(_field(data, timestamp_field))
        except KeyError:
            raise PayloadError(f"missing timestamp field {timestamp_field!r}") from None
    values: dict[str, float] = {}
    for metric, path in fields.items():
        try:
            raw = _field(data, path)
        except KeyError:
            continue  # a device may omit a field; that is missing, not an error
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise PayloadError(f"field {path!r} is {raw!r}, not a number")
        if not math.isfinite(raw):
            raise PayloadError(f"field {path!r} is not finite ({raw!r})")
        values[metric] = float(raw)
    if not values:
        raise PayloadError(f"none of the fields {sorted(fields.values())} is present")
    return values, ts
