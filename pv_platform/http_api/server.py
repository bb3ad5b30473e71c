"""The HTTP server: one request per connection, refusals as JSON, nothing of the query logged."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pv_platform.http_api.common import ApiError, Response
from pv_platform.http_api.limits import MAX_BODY_BYTES
from pv_platform.http_api.views import Api

log = logging.getLogger("pv_platform.http_api")


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            try:
                length = int(headers.get("content-length", "0") or 0)
            except ValueError:  # only this: a ValueError of a view is a bug (500 below), not a 400
                raise ApiError(400, "Content-Length: not a number") from None
            if length > MAX_BODY_BYTES or length < 0:
                raise ApiError(413, f"body: {length} bytes, at most {MAX_BODY_BYTES}")
            body = self.rfile.read(length) if length else b""
            response = self.server.api.handle(self.command, self.path, headers, body)
        except ApiError as exc:  # refused before the body was read: the connection closes below
            data = json.dumps({"error": exc.message, "status": exc.status}).encode()
            response = Response(exc.status, data, {"Content-Type": "application/json"})
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
