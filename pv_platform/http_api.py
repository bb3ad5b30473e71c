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

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from pv_platform.alerts.engine import AlertEngine
from pv_platform.export import (
    KPI_HEADERS,
    KPI_TABLE,
    ExportError,
    parse_bucket,
    parse_time,
    site_window,
)
from pv_platform.http_common import PREFIX, ApiError, Response
from pv_platform.http_reports import ReportViews, report_paths
from pv_platform.storage import api_reads
from pv_platform.storage.alerts import AlertStore
from pv_platform.storage.schema import KPI_VALUE_COLUMNS

log = logging.getLogger(__name__)
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


# -- tokens ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    name: str
    sha256: str
    scopes: frozenset[str]
    sites: frozenset[str] | None  # None: every site


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return "pvp_" + secrets.token_urlsafe(32)


def load_tokens(path: Path) -> list[Token]:
    """Tokens of a JSON file `{"tokens": [{"name", "sha256", "scopes": [...], "sites": [...]?}]}`;
    a malformed entry is an error naming the file, the entry and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the API tokens ({exc})") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected {{"tokens": [...]}}')
    tokens = []
    for i, entry in enumerate(entries):
        where = f"{path}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: 'name' must be a non-empty string")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{where} ({name}): 'sha256' must be 64 lowercase hex digits")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            raise ValueError(f"{where} ({name}): 'scopes' must list some of {', '.join(SCOPES)}")
        sites = entry.get("sites")
        if sites is not None and (
            not isinstance(sites, list) or not all(isinstance(s, str) for s in sites)
        ):
            raise ValueError(f"{where} ({name}): 'sites' must be a list of site ids")
        tokens.append(Token(name, digest, frozenset(scopes), frozenset(sites) if sites else None))
    return tokens


# -- cursors ---------------------------------------------------------------------------------------
def _fingerprint(path: str, query: dict[str, list[str]]) -> str:
    items = sorted((k, v) for k, vs in query.items() if k != "cursor" for v in vs)
    return hashlib.sha256(json.dumps([path, items]).encode()).hexdigest()[:16]


def encode_cursor(key: list, path: str, query: dict[str, list[str]]) -> str:
    payload = json.dumps({"k": key, "q": _fingerprint(path, query)}, default=str)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(text: str, path: str, query: dict[str, list[str]]) -> list:
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key, fingerprint = payload["k"], payload["q"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "cursor: not a cursor this API gave out") from None
    if fingerprint != _fingerprint(path, query):
        raise ApiError(400, "cursor: it belongs to another query (same path and parameters needed)")
    return key


# -- the API ---------------------------------------------------------------------------------------
def _json_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Api(ReportViews):
    """Request handling, independent of the HTTP server: `handle(method, target, headers)`."""

    def __init__(
        self,
        engine: sa.Engine,
        tokens: list[Token],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        alerts: AlertEngine | None = None,
    ) -> None:
        self.engine, self.tokens, self.now = engine, tokens, now
        # acknowledgements go through the alert engine: its callbacks and notifiers hear them
        self.alerts = alerts or AlertEngine(AlertStore(engine))
        self.routes: list[tuple[re.Pattern, str, str, Callable]] = [
            (re.compile(rf"^{PREFIX}/sites$"), "GET", "sites:read", self.get_sites),
            (
                re.compile(rf"^{PREFIX}/sites/([^/]+)/devices$"),
                "GET",
                "sites:read",
                self.get_devices,
            ),
            (re.compile(rf"^{PREFIX}/sites/([^/]+)/kpis$"), "GET", "kpis:read", self.get_kpis),
            (
                re.compile(rf"^{PREFIX}/sites/([^/]+)/samples$"),
                "GET",
                "samples:read",
                self.get_samples,
            ),
            (re.compile(rf"^{PREFIX}/alerts$"), "GET", "alerts:read", self.get_alerts),
            (
                re.compile(rf"^{PREFIX}/sites/([^/]+)/reports$"),
                "GET",
                "reports:read",
                self.get_reports,
            ),
            (
                re.compile(rf"^{PREFIX}/sites/([^/]+)/reports/([^/]+)/([^/]+)$"),
                "GET",
                "reports:read",
                self.get_report,
            ),
            (re.compile(rf"^{PREFIX}/alerts/(\d+)/ack$"), "POST", "alerts:ack", self.post_ack),
        ]

    # request → response
    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        parts = urlsplit(target)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query, keep_blank_values=True)
        try:
            if path == f"{PREFIX}/openapi.json":
                self._only(method, "GET")
                return self._ok(openapi(), headers, closed=False)
            for pattern, allowed, scope, view in self.routes:
                match = pattern.match(path)
                if match:
                    self._only(method, allowed)
                    token = self._authenticate(headers, scope)
                    if allowed == "POST":
                        return self._ok(
                            view(token, self._json_body(headers, body), *match.groups()), {}, False
                        )
                    answer, closed = view(token, path, query, *match.groups())
                    if isinstance(answer, Response):  # a document (a report), not JSON
                        return self._document(answer, headers)
                    return self._ok(answer, headers, closed)
            raise ApiError(404, f"no such resource: {path} (see {PREFIX}/openapi.json)")
        except ApiError as exc:
            data = json.dumps({"error": exc.message, "status": exc.status}).encode()
            return Response(exc.status, data, {"Content-Type": "application/json", **exc.headers})

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(
                405, f"{method} is not allowed here (only {allowed})", {"Allow": allowed}
            )

    @staticmethod
    def _json_body(headers: dict[str, str], body: bytes) -> dict:
        if not body:
            return {}
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError(415, "body: send it as Content-Type: application/json")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ApiError(400, f"body: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ApiError(400, 'body: a JSON object expected, e.g. {"comment": "..."}')
        return data

    def _authenticate(self, headers: dict[str, str], scope: str) -> Token:
        challenge = {"WWW-Authenticate": 'Bearer realm="pvp"'}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise ApiError(401, "missing token: send 'Authorization: Bearer <token>'", challenge)
        digest = token_hash(auth[7:].strip())
        token = next((t for t in self.tokens if hmac.compare_digest(t.sha256, digest)), None)
        if token is None:
            raise ApiError(401, "unknown token", challenge)
        if scope not in token.scopes:
            raise ApiError(403, f"token {token.name!r} lacks the scope {scope!r}")
        return token

    def _ok(self, body: dict, headers: dict[str, str], closed: bool) -> Response:
        data = json.dumps(body, default=_json_value, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        out = {
            "Content-Type": "application/json",
            "ETag": etag,
            "Cache-Control": f"private, max-age={CLOSED_MAX_AGE_S}"
            if closed
            else "private, no-cache",
        }
        wanted = [t.strip() for t in headers.get("if-none-match", "").split(",")]
        if etag in wanted or "*" in wanted:
            return Response(304, b"", out)
        return Response(200, data, out)

    @staticmethod
    def _document(answer: Response, headers: dict[str, str]) -> Response:
        """A document with an ETag of its bytes (304 when it matches) and no-cache: it may be regenerated."""
        etag = '"' + hashlib.sha256(answer.body).hexdigest()[:32] + '"'
        out = {**answer.headers, "ETag": etag, "Cache-Control": "private, no-cache"}
        wanted = [t.strip() for t in headers.get("if-none-match", "").split(",")]
        if etag in wanted or "*" in wanted:
            return Response(304, b"", out)
        return Response(answer.status, answer.body, out)

    # helpers
    @staticmethod
    def _one(query: dict, name: str, default: str | None = None) -> str | None:
        values = query.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise ApiError(400, f"{name}: given {len(values)} times, once expected")
        return values[0]

    def _limit(self, query: dict) -> int:
        text = self._one(query, "limit", str(DEFAULT_LIMIT))
        if not text.isdigit() or int(text) < 1:
            raise ApiError(400, f"limit: {text!r} is not a whole number from 1 to {MAX_LIMIT}")
        if int(text) > MAX_LIMIT:
            raise ApiError(
                400,
                f"limit: {text} is over the maximum of {MAX_LIMIT} rows a page (use the cursor)",
            )
        return int(text)

    def _site(self, token: Token, site_id: str) -> dict:
        if token.sites is not None and site_id not in token.sites:
            raise ApiError(403, f"token {token.name!r} may not read site {site_id!r}")
        found = [s for s in api_reads.sites(self.engine) if s["id"] == site_id]
        if not found:
            raise ApiError(404, f"site {site_id!r} does not exist")
        return found[0]

    def _range(self, query: dict, site: dict, kind: str) -> tuple[datetime, datetime]:
        texts = {}
        for name in ("start", "end"):
            text = self._one(query, name)
            if text is None:
                raise ApiError(
                    400, f"{name}: required (ISO 8601, e.g. 2026-06-01 or 2026-06-01T10:00Z)"
                )
            texts[name] = text
        try:
            start, end = parse_time(texts["start"]), parse_time(texts["end"])
        except ExportError as exc:
            raise ApiError(400, f"start/end: {exc}") from None
        start, end = site_window(start, end, site["timezone"])
        if end <= start:
            raise ApiError(400, "end: must be after start")
        if end - start > MAX_RANGE[kind]:
            days = (end - start) / timedelta(days=1)
            raise ApiError(
                400,
                f"range of {days:g} days: at most {MAX_RANGE[kind].days} days per request for"
                f" {kind.replace('_', ' ')} (split the range)",
            )
        return start, end

    def _closed(self, end: datetime) -> bool:
        return end <= self.now() - CLOSED_AFTER

    # views: (token, path, query, *path groups) -> (body, closed)
    def get_sites(self, token: Token, path: str, query: dict):
        rows = [
            s for s in api_reads.sites(self.engine) if token.sites is None or s["id"] in token.sites
        ]
        return {"data": rows}, False

    def get_devices(self, token: Token, path: str, query: dict, site_id: str):
        self._site(token, site_id)
        return {"data": api_reads.devices(self.engine, site_id)}, False

    def get_kpis(self, token: Token, path: str, query: dict, site_id: str):
        site = self._site(token, site_id)
        grain = self._one(query, "grain", "day")
        if grain not in KPI_TABLE:
            raise ApiError(400, f"grain: {grain!r} is not one of {', '.join(KPI_TABLE)}")
        start, end = self._range(query, site, grain)
        limit, device = self._limit(query), self._one(query, "device")
        cursor = self._one(query, "cursor")
        after = None
        if cursor:
            key = decode_cursor(cursor, path, query)
            after = (datetime.fromisoformat(key[0]), str(key[1]))
        rows = api_reads.kpi_page(
            self.engine, KPI_TABLE[grain], site_id, start, end, device, after, limit + 1
        )
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = (
            encode_cursor(
                [_json_value(rows[-1]["period_start"]), rows[-1]["device_id"]], path, query
            )
            if more
            else None
        )
        body = {"site": site_id, "grain": grain, "start": start, "end": end, "units": KPI_UNITS,
                "data": rows, "next_cursor": next_cursor}  # fmt: skip
        return body, self._closed(end)

    def get_samples(self, token: Token, path: str, query: dict, site_id: str):
        site = self._site(token, site_id)
        bucket_text = self._one(query, "bucket")
        try:
            bucket_s = parse_bucket(bucket_text) if bucket_text else None
        except ExportError as exc:
            raise ApiError(400, str(exc)) from None
        start, end = self._range(query, site, "samples_bucketed" if bucket_s else "samples")
        limit, device = self._limit(query), self._one(query, "device")
        metrics = query.get("metric") or None
        cursor = self._one(query, "cursor")
        after = None
        if cursor:
            key = decode_cursor(cursor, path, query)
            after = (datetime.fromisoformat(key[0]), int(key[1]))
        rows = api_reads.sample_page(
            self.engine, site_id, start, end, device, metrics, bucket_s, after, limit + 1
        )
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = (
            encode_cursor([_json_value(rows[-1]["ts"]), rows[-1]["entity_id"]], path, query)
            if more
            else None
        )
        for r in rows:
            del r["entity_id"]
        body = {"site": site_id, "start": start, "end": end, "bucket_s": bucket_s,
                "aggregate": "mean; last value for counters and states" if bucket_s else None,
                "data": rows, "next_cursor": next_cursor}  # fmt: skip
        return body, self._closed(end)

    def get_alerts(self, token: Token, path: str, query: dict):
        site = self._one(query, "site")
        if site is not None:
            self._site(token, site)
        sites = [site] if site else (sorted(token.sites) if token.sites is not None else None)
        state, severity = self._one(query, "state"), self._one(query, "severity")
        if state not in (None, "open", "acknowledged", "resolved"):
            raise ApiError(400, f"state: {state!r} is not one of open, acknowledged, resolved")
        if severity not in (None, "CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"):
            raise ApiError(
                400, f"severity: {severity!r} is not one of CRITICAL, HIGH, MEDIUM, LOW, INFO"
            )
        limit, cursor = self._limit(query), self._one(query, "cursor")
        after = int(decode_cursor(cursor, path, query)[0]) if cursor else None
        rows = api_reads.alert_page(self.engine, sites, state, severity, after, limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = encode_cursor([rows[-1]["id"]], path, query) if more else None
        return {"data": rows, "next_cursor": next_cursor}, False

    def post_ack(self, token: Token, body: dict, alert_id: str) -> dict:
        """Acknowledge an open alert, signed `api:<token name>` (the name cannot be chosen)."""
        unknown = sorted(set(body) - {"comment"})
        if unknown:
            raise ApiError(400, f"body: unknown field(s) {', '.join(unknown)} (only comment)")
        comment = body.get("comment", "")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise ApiError(400, f"comment: a string of at most {MAX_COMMENT_CHARS} characters")
        alert = api_reads.alert(self.engine, int(alert_id))
        if alert is None or (token.sites is not None and alert["site_id"] not in token.sites):
            # another site's alert is as unknown to this token as a missing one
            raise ApiError(404, f"alert {alert_id} does not exist")
        if alert["state"] != "open":
            raise ApiError(
                409, f"alert {alert_id} is {alert['state']}: only an open alert is acknowledged"
            )
        signed = self.alerts.acknowledge(int(alert_id), f"api:{token.name}", comment, self.now())
        if not signed:  # acknowledged by someone else between the two statements
            raise ApiError(409, f"alert {alert_id} is no longer open")
        return {"data": api_reads.alert(self.engine, int(alert_id))}


# -- OpenAPI ---------------------------------------------------------------------------------------
def _param(name: str, where: str, description: str, required: bool = False, **schema) -> dict:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


def openapi() -> dict:
    """The OpenAPI 3.1 document of this API."""
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((400, "a parameter is wrong (the message names it)"), (401, "no or unknown token"),
                           (403, "the token lacks the scope or the site"), (404, "no such site or resource"))
    }  # fmt: skip
    page = {"description": "a page of rows; next_cursor for the next (null: last page)",
            "content": {"application/json": {"schema": {"type": "object"}}}}  # fmt: skip
    not_modified = {"304": {"description": "not modified (If-None-Match matched the ETag)"}}
    site = _param("site", "path", "site id", required=True)
    window = [
        _param("start", "query", "ISO 8601 date or time; without an offset the site's local time", required=True),
        _param("end", "query", "exclusive, like start", required=True),
        _param("limit", "query", f"rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
               type="integer", minimum=1, maximum=MAX_LIMIT),
        _param("cursor", "query", "next_cursor of the previous page (same parameters)"),
    ]  # fmt: skip

    def op(summary: str, scope: str, params: list[dict]) -> dict:
        return {"get": {"summary": summary, "security": [{"bearer": [scope]}], "parameters": params,
                        "responses": {"200": page, **not_modified, **errors}}}  # fmt: skip

    return {
        "openapi": "3.1.0",
        "info": {"title": "PV Platform API", "version": "1.0.0",
                 "description": "Read-only access to sites, KPIs, samples and alerts. Ranges: samples"
                 f" {MAX_RANGE['samples'].days} days ({MAX_RANGE['samples_bucketed'].days} with bucket),"
                 f" hourly KPIs {MAX_RANGE['hour'].days} days. Periods closed a day ago are cacheable."},
        "servers": [{"url": PREFIX}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "scopes: " + ", ".join(SCOPES)}},
            "schemas": {"Error": {"type": "object", "required": ["error", "status"],
                                  "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}},
        },
        "paths": {
            "/sites": op("sites the token may read", "sites:read", []),
            "/sites/{site}/devices": op("devices of a site, with metrics and units", "sites:read", [site]),
            "/sites/{site}/kpis": op("KPI rows of a site per period (units in `units`)", "kpis:read", [
                site, _param("grain", "query", "hour, day, month or year (default day)",
                             enum=list(KPI_TABLE)),
                _param("device", "query", "an inverter, or * for the site total (default: all)"),
                *window]),
            "/sites/{site}/samples": op("samples of a site, raw or downsampled", "samples:read", [
                site, _param("bucket", "query", "downsample: 1min, 15min, 1h ... (mean; last for counters)"),
                _param("device", "query", "one device"),
                _param("metric", "query", "a metric (repeatable)"), *window]),
            "/alerts": op("alerts, newest first", "alerts:read", [
                _param("site", "query", "one site"),
                _param("state", "query", "open, acknowledged or resolved", enum=["open", "acknowledged", "resolved"]),
                _param("severity", "query", "CRITICAL ... INFO", enum=["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]),
                *window[2:]]),
            **report_paths(op, site, not_modified, errors),
            "/alerts/{id}/ack": {"post": {
                "summary": "acknowledge an open alert, signed api:<token name>",
                "security": [{"bearer": ["alerts:ack"]}],
                "parameters": [_param("id", "path", "alert id", required=True, type="integer")],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"comment": {"type": "string", "maxLength": MAX_COMMENT_CHARS}},
                    "additionalProperties": False}}}},
                "responses": {"200": {"description": "the acknowledged alert"},
                              "409": {"description": "the alert is not open"},
                              "413": {"description": f"body over {MAX_BODY_BYTES} bytes"},
                              "415": {"description": "body not application/json"}, **errors}}},
        },
    }  # fmt: skip


# -- the server ------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY_BYTES or length < 0:
                raise ApiError(413, f"body: {length} bytes, at most {MAX_BODY_BYTES}")
            body = self.rfile.read(length) if length else b""
            response = self.server.api.handle(self.command, self.path, headers, body)
        except ApiError as exc:  # refused before the body was read: the connection closes below
            data = json.dumps({"error": exc.message, "status": exc.status}).encode()
            response = Response(exc.status, data, {"Content-Type": "application/json"})
        except ValueError:
            data = json.dumps({"error": "Content-Length: not a number", "status": 400}).encode()
            response = Response(400, data, {"Content-Type": "application/json"})
        except Exception:  # a bug or the database down: 500 without details, logged here
            log.exception("API request %s %s failed", self.command, self.path.split("?")[0])
            body = json.dumps({"error": "internal error (logged)", "status": 500}).encode()
            response = Response(500, body, {"Content-Type": "application/json"})
        self.close_connection = True  # one request per connection: an unread body never lingers
        self.send_response(response.status)
        self.send_header("Connection", "close")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

    def log_message(self, fmt: str, *args) -> None:  # the path only: a query could carry anything
        log.info("%s %s %s", self.address_string(), self.command, self.path.split("?")[0])


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        super().__init__(address, _Handler)
        self.api = api
