"""HubSpot error bodies: ``{"status": "error", "message", "correlationId", "category", ...}``.

The 429 body is the odd one out (``errorType`` + ``policyName``); the emulator sends both the
old ``errorType: RATE_LIMIT`` and the newer ``category: RATE_LIMITS`` as the sheet advises.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sandbox.wire import Response

ERROR_TYPE = "application/json;charset=utf-8"
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
RATE_POLICIES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def error_response(
    status: int,
    category: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = error_body(category, message, **extra)
    return Response(status, body, {"Content-Type": ERROR_TYPE, **(headers or {})})


class HubSpotError(Exception):
    """Raised by emulator code; rendered with :meth:`response`."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return error_response(self.status, self.category, self.message, **self.extra)


def validation_error(message: str, **extra: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **extra)


def property_errors(problems: list[dict[str, Any]]) -> HubSpotError:
    """400 ``Property values were not valid: [...]`` (e.g. ``PROPERTY_DOESNT_EXIST``)."""
    listed = json.dumps(problems, separators=(",", ":"), ensure_ascii=False)
    return validation_error(f"Property values were not valid: {listed}")


def not_found(message: str = "resource not found", **extra: Any) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", message, **extra)


def conflict(message: str) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", message)


def invalid_authentication() -> Response:
    return error_response(401, "INVALID_AUTHENTICATION", AUTH_MESSAGE)


def expired_authentication() -> Response:
    return error_response(
        401,
        "EXPIRED_AUTHENTICATION",
        "The OAuth token used to make this call expired 0 second(s) ago.",
    )


def rate_limit_response(
    policy: str, portal_id: int, headers: Mapping[str, str] | None = None
) -> Response:
    """429 in HubSpot's rate-limit shape (``policy``: TEN_SECONDLY_ROLLING, SECONDLY, DAILY)."""
    group = {
        "TEN_SECONDLY_ROLLING": "publicapi:private-app-api-calls-ten-secondly",
        "SECONDLY": "publicapi:crm-search-secondly",
        "DAILY": "publicapi:private-app-api-calls-daily",
    }[policy]
    body = {
        "status": "error",
        "message": RATE_POLICIES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "groupName": f"{group}:{portal_id}",
        "category": "RATE_LIMITS",
    }
    return Response(429, body, {"Content-Type": ERROR_TYPE, **(headers or {})})


def server_error() -> Response:
    return error_response(500, "INTERNAL_ERROR", "internal error")
