"""What the HTTP API's modules share: its path prefix, a refusal, a response."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/api/v1"


class ApiError(Exception):
    """A refusal: HTTP status and a message naming what is wrong."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]
