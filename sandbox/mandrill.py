"""MandrillEmulator: Mailchimp Transactional (Mandrill) sending, on its own host
(mandrillapp.com), per /work/shared/api-specs/mailchimp.md.

``POST /api/1.3|1.4/messages/send-template[.json]`` with the key in the body, one result per
recipient (``rejected`` / ``unsub`` for a rejection-listed address; each logged message's
``metadata`` is the call's ``metadata`` with its ``recipient_metadata`` merged over it), errors as
``{"status": "error", "code", "name", "message"}`` — a wrong key is HTTP 500 ``Invalid_Key``
(code -1), as Mandrill answers it. ``users/ping2[.json]`` answers ``{"PING": "PONG!"}`` to a
valid key (the key check ``healthscore check`` makes). (Mailchimp's marketing read side is
``sandbox/mailchimp.py``; SendGrid mail send lives with the rest of SendGrid in
``sandbox/sendgrid.py``.)
"""

from __future__ import annotations

import copy
import secrets
import threading
from typing import Any

from sandbox.faults import Fault
from sandbox.ratelimit import KeyedTokenBucket
from sandbox.server import EmulatorServer, route
from sandbox.wire import Request, Response

__all__ = ["MandrillEmulator"]


def _md_error(status: int, code: int, name: str, message: str) -> Response:
    return Response(status, {"status": "error", "code": code, "name": name, "message": message})


def _invalid_key() -> Response:
    return _md_error(500, -1, "Invalid_Key", "Invalid API key")


class MandrillEmulator(EmulatorServer):
    """Mailchimp Transactional ``messages/send-template``; base URL ends ``/api/1.3``."""

    redact_fields = EmulatorServer.redact_fields | {"key"}

    def __init__(
        self,
        *,
        api_key: str = "md-sandbox-key",
        templates: tuple[str, ...] = (),
        sends_per_second: float = 1000.0,
        burst: int = 1000,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.templates = set(templates)  # empty: every slug exists
        self._lock = threading.RLock()
        self._sent: list[dict[str, Any]] = []
        self._rejects: dict[str, str] = {}
        self._buckets = KeyedTokenBucket(sends_per_second, burst)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/1.3"

    @property
    def sent(self) -> list[dict[str, Any]]:
        """One entry per recipient answered ``sent`` or ``rejected``."""
        with self._lock:
            return copy.deepcopy(self._sent)

    def reject(self, email: str, reason: str = "unsub") -> None:
        """Put an address on the rejection list (``unsub``, ``hard-bounce``, ``spam`` …)."""
        with self._lock:
            self._rejects[email.lower()] = reason

    def set_rate(self, sends_per_second: float, burst: int) -> None:
        self._buckets.configure(sends_per_second, burst)

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            return _md_error(
                429, 429, "RequestLimitExceeded", "Too Many Requests attempted recently"
            )
        if fault.kind == "expired_session":
            return _invalid_key()
        return _md_error(500, -1, "GeneralError", "An unexpected error occurred")

    def not_found(self, req: Request) -> Response:
        return _md_error(404, -1, "GeneralError", f"Unknown API call {req.path}")

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return _md_error(500, -1, "GeneralError", "An unexpected error occurred")

    @route("POST", r"/api/1\.[34]/users/ping2(\.json)?")
    def _ping2(self, req: Request) -> Response:
        """``users/ping2``: validate the key, answer ``{"PING": "PONG!"}``."""
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("key"), str):
            return _md_error(500, -2, "ValidationError", "You must specify a key value")
        if not secrets.compare_digest(body["key"].encode(), self.api_key.encode()):
            return _invalid_key()
        return Response(200, {"PING": "PONG!"})

    @route("POST", r"/api/1\.[34]/messages/send-template(\.json)?")
    def _send_template(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return _md_error(500, -2, "ValidationError", "You must specify a key value")
        if not isinstance(body, dict) or not isinstance(body.get("key"), str):
            return _md_error(500, -2, "ValidationError", "You must specify a key value")
        if not secrets.compare_digest(body["key"].encode(), self.api_key.encode()):
            return _invalid_key()
        if self._buckets.take("send"):
            return _md_error(
                429, 429, "RequestLimitExceeded", "Too Many Requests attempted recently"
            )
        template = body.get("template_name")
        if not isinstance(template, str) or not template:
            return _md_error(
                500,
                -2,
                "ValidationError",
                'Validation error: {"template_name":"Sorry, this field can\'t be left blank."}',
            )
        if "template_content" not in body or not isinstance(body["template_content"], list):
            return _md_error(
                500,
                -2,
                "ValidationError",
                'Validation error: {"template_content":"Please enter an array"}',
            )
        if self.templates and template not in self.templates:
            return _md_error(500, 5, "Unknown_Template", f'No such template "{template}"')
        message = body.get("message")
        to = message.get("to") if isinstance(message, dict) else None
        if not isinstance(to, list) or not to:
            return _md_error(
                500,
                -2,
                "ValidationError",
                'Validation error: {"message":{"to":"Please enter an array"}}',
            )
        per_recipient = {  # recipient_metadata: merged over metadata for its recipient
            str(m.get("rcpt", "")).lower(): dict(m.get("values") or {})
            for m in message.get("recipient_metadata") or []
            if isinstance(m, dict)
        }
        results = []
        with self._lock:
            for r in to:
                email = str((r or {}).get("email", "")).lower()
                _id = secrets.token_hex(16)
                if "@" not in email:
                    results.append(
                        {"email": email, "status": "invalid", "_id": _id, "reject_reason": None}
                    )
                    continue
                reason = self._rejects.get(email)
                status = "rejected" if reason else "sent"
                results.append(
                    {"email": email, "status": status, "_id": _id, "reject_reason": reason}
                )
                self._sent.append(
                    {
                        "_id": _id,
                        "to": email,
                        "status": status,
                        "template_name": template,
                        "metadata": {
                            **(message.get("metadata") or {}),
                            **per_recipient.get(email, {}),
                        },
                        "merge_vars": copy.deepcopy(message.get("merge_vars")),
                        "global_merge_vars": copy.deepcopy(message.get("global_merge_vars")),
                    }
                )
        return Response(200, results)
