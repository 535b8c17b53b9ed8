"""ZendeskEmulator: the Zendesk Support API v2 surfaces healthscore reads, over plain HTTP.

- ``GET /api/v2/incremental/tickets/cursor.json``: the cursor-based incremental export
  (``start_time`` the first time, then ``cursor``; ``per_page`` ≤ 1000; ``end_of_stream``;
  ``include=metric_sets`` sideload; changes of the last minute withheld; a ``start_time`` less
  than a minute old answers 400 ``InvalidValue`` "Too recent start_time");
- ``GET /api/v2/organizations.json``: cursor pagination (``page[size]`` ≤ 100, ``page[after]``,
  ``meta.has_more``, ``links.next``);
- ``GET /api/v2/satisfaction_ratings.json``: ``score`` filter, ``start_time``/``end_time`` on
  the rating's last change, the same cursor pagination.

Basic auth ``{email}/token:{api_token}`` (401 ``Couldn't authenticate you``); exports and CSAT
need an admin (403). Two limits, each a token bucket: the account's requests per minute (429
with a *plain-text* body) and the incremental export's 10 per minute (429 JSON
``APIRateLimitExceeded``), both with ``Retry-After``; every response carries ``X-Rate-Limit``
and ``X-Rate-Limit-Remaining`` (lists also ``ratelimit-limit/remaining/reset``). ``limit_scale``
compresses the minute for tests and benchmarks. Faults (``FaultPlan``) answer with the same
bodies. See /work/shared/api-specs/zendesk.md.

Point the connector at it with ``ZENDESK_BASE_URL = emu.api_url``.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.faults import Fault
from sandbox.server import EmulatorServer, route
from sandbox.synthetic import SyntheticOrg
from sandbox.wire import Request, Response
from sandbox.zendesk_data import (
    DeskData,
    Rating,
    Ticket,
    decode_cursor,
    encode_cursor,
)
from sandbox.zendesk_limits import MinuteBucket
from sandbox.zendesk_synthetic import organization_specs, ticket_specs

__all__ = ["ZendeskEmulator"]

EXPORT = r"/api/v2/incremental/tickets/cursor(?:\.json)?"
AUTH_FAILED = {"error": "Couldn't authenticate you"}
FORBIDDEN = {
    "error": "Forbidden",
    "description": "You do not have access to this page. "
    "Please contact the account owner of this help desk for further help.",
}
EXPORT_LIMITED = {
    "error": "APIRateLimitExceeded",
    "description": "Number of allowed incremental export API requests per minute exceeded",
}
ACCOUNT_LIMITED = "Number of allowed API requests per minute exceeded"  # plain text, really
TOO_RECENT = {
    "error": "InvalidValue",
    "description": "Too recent start_time. Use a start_time older than 1 minute",
}
UNAVAILABLE = {
    "error": "ServiceUnavailable",
    "description": "Zendesk is temporarily unavailable. Please try again later.",
}
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
RECEIVED = {"received": ("good", "bad"), "good": ("good",), "bad": ("bad",)}


def _invalid(description: str) -> Response:
    return Response(400, {"error": "InvalidPaginationParameter", "description": description})


class ZendeskEmulator(EmulatorServer):
    """``with ZendeskEmulator() as emu:`` then ``ZENDESK_BASE_URL=emu.api_url``."""

    def __init__(
        self,
        *,
        email: str = "admin@healthscore-demo.test",
        api_token: str | None = None,
        admin: bool = True,
        requests_per_minute: int = 700,
        export_requests_per_minute: int = 10,
        limit_scale: float = 1.0,
        fault_retry_after: int = 1,
        clock: Callable[[], datetime] | None = None,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.email = email
        self.api_token = api_token or "zd-" + secrets.token_hex(12)
        self.admin = admin
        self.fault_retry_after = fault_retry_after
        self._clock = clock or (lambda: datetime.now(UTC))
        self._frozen: datetime | None = None
        self._rate_clock = rate_clock
        self.data = DeskData()
        self.unmatched_org_ids: list[int] = []
        self.set_rate_limits(
            requests_per_minute=requests_per_minute,
            export_requests_per_minute=export_requests_per_minute,
            limit_scale=limit_scale,
        )

    @property
    def api_url(self) -> str:
        """What ``ZENDESK_BASE_URL`` should be: ``http://127.0.0.1:PORT/api/v2/``."""
        return self.origin + "/api/v2/"

    # ------------------------------------------------------------------ limits
    def set_rate_limits(
        self,
        *,
        requests_per_minute: int | None = None,
        export_requests_per_minute: int | None = None,
        limit_scale: float | None = None,
    ) -> None:
        """Change the limits (buckets start full); ``limit_scale`` shortens the minute."""
        prev = getattr(self, "_account", None)
        self.limit_scale = limit_scale if limit_scale is not None else self.limit_scale
        account = requests_per_minute or (prev.limit if prev else 700)
        export = export_requests_per_minute or (self._export.limit if prev else 10)
        self._account = MinuteBucket(account, self.limit_scale, self._rate_clock)
        self._export = MinuteBucket(export, self.limit_scale, self._rate_clock)

    def _limit_headers(self, req: Request) -> dict[str, str]:
        headers = {
            "X-Rate-Limit": str(self._account.limit),
            "X-Rate-Limit-Remaining": str(self._account.remaining()),
        }
        if not req.path.startswith("/api/v2/incremental/"):
            headers.update(
                {
                    "ratelimit-limit": str(self._account.limit),
                    "ratelimit-remaining": str(self._account.remaining()),
                    "ratelimit-reset": str(self._account.reset_seconds()),
                }
            )
        return headers

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        return self._frozen or self._clock()

    def set_time(self, moment: datetime | None) -> None:
        """Freeze the desk's clock (``None``: follow the real one again)."""
        self._frozen = moment

    def advance(self, delta: float | timedelta) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self._frozen = self.now() + timedelta(seconds=seconds)

    def _stamp(self, when: datetime | None = None) -> int:
        return int((when or self.now()).timestamp())

    # ------------------------------------------------------------------ data API (no HTTP)
    def add_organization(
        self,
        name: str,
        domain_names: Iterable[str] = (),
        external_id: str | None = None,
        tags: Sequence[str] = (),
    ) -> int:
        return self.data.add_org(name, list(domain_names), external_id, self._stamp(), list(tags))

    def update_organization(self, org_id: int, **changes: Any) -> None:
        with self.data.lock:
            org = self.data.orgs[org_id]
            for key in ("name", "external_id", "domain_names", "tags"):
                if key in changes:
                    org[key] = changes[key]
            org["updated"] = self._stamp()

    def add_ticket(
        self,
        organization_id: int | None,
        subject: str,
        *,
        status: str = "open",
        priority: str | None = "normal",
        type: str | None = "question",
        tags: Sequence[str] = (),
        reopens: int = 0,
        created: datetime | None = None,
    ) -> int:
        """A ticket changed *now* (the desk clock); ``created`` defaults to now too."""
        stamp = self._stamp()
        ticket = Ticket(
            self.data.new_seq(),
            self.data.new_ticket_id(),
            organization_id,
            subject,
            status,
            priority,
            type,
            tuple(tags),
            self._stamp(created) if created else stamp,
            stamp,
            stamp,
            20978392,
            reopens,
        )
        self.data.add_ticket(ticket)
        assert ticket.id is not None
        return ticket.id

    def add_raw_ticket(self, raw: dict[str, Any]) -> None:
        """A ticket served exactly as given (to test malformed records), changed now."""
        stamp = self._stamp()
        self.data.add_ticket(
            Ticket(
                self.data.new_seq(),
                None,
                None,
                "",
                "",
                None,
                None,
                (),
                stamp,
                stamp,
                stamp,
                0,
                raw=dict(raw),
            )
        )

    def update_ticket(self, ticket_id: int, **changes: Any) -> None:
        """Change fields (status, priority, subject, tags, reopens, org_id); bumps the
        ticket's ``updated_at`` and export position to now."""
        with self.data.lock:
            ticket = self._ticket(ticket_id)
            for key, value in changes.items():
                if key == "tags":
                    value = tuple(value)
                if not hasattr(ticket, key) or key in ("seq", "id", "gts", "raw"):
                    raise KeyError(f"a ticket has no settable field {key!r}")
                setattr(ticket, key, value)
            self.data.touch(ticket, self._stamp())

    def rate_ticket(self, ticket_id: int, score: str) -> int:
        """A CSAT rating (good/bad) given now; the ticket changes with it."""
        with self.data.lock:
            ticket = self._ticket(ticket_id)
            rating = self.data.rate(ticket, score, self._stamp())
            self.data.touch(ticket, self._stamp())
            return rating.id

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.data.lock:
            return self._ticket(ticket_id).render(self.api_url)

    def _ticket(self, ticket_id: int) -> Ticket:
        seq = self.data.by_id.get(ticket_id)
        if seq is None:
            raise KeyError(f"no ticket {ticket_id}")
        return self.data.tickets[seq]

    @property
    def ticket_count(self) -> int:
        return len(self.data.tickets)

    @property
    def organization_count(self) -> int:
        return len(self.data.orgs)

    def seed(
        self,
        org: SyntheticOrg,
        now: datetime | None = None,
        *,
        account_ids: Sequence[str] | None = None,
        seed: int = 7,
        ticket_rounds: int = 1,
    ) -> list[int]:
        """Organizations and tickets from a synthetic org; returns the organization ids in
        account order (``unmatched_org_ids`` holds the two no account owns).
        ``ticket_rounds`` draws each account's tickets that many times (more records per
        account: a benchmark's way to grow records without growing accounts).

        ``account_ids`` (what ``SalesforceEmulator.seed`` returned) go into the ``external_id``
        of every other organization; the rest are matched by domain only.
        """
        now = now or self.now()
        stamp = self._stamp(now)
        ids = [
            self.data.add_org(o["name"], o["domain_names"], o["external_id"], stamp, o["tags"])
            for o in organization_specs(org, account_ids)
        ]
        per_account, self.unmatched_org_ids = ids[: len(org.accounts)], ids[len(org.accounts) :]
        tickets, ratings = [], []
        specs = (
            spec
            for round_ in range(ticket_rounds)
            for spec in ticket_specs(org, now, seed + round_)
        )
        for spec in specs:
            org_id = per_account[spec.account] if spec.account >= 0 else self.unmatched_org_ids[0]
            updated = self._stamp(spec.updated)
            ticket = Ticket(
                self.data.new_seq(),
                self.data.new_ticket_id(),
                org_id,
                spec.subject,
                spec.status,
                spec.priority,
                spec.type,
                tuple(spec.tags),
                self._stamp(spec.created),
                updated,
                updated,
                20978392 + spec.account,
                spec.reopens,
            )
            if spec.rating is not None:
                rated = self._stamp(spec.rating[1])
                rating = Rating(self.data.next_rating, ticket.id or 0, spec.rating[0], rated, rated)
                self.data.next_rating += 1
                ticket.rating = (rating.id, rating.score)
                ratings.append(rating)
            tickets.append(ticket)
        self.data.add_tickets_bulk(tickets)
        self.data.add_ratings_bulk(ratings)
        return per_account

    # ------------------------------------------------------------------ hooks
    def _authorized(self, req: Request) -> bool:
        scheme, _, encoded = (req.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, f"{self.email}/token") and secrets.compare_digest(
            password, self.api_token
        )

    def before_route(self, req: Request) -> Response | None:
        if not req.path.startswith("/api/v2/"):
            return None
        if not self._authorized(req):
            return Response(401, AUTH_FAILED, {"WWW-Authenticate": 'Basic realm="Web Password"'})
        wait = self._account.take()
        if wait:
            return Response(429, ACCOUNT_LIMITED, {"Retry-After": str(wait)})
        exporting = req.path.startswith("/api/v2/incremental/")
        if exporting:
            wait = self._export.take()
            if wait:
                return Response(429, EXPORT_LIMITED, {"Retry-After": str(wait)})
        if (exporting or "satisfaction_ratings" in req.path) and not self.admin:
            return Response(403, FORBIDDEN)
        return None

    def finalize(self, req: Request, response: Response) -> Response:
        if not req.path.startswith("/api/v2/") or response.status == 401:
            return response
        return Response(
            response.status, response.body, {**self._limit_headers(req), **response.headers}
        )

    def fault_response(self, fault: Fault, req: Request) -> Response:
        retry = {"Retry-After": str(self.fault_retry_after)}
        if fault.kind == "rate_limit":
            if req.path.startswith("/api/v2/incremental/"):
                return Response(429, EXPORT_LIMITED, retry)
            return Response(429, ACCOUNT_LIMITED, retry)
        if fault.kind == "expired_session":
            return Response(401, AUTH_FAILED)
        return Response(503, UNAVAILABLE)

    def not_found(self, req: Request) -> Response:
        return Response(404, NOT_FOUND)

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return Response(
            500, {"error": "InternalServerError", "description": "Something went wrong"}
        )

    # ------------------------------------------------------------------ routes
    def _url(self, req: Request, path: str) -> str:
        host = req.header("Host") or f"127.0.0.1:{self.port}"
        return f"http://{host}/api/v2/{path}"

    @route("GET", EXPORT)
    def export_tickets(self, req: Request) -> Response:
        q = req.query
        now = self._stamp()
        until = now - 60  # the last minute's changes are never returned
        try:
            per_page = min(1000, max(1, int(q.get("per_page", "1000"))))
            if q.get("cursor"):
                after = decode_cursor(q["cursor"], 2)
            elif q.get("start_time", "") != "":
                start = int(q["start_time"])
                if start > until:
                    return Response(400, TOO_RECENT)
                after = (start, 0)
            else:
                return Response(
                    400,
                    {"error": "InvalidValue", "description": "start_time or cursor is required"},
                )
        except ValueError:
            return Response(
                400, {"error": "InvalidValue", "description": "Invalid cursor or start_time"}
            )
        page, position, end = self.data.export_page((after[0], after[1]), until, per_page)
        if q.get("exclude_deleted") == "true":
            page = [t for t in page if t.status != "deleted"]
        cursor = encode_cursor(*position)
        body: dict[str, Any] = {
            "tickets": [t.render(self.api_url) for t in page],
            "after_cursor": cursor,
            "after_url": self._url(req, f"incremental/tickets/cursor.json?cursor={cursor}"),
            "before_cursor": encode_cursor(*after) if page else None,
            "before_url": None,
            "end_of_stream": end,
        }
        if "metric_sets" in q.get("include", "").split(","):
            body["metric_sets"] = [t.metric_set() for t in page if t.raw is None]
        return Response(200, body)

    def _page_params(self, req: Request) -> tuple[int, str | None] | Response:
        try:
            size = int(req.query.get("page[size]", "100"))
        except ValueError:
            return _invalid("page[size] must be an integer")
        if not 1 <= size <= 100:
            return _invalid("page[size] must be between 1 and 100")
        return size, req.query.get("page[after]") or None

    def _list_body(
        self,
        req: Request,
        key: str,
        items: list[dict[str, Any]],
        has_more: bool,
        after: str | None,
        before: str | None,
        path: str,
    ) -> Response:
        size = req.query.get("page[size]", "100")
        extra = "".join(f"&{k}={v}" for k, v in req.query.items() if not k.startswith("page["))
        return Response(
            200,
            {
                key: items,
                "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                "links": {
                    "next": self._url(req, f"{path}?page[size]={size}&page[after]={after}" + extra)
                    if has_more
                    else None,
                    "prev": None,
                },
            },
        )

    @route("GET", r"/api/v2/organizations(?:\.json)?")
    def list_organizations(self, req: Request) -> Response:
        params = self._page_params(req)
        if isinstance(params, Response):
            return params
        size, after = params
        with self.data.lock:
            start = 0
            if after:
                try:
                    start = bisect.bisect_right(self.data.org_ids, decode_cursor(after, 1)[0])
                except ValueError:
                    return _invalid("page[after] is not a valid cursor")
            ids = self.data.org_ids[start : start + size]
            items = [self.data.render_org(i, self.api_url) for i in ids]
            has_more = start + size < len(self.data.org_ids)
        return self._list_body(
            req,
            "organizations",
            items,
            has_more,
            encode_cursor(ids[-1]) if ids else None,
            encode_cursor(ids[0]) if ids else None,
            "organizations.json",
        )

    @route("GET", r"/api/v2/satisfaction_ratings(?:\.json)?")
    def list_ratings(self, req: Request) -> Response:
        params = self._page_params(req)
        if isinstance(params, Response):
            return params
        size, after = params
        scores = RECEIVED.get(req.query.get("score", "received"))
        if scores is None:
            scores = ()  # offered/unoffered: the emulator keeps received ratings only
        try:
            start_time = int(req.query.get("start_time") or 0)
            end_time = int(req.query.get("end_time") or 2**62)
            position = decode_cursor(after, 2) if after else (start_time, 0)
        except ValueError:
            return _invalid("start_time, end_time or page[after] is invalid")
        with self.data.lock:
            order = self.data.rating_order
            index = (
                bisect.bisect_right(order, (position[0], position[1]))
                if after
                else bisect.bisect_left(order, (start_time, 0))
            )
            found: list[Rating] = []
            last: tuple[int, int] | None = None
            while index < len(order) and len(found) < size:
                updated, rid = order[index]
                index += 1
                if updated > end_time:
                    index = len(order)
                    break
                last = (updated, rid)
                rating = self.data.ratings[rid]
                if rating.score in scores:
                    found.append(rating)
            has_more = index < len(order) and order[index][0] <= end_time
            items = [r.render(self.api_url) for r in found]
        cursor = encode_cursor(*last) if last else None
        return self._list_body(
            req, "satisfaction_ratings", items, has_more, cursor, None, "satisfaction_ratings.json"
        )

    @route("GET", r"/api/v2/tickets/(?P<ticket_id>\d+)(?:\.json)?")
    def show_ticket(self, req: Request) -> Response:
        try:
            return Response(200, {"ticket": self.ticket(int(req.path_params["ticket_id"]))})
        except KeyError:
            return Response(404, NOT_FOUND)
