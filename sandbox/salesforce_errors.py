"""Salesforce REST error bodies (request level: a JSON array of ``errorCode`` objects)."""

from __future__ import annotations

from sandbox.wire import Response


class ApiError(Exception):
    """Raised inside the Salesforce emulator; rendered as ``[{"message", "errorCode"}]``."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def response(self) -> Response:
        return error_response(self.status, self.error_code, self.message, self.fields)


def error_response(
    status: int, error_code: str, message: str, fields: list[str] | None = None
) -> Response:
    item: dict[str, object] = {"message": message, "errorCode": error_code}
    if fields is not None:
        item["fields"] = fields
    return Response(status, [item])


def invalid_session() -> Response:
    return error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")


def request_limit_exceeded() -> Response:
    return error_response(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def server_unavailable() -> Response:
    return error_response(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")


def not_found() -> Response:
    return not_found_error().response()


def not_found_error() -> ApiError:
    """404 ``NOT_FOUND``: no such object, or a record id that never existed."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_is_deleted_error() -> ApiError:
    """404 ``ENTITY_IS_DELETED``: single-record GET/PATCH/DELETE of a record in the Recycle Bin
    (Salesforce sends ``"fields": []``)."""
    return ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def record_error(status_code: str, message: str, fields: list[str]) -> dict[str, object]:
    """One per-record error of a SaveResult (note: ``statusCode``, not ``errorCode``)."""
    return {"statusCode": status_code, "message": message, "fields": fields}
