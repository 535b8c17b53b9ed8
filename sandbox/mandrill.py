"""Email *sending* emulators: SendGrid v3 mail send + suppressions, and Mailchimp Transactional.

Both run on :class:`~sandbox.server.EmulatorServer` (request log, fault plan) and speak the
vendors' wire formats from /work/shared/api-specs/sendgrid.md and mailchimp.md:

- :class:`SendGridSendEmulator`: ``POST /v3/mail/send`` (dynamic templates, ``custom_args``
  strings only, 202 with an empty body and ``X-Message-Id``; suppressed recipients are accepted
  and dropped, as SendGrid does), the global and group unsubscribe lists
  (``GET /v3/suppression/unsubscribes`` paged by ``limit``/``offset``,
  ``GET|POST /v3/asm/groups/{id}/suppressions``, ``POST /v3/asm/suppressions/global``), Bearer
  auth, ``X-RateLimit-*`` headers on every answer and 429 ``too many requests`` with no
  ``Retry-After``.
- :class:`MandrillEmulator`: ``POST /api/1.3|1.4/messages/send-template[.json]`` with the key in
  the body, one result per recipient (``rejected`` / ``unsub`` for a rejection-listed address),
  errors as ``{"status": "error", "code", "name", "message"}``.

(The read side — stats, activity — is another module's job: ``sandbox/sendgrid.py`` and
``sandbox/mailchimp.py``.)
"""

from __future__ import annotations

import copy
import math
import secrets
import threading
import time
from typing import Any

from sandbox.faults import Fault
from sandbox.ratelimit import KeyedTokenBucket
from sandbox.server import EmulatorServer, route
from sandbox.wire import Request, Response

_SG_TOO_MANY = {"errors": [{"field": None, "message": "too many requests"}]}


def _sg_error(status: int, message: str, field: str | None = None) -> Response:
    return Response(status, {"errors": [{"message": message, "field": field, "help": None}]})


