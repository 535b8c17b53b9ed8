"""SendGridEmulator: SendGrid v3 as one host, over plain HTTP, per
/work/shared/api-specs/sendgrid.md.

- Read side: Email Activity (``GET /v3/messages``; 403 unless ``activity_enabled``, a paid
  add-on), global and category stats, the bounce and unsubscribe lists.
- Write side: ``POST /v3/mail/send`` (dynamic templates, ``custom_args`` strings only, 202 with
  an empty body and ``X-Message-Id``; a suppressed recipient is accepted and dropped, as SendGrid
  does) and unsubscribes (``POST /v3/asm/suppressions/global``,
  ``GET|POST /v3/asm/groups/{id}/suppressions``). One suppression store: an address
  unsubscribed by ``unsubscribe()``, the POST endpoints or a seeded message is in
  ``GET /v3/suppression/unsubscribes`` and dropped by mail send.
- ``Authorization: Bearer <api key>``; 401 ``authorization required`` otherwise (Mail Send with
  a wrong key: ``The provided authorization grant is invalid, expired, or revoked``).
- The key's scopes (``scopes=``, or ``emu.scopes`` changed by a test): ``GET /v3/scopes``
  answers ``{"scopes": [...]}`` (any valid key may ask), and an endpoint whose scope the key
  lacks answers 403 ``access forbidden``.
- Limits per endpoint in fixed windows (mail send has its own, higher limit): every response
  carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (epoch seconds); beyond the
  limit 429 ``too many requests`` with those headers and no ``Retry-After``.
- Errors are SendGrid's ``{"errors": [{"message", "field", "help"}]}`` bodies, Mail Send's
  400s with their ``help`` links (:mod:`sandbox.sendgrid_mail`); faults
  (``emu.faults.add(...)``) answer with the same bodies.
- The webhook side plays SendGrid: ``post_events(url)`` signs each batch with the emulator's
  P-256 key (``webhook_public_key`` is the verification key, base64 DER) and POSTs it.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.email_profiles import recipients
from sandbox.faults import Fault
from sandbox.sendgrid_data import (
    RateWindows,
    activity_summary,
    build_message,
    filter_activity,
    stats_body,
)
from sandbox.sendgrid_mail import MAIL_SEND, errors, mail_problem, unauthorized
from sandbox.server import EmulatorServer, route
from sandbox.synthetic import SyntheticOrg
from sandbox.wire import Request, Response

__all__ = ["SendGridEmulator"]

#: the scope each emulated endpoint needs (``GET /v3/scopes`` needs none)
ENDPOINT_SCOPES = {
    ("POST", MAIL_SEND): "mail.send",
    ("GET", "/v3/messages"): "email_activity.read",
    ("GET", "/v3/suppression/bounces"): "suppression.bounces.read",
    ("GET", "/v3/suppression/unsubscribes"): "suppression.unsubscribes.read",
    ("GET", "/v3/stats"): "stats.read",
    ("GET", "/v3/categories/stats"): "categories.stats.read",
    ("GET", "/v3/asm/groups/suppressions"): "asm.groups.suppressions.read",
    ("POST", "/v3/asm/groups/suppressions"): "asm.groups.suppressions.create",
    ("POST", "/v3/asm/suppressions/global"): "asm.suppressions.global.create",
}
#: a full-access key's scopes, as far as the emulated endpoints go
FULL_ACCESS = tuple(sorted(set(ENDPOINT_SCOPES.values())))


class SendGridEmulator(EmulatorServer):
    query_join = "\n"  # categories=a&categories=b: handlers split the values on newlines

    def __init__(
        self,
        *,
        api_key: str = "SG.sandbox-key.healthscore",
        requests_per_window: int = 600,
        window: float = 60.0,
        mail_sends_per_window: int = 100_000,
        activity_enabled: bool = True,
        verified_senders: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        scopes: tuple[str, ...] = FULL_ACCESS,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.scopes: set[str] = set(scopes)  # the key's; a test may take one away
        self.activity_enabled = activity_enabled
        self.verified_senders = {s.lower() for s in verified_senders}  # empty: any sender
        self.clock = clock
        self.configure_limits(requests_per_window, window, mail_sends_per_window)
        self._lock = threading.RLock()
        self.messages: dict[str, dict[str, Any]] = {}  # msg_id → message with its events
        self.raw_activity: list[Any] = []  # served as they are (malformed-record tests)
        self.bounces: list[Any] = []
        self.unsubscribes: list[Any] = []  # global; raw rows are served as they are
        self.groups: dict[int, set[str]] = {}  # ASM group id → unsubscribed addresses
        self._sent: list[dict[str, Any]] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.delivered_batches = 0

    def configure_limits(
        self, requests_per_window: int, window: float, mail_sends_per_window: int | None = None
    ) -> None:
        """New windows (all full again); mail send keeps its limit unless given."""
        mail = mail_sends_per_window or self.limits.limit_for(MAIL_SEND)
        self.limits = RateWindows(requests_per_window, window, self.clock, {MAIL_SEND: mail})

    # ------------------------------------------------------------------ mail send side
    @property
    def sent(self) -> list[dict[str, Any]]:
        """One entry per recipient of an accepted mail send: message id, to, template, data,
        custom_args and ``dropped`` (the reason, when SendGrid drops it)."""
        with self._lock:
            return copy.deepcopy(self._sent)

    def unsubscribe(self, email: str, *, group: int | None = None) -> None:
        """Unsubscribe ``email`` globally, or from ASM ``group``."""
        email = email.lower()
        with self._lock:
            if group is not None:
                self.groups.setdefault(group, set()).add(email)
            elif email not in _emails(self.unsubscribes):
                self.unsubscribes.append({"created": int(self.clock()), "email": email})

    def _dropped(self, email: str, group: Any) -> str | None:
        if email in _emails(self.bounces):
            return "Bounced Address"
        if email in _emails(self.unsubscribes) or (
            isinstance(group, int) and email in self.groups.get(group, set())
        ):
            return "Unsubscribed Address"
        return None

    # ------------------------------------------------------------------ data
    def add_message(
        self,
        to_email: str,
        sent_at: datetime,
        *,
        opened: bool = False,
        clicked: bool = False,
        bounced: bool = False,
        unsubscribed: bool = False,
        categories: tuple[str, ...] = ("healthscore",),
        msg_id: str | None = None,
        machine_open: bool = False,
    ) -> str:
        """One message and its events (processed, delivered or bounce, open, click, …)."""
        # like SendGrid's: the X-Message-Id, the filter host, a per-recipient suffix (often
        # longer than 64 characters)
        msg_id = msg_id or (
            secrets.token_urlsafe(16)[:22]
            + ".filterdrecv-5645d9c87f-78vbf-1-"
            + secrets.token_hex(8).upper()
            + "-"
            + str(len(self.messages))
            + ".0"
        )
        message = build_message(
            msg_id,
            to_email,
            sent_at,
            opened=opened,
            clicked=clicked,
            bounced=bounced,
            unsubscribed=unsubscribed,
            categories=categories,
            machine_open=machine_open,
        )
        t = int(sent_at.timestamp())
        with self._lock:
            self.messages[msg_id] = message
            if bounced:
                self.bounces.append(
                    {
                        "created": t + 5,
                        "email": to_email.lower(),
                        "reason": "550 5.1.1 unknown user",
                        "status": "5.1.1",
                    }
                )
            if unsubscribed:
                self.unsubscribes.append({"created": t + 720, "email": to_email.lower()})
        return msg_id

    def add_event(self, msg_id: str, kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
        """A later event on an existing message (e.g. an open a week after sending)."""
        with self._lock:
            message = self.messages[msg_id]
            event = {
                "email": message["to_email"],
                "timestamp": int(at.timestamp()),
                "event": kind,
                "sg_message_id": msg_id,
                "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode(),
                "category": message["categories"],
                **extra,
            }
            message["events"].append(event)
            return event

    def seed(self, org: SyntheticOrg, now: datetime, *, seed: int = 7, days: int = 100) -> int:
        """Messages to the org's contacts over the last ``days`` days (plus free-mail and
        unknown-domain readers), engaged per archetype; returns the number of messages."""
        rng = random.Random(f"sendgrid:{seed}")
        count = 0
        for person in recipients(org, rng):
            p = person.engagement
            for _ in range(rng.randint(3, 7)):
                sent = now - timedelta(days=rng.uniform(0.5, days))
                bounced = rng.random() < p.bounce * 4
                opened = not bounced and rng.random() < p.open
                clicked = opened and rng.random() < p.click
                unsub = not bounced and rng.random() < p.unsubscribe * 4
                cats = ("healthscore", rng.choice(("onboarding-nudge", "newsletter", "renewal")))
                self.add_message(
                    person.email,
                    sent,
                    opened=opened,
                    clicked=clicked,
                    bounced=bounced,
                    unsubscribed=unsub,
                    categories=cats,
                    machine_open=opened and rng.random() < 0.1,
                )
                count += 1
        return count

    def events(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every event (after ``since``), oldest first: what the webhook would POST."""
        cut = since.timestamp() if since else -math.inf
        with self._lock:
            out = [e for m in self.messages.values() for e in m["events"] if e["timestamp"] > cut]
        return sorted(out, key=lambda e: e["timestamp"])

    # ------------------------------------------------------------------ webhook side
    @property
    def webhook_public_key(self) -> str:
        """The Signed Event Webhook verification key, as SendGrid shows it (base64 DER)."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
        }

    def post_events(
        self, url: str, events: list[dict[str, Any]] | None = None, *, batch_size: int = 500
    ) -> list[httpx.Response]:
        """POST events to ``url`` in signed batches, as SendGrid does; the responses."""
        events = self.events() if events is None else events
        out = []
        with httpx.Client(timeout=30) as http:
            for start in range(0, len(events), batch_size):
                body = json.dumps(events[start : start + batch_size]).encode()
                out.append(http.post(url, content=body, headers=self.sign(body)))
                self.delivered_batches += 1
        return out

    # ------------------------------------------------------------------ hooks
    def before_route(self, req: Request) -> Response | None:
        auth = req.header("Authorization") or ""
        if not secrets.compare_digest(auth.encode(), f"Bearer {self.api_key}".encode()):
            scheme, _, key = auth.partition(" ")
            return unauthorized(req.path, key_sent=scheme.lower() == "bearer" and bool(key.strip()))
        needed = ENDPOINT_SCOPES.get((req.method, re.sub(r"/\d+/", "/", req.path.rstrip("/"))))
        if needed is not None and needed not in self.scopes:
            return errors(403, "access forbidden", bare=True)
        admitted, headers = self.limits.take(req.path)  # per endpoint
        if not admitted:
            return errors(429, "too many requests", headers=headers, bare=True)
        req.headers["x-sandbox-limit"] = json.dumps(headers)
        return None

    def finalize(self, req: Request, response: Response) -> Response:
        held = req.headers.pop("x-sandbox-limit", None)
        if held and "X-RateLimit-Limit" not in response.headers:
            return response.with_headers(json.loads(held))
        return response

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            headers = self.limits.headers(req.path, 0, self.clock() + self.limits.window)
            return errors(429, "too many requests", headers=headers, bare=True)
        if fault.kind == "expired_session":  # the key was revoked meanwhile
            return unauthorized(req.path, key_sent=True)
        return errors(500, "internal server error")

    def not_found(self, req: Request) -> Response:
        return errors(404, "resource not found")

    def method_not_allowed(self, req: Request, allowed: list[str]) -> Response:
        return errors(405, "method not allowed")

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return errors(500, "internal server error")

    # ------------------------------------------------------------------ routes
    @staticmethod
    def _int(req: Request, name: str, default: int, lo: int, hi: int) -> int | Response:
        raw = req.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            return errors(400, f"{name} must be an integer between {lo} and {hi}", name)
        return int(raw)

    @route("GET", r"/v3/messages")
    def activity(self, req: Request) -> Response:
        if not self.activity_enabled:
            return errors(403, "access forbidden")
        limit = self._int(req, "limit", 10, 1, 1000)
        if isinstance(limit, Response):
            return limit
        with self._lock:
            found = [activity_summary(m) for m in self.messages.values()]
            found += list(self.raw_activity)
        try:
            out = filter_activity(found, req.query.get("query", ""))
        except ValueError as exc:
            return errors(400, str(exc), "query")
        return Response(200, {"messages": out[:limit]})

    def _suppressions(self, req: Request, rows: list[Any]) -> Response:
        limit = self._int(req, "limit", 500, 1, 500)
        offset = self._int(req, "offset", 0, 0, 10**9)
        start = self._int(req, "start_time", 0, 0, 10**11)
        end = self._int(req, "end_time", 10**11, 0, 10**11)
        for value in (limit, offset, start, end):
            if isinstance(value, Response):
                return value
        with self._lock:
            picked = [
                r
                for r in rows
                if not isinstance(r, dict)
                or not isinstance(r.get("created"), int)
                or start <= r["created"] <= end
            ]  # type: ignore[operator]
        picked.sort(
            key=lambda r: (
                -r["created"] if isinstance(r, dict) and isinstance(r.get("created"), int) else 0
            )
        )
        return Response(200, picked[offset : offset + limit])  # type: ignore[operator]

    @route("GET", r"/v3/suppression/bounces")
    def list_bounces(self, req: Request) -> Response:
        return self._suppressions(req, self.bounces)

    @route("GET", r"/v3/suppression/unsubscribes")
    def list_unsubscribes(self, req: Request) -> Response:
        return self._suppressions(req, self.unsubscribes)

    def _stats(self, req: Request, categories: list[str] | None) -> Response:
        try:
            start = date.fromisoformat(req.query["start_date"])
            end = date.fromisoformat(
                req.query.get("end_date")
                or datetime.fromtimestamp(self.clock(), UTC).date().isoformat()
            )
        except (KeyError, ValueError):
            return errors(400, "start_date is required (YYYY-MM-DD)", "start_date")
        by = req.query.get("aggregated_by", "day")
        if by not in ("day", "week", "month"):
            return errors(400, "aggregated_by must be day, week or month", "aggregated_by")
        with self._lock:
            messages = list(self.messages.values())
        return Response(200, stats_body(messages, start, end, by, categories))

    @route("GET", r"/v3/asm/groups/(?P<group>\d+)/suppressions")
    def list_group_suppressions(self, req: Request) -> Response:
        with self._lock:
            return Response(200, sorted(self.groups.get(int(req.path_params["group"]), set())))

    @route("POST", r"/v3/asm/suppressions/global")
    @route("POST", r"/v3/asm/groups/(?P<group>\d+)/suppressions")
    def add_suppressions(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            body = None
        emails = body.get("recipient_emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            return errors(400, "recipient_emails is required", "recipient_emails")
        group = req.path_params.get("group")
        for email in emails:
            self.unsubscribe(email, group=None if group is None else int(group))
        return Response(201, {"recipient_emails": emails})

    @route("POST", MAIL_SEND)
    def mail_send(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            body = None
        problem = mail_problem(body, self.verified_senders)
        if problem is not None:
            return problem
        assert isinstance(body, dict)
        group = (body.get("asm") or {}).get("group_id")
        message_id = secrets.token_urlsafe(16)[:22]
        with self._lock:
            for p in body["personalizations"]:
                for r in p["to"]:
                    email = str(r["email"]).lower()
                    self._sent.append(
                        {
                            "message_id": message_id,
                            "to": email,
                            "template_id": body.get("template_id"),
                            "dynamic_template_data": copy.deepcopy(p.get("dynamic_template_data")),
                            "custom_args": dict(p.get("custom_args") or {}),
                            "categories": list(body.get("categories") or []),
                            "asm_group": group,
                            "dropped": self._dropped(email, group),
                        }
                    )
        return Response(202, None, {"X-Message-Id": message_id})

    @route("GET", r"/v3/scopes")
    def list_scopes(self, req: Request) -> Response:
        """The scopes of the key that asks (any valid key may)."""
        return Response(200, {"scopes": sorted(self.scopes)})

    @route("GET", r"/v3/stats")
    def global_stats(self, req: Request) -> Response:
        return self._stats(req, None)

    @route("GET", r"/v3/categories/stats")
    def category_stats(self, req: Request) -> Response:
        raw = req.query.get("categories")
        if not raw:
            return errors(400, "categories is required", "categories")
        names = raw.split("\n")
        if len(names) > 10:
            return errors(400, "too many categories (max 10)", "categories")
        return self._stats(req, names)


def _emails(rows: list[Any]) -> set[str]:
    return {str(r.get("email", "")).lower() for r in rows if isinstance(r, dict)}
