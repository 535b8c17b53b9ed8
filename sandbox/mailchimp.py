"""MailchimpEmulator: Mailchimp Marketing API 3.0 reports over plain HTTP.
See /work/shared/api-specs/mailchimp.md.

- ``/3.0/ping``, ``/3.0/reports`` (``since_send_time``), ``/3.0/reports/{id}``,
  ``/3.0/reports/{id}/email-activity`` (``since``) and ``/3.0/reports/{id}/unsubscribed``;
  ``count`` (default 10, at most 1000) / ``offset`` paging with ``total_items``.
- Basic auth with the API key as password; the key must end in this emulator's data centre
  (``-us6`` by default), else 401 ``API Key Invalid``.
- The throttle is concurrency: more than ``max_connections`` requests of one key in flight →
  429 problem+json, no rate-limit headers, no Retry-After. ``response_delay`` keeps each
  request in flight that long (to make the limit reachable).
- Faults answer with Mailchimp's problem+json bodies.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.email_profiles import recipients
from sandbox.faults import Fault
from sandbox.server import EmulatorServer, route
from sandbox.synthetic import SyntheticOrg
from sandbox.wire import Request, Response

__all__ = ["MailchimpEmulator", "subscriber_hash"]

PROBLEM = "application/problem+json; charset=utf-8"
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()  # Mailchimp's member id


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response(
        status,
        {
            "type": ERRORS_DOC,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": str(uuid.uuid4()),
            **extra,
        },
        {"Content-Type": PROBLEM},
    )


class MailchimpEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        api_key: str = "0123456789abcdef0123456789abcdef-us6",
        max_connections: int = 10,
        response_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.dc = api_key.rsplit("-", 1)[1]
        self.max_connections = max_connections
        self.response_delay = response_delay
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self.peak_in_flight = 0
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.activity: dict[str, dict[str, dict[str, Any]]] = {}  # campaign → hash → member
        self.unsubscribed: dict[str, list[dict[str, Any]]] = {}
        self.list_id = "57afe96172"

    @property
    def base_url(self) -> str:
        """What MAILCHIMP_BASE_URL should be (the API root, ``…/3.0``)."""
        return f"{self.origin}/3.0"

    # ------------------------------------------------------------------ data
    def add_campaign(
        self, send_time: datetime, title: str = "Customer update", campaign_id: str | None = None
    ) -> str:
        cid = campaign_id or uuid.uuid4().hex[:10]
        with self._lock:
            self.campaigns[cid] = {
                "id": cid,
                "campaign_title": title,
                "type": "regular",
                "list_id": self.list_id,
                "list_is_active": True,
                "list_name": "Customers",
                "subject_line": title,
                "send_time": _iso(send_time),
            }
            self.activity[cid] = {}
            self.unsubscribed[cid] = []
        return cid

    def add_member(self, campaign_id: str, email: str, actions: list[dict[str, Any]] = ()) -> str:
        """A member the campaign was sent to, with its activity (open/click/bounce)."""
        h = subscriber_hash(email)
        with self._lock:
            self.activity[campaign_id][h] = {
                "campaign_id": campaign_id,
                "list_id": self.list_id,
                "list_is_active": True,
                "email_id": h,
                "email_address": email.lower(),
                "activity": list(actions),
            }
        return h

    def add_raw_member(self, campaign_id: str, member: Any, key: str | None = None) -> None:
        """A member served exactly as given (malformed-record tests)."""
        with self._lock:
            self.activity[campaign_id][key or uuid.uuid4().hex] = member

    def add_action(
        self, campaign_id: str, email: str, action: str, at: datetime, **extra: Any
    ) -> None:
        with self._lock:
            member = self.activity[campaign_id][subscriber_hash(email)]
            member["activity"].append({"action": action, "timestamp": _iso(at), **extra})

    def unsubscribe(self, campaign_id: str, email: str, at: datetime) -> None:
        with self._lock:
            self.unsubscribed[campaign_id].append(
                {
                    "email_id": subscriber_hash(email),
                    "email_address": email.lower(),
                    "timestamp": _iso(at),
                    "reason": "N/A (Unsubscribed from campaign)",
                    "campaign_id": campaign_id,
                    "list_id": self.list_id,
                    "list_is_active": True,
                }
            )

    def seed(
        self,
        org: SyntheticOrg,
        now: datetime,
        *,
        seed: int = 11,
        campaigns: int = 8,
        every: timedelta = timedelta(days=14),
    ) -> list[str]:
        """A campaign every ``every`` (the oldest beyond 90 days) to every recipient,
        engaged per archetype; returns the campaign ids."""
        rng = random.Random(f"mailchimp:{seed}")
        people = recipients(org, rng)
        ids = []
        for n in range(campaigns):
            sent = now - every * (campaigns - n) + timedelta(hours=3)
            cid = self.add_campaign(sent, f"Customer update #{n + 1}")
            ids.append(cid)
            for person in people:
                p = person.engagement
                actions: list[dict[str, Any]] = []
                if rng.random() < p.bounce * 3:
                    actions.append(
                        {
                            "action": "bounce",
                            "type": rng.choice(("hard", "soft")),
                            "timestamp": _iso(sent + timedelta(seconds=5)),
                        }
                    )
                elif rng.random() < p.open:
                    opened = sent + timedelta(minutes=rng.randint(5, 4000))
                    actions.append(
                        {"action": "open", "timestamp": _iso(opened), "ip": "203.0.113.7"}
                    )
                    if rng.random() < p.click:
                        actions.append(
                            {
                                "action": "click",
                                "timestamp": _iso(opened + timedelta(minutes=1)),
                                "url": "https://app.vendor.example/dash",
                                "ip": "203.0.113.7",
                            }
                        )
                self.add_member(cid, person.email, actions)
                bounced = bool(actions) and actions[0]["action"] == "bounce"
                if not bounced and rng.random() < p.unsubscribe * 3:
                    self.unsubscribe(cid, person.email, sent + timedelta(hours=2))
        return ids

    # ------------------------------------------------------------------ throttle and auth
    def _key_of(self, req: Request) -> str | None:
        header = req.header("Authorization") or ""
        if header.startswith("Basic "):
            try:
                _, _, key = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            return key
        if header.startswith("Bearer "):
            return header[7:]
        return None

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        key = self._key_of(req) or ""
        with self._lock:
            held = self._in_flight.get(key, 0)
            if held >= self.max_connections:
                return problem(
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of "
                    f"{self.max_connections} simultaneous connections.",
                ), None
            self._in_flight[key] = held + 1
            self.peak_in_flight = max(self.peak_in_flight, held + 1)
        try:
            if self.response_delay:
                time.sleep(self.response_delay)
            return super().dispatch(req)
        finally:
            with self._lock:
                self._in_flight[key] -= 1

    def before_route(self, req: Request) -> Response | None:
        key = self._key_of(req)
        if key is None:
            return problem(401, "API Key Missing", "Your request did not include an API key.")
        if key != self.api_key:
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        return None

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            return problem(
                429,
                "Too Many Requests",
                f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
            )
        if fault.kind == "expired_session":
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        return problem(
            500,
            "Internal Server Error",
            "An unexpected internal error has "
            "occurred. Please contact Support for more information.",
        )

    def not_found(self, req: Request) -> Response:
        return problem(404, "Resource Not Found", "The requested resource could not be found.")

    def method_not_allowed(self, req: Request, allowed: list[str]) -> Response:
        return problem(
            405,
            "Method Not Allowed",
            "The requested method and resource are not "
            "compatible. See the Allow header for this resource's available methods.",
        )

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return problem(
            500,
            "Internal Server Error",
            "An unexpected internal error has "
            "occurred. Please contact Support for more information.",
        )

    # ------------------------------------------------------------------ routes
    @staticmethod
    def _page(req: Request, items: list[Any], key: str, **extra: Any) -> Response:
        try:
            count = int(req.query.get("count", "10"))
            offset = int(req.query.get("offset", "0"))
        except ValueError:
            return problem(400, "Invalid Resource", "count and offset must be integers")
        if not 1 <= count <= 1000 or offset < 0:
            return problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated.",
                errors=[{"field": "count", "message": "count must be between 1 and 1000"}],
            )
        return Response(
            200,
            {key: items[offset : offset + count], **extra, "total_items": len(items), "_links": []},
        )

    @route("GET", r"/3\.0/ping/?")
    def ping(self, req: Request) -> Response:
        return Response(200, {"health_status": "Everything's Chimpy!"})

    def _report(self, cid: str) -> dict[str, Any]:
        members = [m for m in self.activity[cid].values() if isinstance(m, dict)]

        def has(m: dict[str, Any], action: str) -> bool:
            return any(
                isinstance(a, dict) and a.get("action") == action for a in m.get("activity") or []
            )

        sent = len(members)
        bounces = [m for m in members if has(m, "bounce")]
        opens = sum(has(m, "open") for m in members)
        clicks = sum(has(m, "click") for m in members)
        delivered = max(1, sent - len(bounces))
        return {
            **self.campaigns[cid],
            "emails_sent": sent,
            "abuse_reports": 0,
            "unsubscribed": len(self.unsubscribed[cid]),
            "bounces": {
                "hard_bounces": sum(
                    1 for m in bounces if any(a.get("type") == "hard" for a in m["activity"])
                ),
                "soft_bounces": sum(
                    1 for m in bounces if all(a.get("type") != "hard" for a in m["activity"])
                ),
                "syntax_errors": 0,
            },
            "opens": {
                "opens_total": opens,
                "unique_opens": opens,
                "open_rate": round(opens / delivered, 4),
            },
            "clicks": {
                "clicks_total": clicks,
                "unique_clicks": clicks,
                "unique_subscriber_clicks": clicks,
                "click_rate": round(clicks / delivered, 4),
            },
            "_links": [],
        }

    @route("GET", r"/3\.0/reports/?")
    def reports(self, req: Request) -> Response:
        try:
            since = (
                _when(req.query["since_send_time"]) if req.query.get("since_send_time") else None
            )
            before = (
                _when(req.query["before_send_time"]) if req.query.get("before_send_time") else None
            )
        except ValueError:
            return problem(400, "Invalid Resource", "since_send_time is not an ISO-8601 time")
        with self._lock:
            picked = [
                self._report(c)
                for c, camp in self.campaigns.items()
                if (since is None or _when(camp["send_time"]) >= since)
                and (before is None or _when(camp["send_time"]) < before)
            ]
        picked.sort(key=lambda r: r["send_time"])
        return self._page(req, picked, "reports")

    @route("GET", r"/3\.0/reports/(?P<cid>[^/]+)/?")
    def report(self, req: Request) -> Response:
        cid = req.path_params["cid"]
        with self._lock:
            if cid not in self.campaigns:
                return self.not_found(req)
            return Response(200, self._report(cid))

    @route("GET", r"/3\.0/reports/(?P<cid>[^/]+)/email-activity/?")
    def email_activity(self, req: Request) -> Response:
        cid = req.path_params["cid"]
        try:
            since = _when(req.query["since"]) if req.query.get("since") else None
        except ValueError:
            return problem(400, "Invalid Resource", "since is not an ISO-8601 time")
        with self._lock:
            if cid not in self.campaigns:
                return self.not_found(req)
            members = []
            for member in self.activity[cid].values():
                if since is not None and isinstance(member, dict):
                    recent = [
                        a
                        for a in member.get("activity") or []
                        if isinstance(a, dict) and _when(a["timestamp"]) > since
                    ]
                    if not recent:
                        continue
                    member = {**member, "activity": recent}
                members.append(member)
        return self._page(req, members, "emails", campaign_id=cid)

    @route("GET", r"/3\.0/reports/(?P<cid>[^/]+)/unsubscribed/?")
    def unsubscribes(self, req: Request) -> Response:
        cid = req.path_params["cid"]
        with self._lock:
            if cid not in self.campaigns:
                return self.not_found(req)
            rows = list(self.unsubscribed[cid])
        return self._page(req, rows, "unsubscribes", campaign_id=cid)
