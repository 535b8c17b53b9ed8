"""Request/response value types shared by the emulators (no networking here)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

JSON_TYPE = "application/json;charset=UTF-8"


def header_lookup(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_form(raw: bytes | str, join: str | None = None) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` payload: the first value of a repeated
    key, or all of them joined by ``join`` (``properties=a&properties=b`` → ``a,b``)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    parsed = parse_qs(text, keep_blank_values=True)
    if join is None:
        return {k: v[0] for k, v in parsed.items()}
    return {k: join.join(v) for k, v in parsed.items()}


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request as seen by a route handler."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        value = header_lookup(self.headers, name)
        return default if value is None else value

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty); raises ``ValueError`` if invalid."""
        if not self.body.strip():
            return None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body decoded as a form (first value per key)."""
        return parse_form(self.body)


@dataclass(frozen=True)
class Response:
    """What a handler returns: dict/list bodies are sent as JSON, str as text, bytes raw."""

    status: int = 200
    body: dict[str, Any] | list[Any] | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str | None]:
        """Return the payload bytes and the default Content-Type for them."""
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain;charset=UTF-8"
        return orjson.dumps(self.body, option=orjson.OPT_NON_STR_KEYS), JSON_TYPE

    def with_headers(self, extra: Mapping[str, str]) -> Response:
        return Response(self.status, self.body, {**self.headers, **extra})


@dataclass(frozen=True)
class LoggedRequest:
    """One entry of an emulator's request log (the Authorization header is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int
    fault: str | None
    at: float
