"""Pure parsing of JSON payloads into metric values; every rejection says why."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

MAX_PAYLOAD_BYTES = 256 * 1024  # a device reading is a few hundred bytes
LATEST_TS = datetime(2100, 1, 1, tzinfo=UTC)


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
            raise PayloadError(f"timestamp {raw[:100]!r} is not ISO-8601") from None
        if ts.tzinfo is None:
            raise PayloadError(f"timestamp {raw!r} has no time zone")
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-14:00 is past datetime.max in UTC
            raise PayloadError(f"timestamp {raw!r} is out of range (2000..2100)") from None
        if not datetime(2000, 1, 1, tzinfo=UTC) <= ts < LATEST_TS:
            raise PayloadError(f"timestamp {raw!r} is out of range (2000..2100)")
        return ts
    raise PayloadError(f"timestamp {raw!r} is not a string or a number")


def parse_payload(
    payload: bytes, fields: dict[str, str], timestamp_field: str | None
) -> tuple[dict[str, float], datetime | None]:
    """Metric values (finite floats) and the payload's timestamp (None: use receive time)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    except RecursionError:  # `[` x 100 000
        raise PayloadError("not JSON: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise PayloadError(f"not JSON: {str(exc)[:200]}") from None
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
        try:
            value = float(raw)
        except OverflowError:  # an integer of 400 digits
            raise PayloadError(f"field {path!r} is too large for a number") from None
        if not math.isfinite(value):
            raise PayloadError(f"field {path!r} is not finite ({raw!r})")
        values[metric] = value
    if not values:
        raise PayloadError(f"none of the fields {sorted(fields.values())} is present")
    return values, ts