class SendGridSendEmulator(EmulatorServer):
    """SendGrid mail send and unsubscribe lists for an httpx client at :attr:`base_url`."""

    def __init__(self, *, api_key: str = "SG.sandbox-key", sends_per_second: float = 1000.0,
                 burst: int = 1000, verified_senders: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        self.verified_senders = {s.lower() for s in verified_senders}
        self._lock = threading.RLock()
        self._sent: list[dict[str, Any]] = []
        self._global: dict[str, int] = {}
        self._groups: dict[int, set[str]] = {}
        self._buckets = KeyedTokenBucket(sends_per_second, burst)
        self._limit = burst

    # ------------------------------------------------------------------ test helpers
    @property
    def sent(self) -> list[dict[str, Any]]:
        """One entry per accepted personalization: message id, to, template, data, custom_args
        and ``dropped`` (the reason, when SendGrid would drop it)."""
        with self._lock:
            return copy.deepcopy(self._sent)

    def unsubscribe(self, email: str, *, group: int | None = None) -> None:
        with self._lock:
            if group is None:
                self._global[email.lower()] = int(time.time())
            else:
                self._groups.setdefault(group, set()).add(email.lower())

    def set_rate(self, sends_per_second: float, burst: int) -> None:
        self._buckets.configure(sends_per_second, burst)
        self._limit = burst

    # ------------------------------------------------------------------ hooks
    def before_route(self, req: Request) -> Response | None:
        header = req.header("Authorization") or ""
        if not header.startswith("Bearer ") or not secrets.compare_digest(
                header.removeprefix("Bearer ").strip().encode(), self.api_key.encode()):
            return Response(401, {"errors": [{"field": None,
                                              "message": "authorization required"}]})
        wait = self._buckets.take(req.path.split("/")[2] if req.path.count("/") > 1 else "")
        if wait:
            return Response(429, _SG_TOO_MANY, self._limit_headers(0, wait))
        return None

    def _limit_headers(self, remaining: int, reset_in: int = 1) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self._limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(math.ceil(time.time()) + reset_in)}

    def finalize(self, req: Request, response: Response) -> Response:
        if "X-RateLimit-Limit" in response.headers:
            return response
        return response.with_headers(self._limit_headers(max(0, self._limit - 1)))

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            return Response(429, _SG_TOO_MANY, self._limit_headers(0))
        if fault.kind == "expired_session":
            return Response(401, {"errors": [{"field": None,
                                              "message": "authorization required"}]})
        return Response(500, {"errors": [{"field": None, "message": "internal error"}]})

    def not_found(self, req: Request) -> Response:
        return Response(404, {"errors": [{"field": None, "message": "resource not found"}]})

    # ------------------------------------------------------------------ mail send
    @route("POST", r"/v3/mail/send")
    def _send(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return _sg_error(400, "Bad Request", None)
        if not isinstance(body, dict):
            return _sg_error(400, "Bad Request", None)
        sender = body.get("from")
        if not isinstance(sender, dict) or not sender.get("email"):
            return _sg_error(400, "The from object must be provided for every email send. It "
                                  "is an object that requires the email parameter, but may "
                                  "also contain a name parameter.", "from.email")
        if self.verified_senders and str(sender["email"]).lower() not in self.verified_senders:
            return _sg_error(403, "The from address does not match a verified Sender "
                                  "Identity.", "from")
        template = body.get("template_id")
        if template is None and not (body.get("subject") and body.get("content")):
            return _sg_error(400, "The subject is required. You can get around this "
                                  "requirement if you use a template with a subject defined "
                                  "or if every personalization has a subject defined.",
                             "subject")
        people = body.get("personalizations")
        if not isinstance(people, list) or not people:
            return _sg_error(400, "The personalizations field is required and must have at "
                                  "least one personalization.", "personalizations")
        if len(people) > 1000:
            return _sg_error(400, "The personalizations field is limited to 1000 "
                                  "personalizations per API request.", "personalizations")
        for i, p in enumerate(people):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                return _sg_error(400, "The to array is required for all personalization "
                                      "objects, and must have at least one email object with "
                                      "a valid email address.", f"personalizations.{i}.to")
            for j, r in enumerate(to):
                if not isinstance(r, dict) or "@" not in str(r.get("email", "")):
                    return _sg_error(400, "Does not contain a valid address.",
                                     f"personalizations.{i}.to.{j}.email")
            for k, v in (p.get("custom_args") or {}).items():
                if not isinstance(v, str):
                    return _sg_error(400, f"Invalid type. Expected: string, given: "
                                          f"{type(v).__name__}.",
                                     f"personalizations.{i}.custom_args.{k}")
        group = (body.get("asm") or {}).get("group_id")
        message_id = secrets.token_urlsafe(16)[:22]
        with self._lock:
            for p in people:
                for r in p["to"]:
                    email = str(r["email"]).lower()
                    dropped = "Unsubscribed Address" if email in self._global or (
                        group is not None and email in self._groups.get(int(group), set())
                    ) else None
                    self._sent.append({
                        "message_id": message_id, "to": email, "template_id": template,
                        "dynamic_template_data": copy.deepcopy(p.get("dynamic_template_data")),
                        "custom_args": dict(p.get("custom_args") or {}),
                        "categories": list(body.get("categories") or []), "asm_group": group,
                        "dropped": dropped})
        return Response(202, None, {"X-Message-Id": message_id})

    # ------------------------------------------------------------------ suppressions
    @route("GET", r"/v3/suppression/unsubscribes")
    def _unsubscribes(self, req: Request) -> Response:
        try:
            limit = int(req.query.get("limit") or 500)
            offset = int(req.query.get("offset") or 0)
            start = int(req.query.get("start_time") or 0)
            end = int(req.query.get("end_time") or 2**40)
        except ValueError:
            return _sg_error(400, "invalid query parameter", None)
        with self._lock:
            rows = sorted(((c, e) for e, c in self._global.items() if start <= c <= end),
                          key=lambda r: (r[0], r[1]))
        return Response(200, [{"created": c, "email": e}
                              for c, e in rows[offset:offset + max(1, min(limit, 500))]])

    @route("GET", r"/v3/asm/groups/(?P<group>\d+)/suppressions")
    def _group_list(self, req: Request) -> Response:
        with self._lock:
            return Response(200, sorted(self._groups.get(int(req.path_params["group"]), set())))

    @route("POST", r"/v3/asm/groups/(?P<group>\d+)/suppressions")
    def _group_add(self, req: Request) -> Response:
        emails = self._recipients(req)
        if emails is None:
            return _sg_error(400, "recipient_emails is required", "recipient_emails")
        for e in emails:
            self.unsubscribe(e, group=int(req.path_params["group"]))
        return Response(201, {"recipient_emails": emails})

    @route("POST", r"/v3/asm/suppressions/global")
    def _global_add(self, req: Request) -> Response:
        emails = self._recipients(req)
        if emails is None:
            return _sg_error(400, "recipient_emails is required", "recipient_emails")
        for e in emails:
            self.unsubscribe(e)
        return Response(201, {"recipient_emails": emails})

    @staticmethod
    def _recipients(req: Request) -> list[str] | None:
        try:
            body = req.json()
        except ValueError:
            return None
        emails = body.get("recipient_emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            return None
        return emails


def _md_error(status: int, code: int, name: str, message: str) -> Response:
    return Response(status, {"status": "error", "code": code, "name": name, "message": message})


class MandrillEmulator(EmulatorServer):
    """Mailchimp Transactional ``messages/send-template``; base URL ends ``/api/1.3``."""

    redact_fields = EmulatorServer.redact_fields | {"key"}

    def __init__(self, *, api_key: str = "md-sandbox-key", templates: tuple[str, ...] = (),
                 sends_per_second: float = 1000.0, burst: int = 1000) -> None:
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
            return _md_error(429, 429, "RequestLimitExceeded",
                             "Too Many Requests attempted recently")
        if fault.kind == "expired_session":
            return _md_error(401, 401, "Invalid_Key", "Invalid API key")
        return _md_error(500, -1, "GeneralError", "An unexpected error occurred")

    def not_found(self, req: Request) -> Response:
        return _md_error(404, -1, "GeneralError", f"Unknown API call {req.path}")

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return _md_error(500, -1, "GeneralError", "An unexpected error occurred")

    @route("POST", r"/api/1\.[34]/messages/send-template(\.json)?")
    def _send_template(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return _md_error(500, -2, "ValidationError", "You must specify a key value")
        if not isinstance(body, dict) or not isinstance(body.get("key"), str):
            return _md_error(500, -2, "ValidationError", "You must specify a key value")
        if not secrets.compare_digest(body["key"].encode(), self.api_key.encode()):
            return _md_error(401, 401, "Invalid_Key", "Invalid API key")
        if self._buckets.take("send"):
            return _md_error(429, 429, "RequestLimitExceeded",
                             "Too Many Requests attempted recently")
        template = body.get("template_name")
        if not isinstance(template, str) or not template:
            return _md_error(500, -2, "ValidationError",
                             "Validation error: {\"template_name\":\"Sorry, this field can't "
                             "be left blank.\"}")
        if "template_content" not in body or not isinstance(body["template_content"], list):
            return _md_error(500, -2, "ValidationError",
                             "Validation error: {\"template_content\":\"Please enter an "
                             "array\"}")
        if self.templates and template not in self.templates:
            return _md_error(500, 5, "Unknown_Template", f'No such template "{template}"')
        message = body.get("message")
        to = message.get("to") if isinstance(message, dict) else None
        if not isinstance(to, list) or not to:
            return _md_error(500, -2, "ValidationError",
                             "Validation error: {\"message\":{\"to\":\"Please enter an "
                             "array\"}}")
        results = []
        with self._lock:
            for r in to:
                email = str((r or {}).get("email", "")).lower()
                _id = secrets.token_hex(16)
                if "@" not in email:
                    results.append({"email": email, "status": "invalid", "_id": _id,
                                    "reject_reason": None})
                    continue
                reason = self._rejects.get(email)
                status = "rejected" if reason else "sent"
                results.append({"email": email, "status": status, "_id": _id,
                                "reject_reason": reason})
                self._sent.append({"_id": _id, "to": email, "status": status,
                                   "template_name": template,
                                   "metadata": dict(message.get("metadata") or {}),
                                   "merge_vars": copy.deepcopy(message.get("merge_vars")),
                                   "global_merge_vars": copy.deepcopy(
                                       message.get("global_merge_vars"))})
        return Response(200, results)
