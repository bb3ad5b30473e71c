"""What one request may ask for: scopes, page sizes, ranges, body sizes, caching."""

from __future__ import annotations

import logging
from datetime import timedelta

from pv_platform.export import (
    KPI_HEADERS,
)
from pv_platform.storage.schema import KPI_VALUE_COLUMNS

log = logging.getLogger("pv_platform.http_api")


SCOPES = ("sites:read", "kpis:read", "samples:read", "alerts:read", "alerts:ack", "reports:read")


MAX_BODY_BYTES = 16_384  # a POST body (an acknowledgement's comment) at most


MAX_COMMENT_CHARS = 2000


DEFAULT_LIMIT = 1000


MAX_LIMIT = 5000


MAX_RANGE = {  # the longest range one request may ask for
    "samples": timedelta(days=31),
    "samples_bucketed": timedelta(days=366),
    "hour": timedelta(days=366),
    "day": timedelta(days=3660),
    "month": timedelta(days=36600),
    "year": timedelta(days=36600),
}


CLOSED_AFTER = timedelta(
    days=1
)  # a range that ended this long ago is cached (late data comes sooner)


CLOSED_MAX_AGE_S = 86_400


KPI_UNITS = {c: KPI_HEADERS[c].rsplit("[", 1)[1].rstrip("]") for c in KPI_VALUE_COLUMNS}
