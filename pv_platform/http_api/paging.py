"""Opaque page cursors bound to the request that made them, and JSON values of rows."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from datetime import UTC, date, datetime

from pv_platform.http_api.common import ApiError

log = logging.getLogger("pv_platform.http_api")


def request_fingerprint(path: str, query: dict[str, list[str]]) -> str:
    items = sorted((k, v) for k, vs in query.items() if k != "cursor" for v in vs)
    return hashlib.sha256(json.dumps([path, items]).encode()).hexdigest()[:16]


def encode_cursor(key: list, path: str, query: dict[str, list[str]]) -> str:
    payload = json.dumps({"k": key, "q": request_fingerprint(path, query)}, default=str)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(text: str, path: str, query: dict[str, list[str]]) -> list:
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key, fingerprint = payload["k"], payload["q"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "cursor: not a cursor this API gave out") from None
    if fingerprint != request_fingerprint(path, query):
        raise ApiError(400, "cursor: it belongs to another query (same path and parameters needed)")
    return key


def json_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
