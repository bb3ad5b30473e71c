"""The HTTP API for integrators (`pvp api`): sites and devices, KPIs per grain, samples (downsampled on
request) and alerts, as JSON under /api/v1, described by /api/v1/openapi.json; read-only but for
acknowledging an alert (POST /alerts/{id}/ack, scope `alerts:ack`).

Every request but the OpenAPI document needs `Authorization: Bearer <token>`; tokens are kept as SHA-256
hashes in PVP_API_TOKENS_FILE, each with its scopes (`sites:read`, `kpis:read`, `samples:read`,
`alerts:read`, `alerts:ack`, `reports:read`) and optionally the sites it may read. Pages are at most MAX_LIMIT rows, with an opaque
cursor for the next; ranges are limited per kind. Responses carry an ETag (a repeated request with
`If-None-Match` gets 304) and, for periods closed more than a day ago, `Cache-Control: max-age`.
Refusals are JSON `{"error": ..., "status": ...}` naming the parameter at fault.
"""

from pv_platform.http_api.limits import DEFAULT_LIMIT, MAX_LIMIT, MAX_RANGE, SCOPES
from pv_platform.http_api.openapi import openapi
from pv_platform.http_api.server import ApiServer
from pv_platform.http_api.tokens import Token, load_tokens, new_token, token_hash
from pv_platform.http_api.views import Api

__all__ = [
    "DEFAULT_LIMIT", "MAX_LIMIT", "MAX_RANGE", "SCOPES", "Api", "ApiServer", "Token", "load_tokens",
    "new_token", "openapi", "token_hash",
]  # fmt: skip
