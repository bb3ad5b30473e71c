"""The API's views: authentication, parameters, and one method per resource."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.export import (
    KPI_TABLE,
    ExportError,
    parse_bucket,
    parse_time,
    site_window,
)
from pv_platform.http_api.analytics import AnalyticsViews
from pv_platform.http_api.common import PREFIX, ApiError, Response
from pv_platform.http_api.limits import (
    CLOSED_AFTER,
    CLOSED_MAX_AGE_S,
    DEFAULT_LIMIT,
    KPI_UNITS,
    MAX_COMMENT_CHARS,
    MAX_LIMIT,
    MAX_RANGE,
)
from pv_platform.http_api.openapi import openapi
from pv_platform.http_api.paging import decode_cursor, encode_cursor, json_value
from pv_platform.http_api.reports import ReportViews
from pv_platform.http_api.tokens import Token, token_hash
from pv_platform.storage import api_reads
from pv_platform.storage.alerts import AlertStore

log = logging.getLogger("pv_platform.http_api")


class Api(ReportViews, AnalyticsViews):
    """Request handling, independent of the HTTP server: `handle(method, target, headers)`."""

    def __init__(
        self,
        engine: sa.Engine,
        tokens: list[Token],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        alerts: AlertLifecycle | None = None,
        db=None,
        plant=None,
    ) -> None:
        """`db` (a `Database` on `engine`) and `plant` serve the losses and incidents (503 without)."""
        self.engine, self.tokens, self.now = engine, tokens, now
        self.db, self.plant = db, plant
        # acknowledgements go through the alert engine: its callbacks and notifiers hear them
        self.alerts = alerts or AlertLifecycle(AlertStore(engine))
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
            (re.compile(rf"^{PREFIX}/incidents$"), "GET", "alerts:read", self.get_incidents),
            (
                re.compile(rf"^{PREFIX}/sites/([^/]+)/losses$"),
                "GET",
                "kpis:read",
                self.get_losses,
            ),
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
        data = json.dumps(body, default=json_value, separators=(",", ":")).encode()
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
                [json_value(rows[-1]["period_start"]), rows[-1]["device_id"]], path, query
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
            encode_cursor([json_value(rows[-1]["ts"]), rows[-1]["entity_id"]], path, query)
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
