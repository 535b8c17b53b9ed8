"""The Zendesk emulator's data: organizations, tickets in export order, CSAT ratings.

Tickets are kept compact (a slots dataclass) and rendered to Zendesk's JSON per page, so a
benchmark-sized desk (hundreds of thousands of tickets) fits in memory. The export order is
``(generated_timestamp, seq)``; a sorted index makes each page a bisect, not a sort.
"""

from __future__ import annotations

import base64
import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FIRST_ORG_ID = 360_000_001
FIRST_TICKET_ID = 1
FIRST_RATING_ID = 900_000_001


def iso(stamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def encode_cursor(*parts: int) -> str:
    return base64.urlsafe_b64encode(("|".join(map(str, parts)) + "|").encode()).decode()


def decode_cursor(cursor: str, size: int) -> tuple[int, ...]:
    """Raises ValueError for a cursor we did not make."""
    text = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
    values = tuple(int(float(p)) for p in text.rstrip("|").split("|") if p != "")
    if len(values) != size:
        raise ValueError("bad cursor")
    return values


@dataclass(slots=True)
class Ticket:
    seq: int
    id: int | None
    org_id: int | None
    subject: str
    status: str
    priority: str | None
    type: str | None
    tags: tuple[str, ...]
    created: int
    updated: int
    gts: int
    requester_id: int
    reopens: int = 0
    rating: tuple[int, str] | None = None  # (rating id, good|bad)
    raw: dict[str, Any] | None = None  # malformed tickets: rendered as given

    def render(self, base: str) -> dict[str, Any]:
        if self.raw is not None:
            return {**self.raw, "generated_timestamp": self.gts}
        rating: dict[str, Any] = {"score": "unoffered"}
        if self.rating is not None:
            rating = {"score": self.rating[1], "id": self.rating[0], "comment": ""}
        elif self.status in ("solved", "closed"):
            rating = {"score": "offered"}
        return {
            "id": self.id,
            "url": f"{base}tickets/{self.id}.json",
            "external_id": None,
            "type": self.type,
            "subject": self.subject,
            "raw_subject": self.subject,
            "description": self.subject,
            "priority": self.priority,
            "status": self.status,
            "requester_id": self.requester_id,
            "submitter_id": self.requester_id,
            "assignee_id": 235323,
            "organization_id": self.org_id,
            "group_id": 98738,
            "tags": list(self.tags),
            "satisfaction_rating": rating,
            "custom_fields": [],
            "created_at": iso(self.created),
            "updated_at": iso(self.updated),
            "generated_timestamp": self.gts,
            "via": {"channel": "web"},
        }

    def metric_set(self) -> dict[str, Any]:
        return {
            "id": 7_000_000 + self.seq,
            "ticket_id": self.id,
            "reopens": self.reopens,
            "replies": 1 + self.reopens,
            "created_at": iso(self.created),
            "updated_at": iso(self.updated),
        }


@dataclass(slots=True)
class Rating:
    id: int
    ticket_id: int
    score: str
    created: int
    updated: int

    def render(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": f"{base}satisfaction_ratings/{self.id}.json",
            "score": self.score,
            "ticket_id": self.ticket_id,
            "requester_id": 7881,
            "assignee_id": 135,
            "group_id": 44,
            "comment": "",
            "reason": "",
            "reason_code": 0,
            "created_at": iso(self.created),
            "updated_at": iso(self.updated),
        }


@dataclass
class DeskData:
    """Everything the emulator serves, behind one lock."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    orgs: dict[int, dict[str, Any]] = field(default_factory=dict)
    org_ids: list[int] = field(default_factory=list)  # sorted
    tickets: dict[int, Ticket] = field(default_factory=dict)  # seq → ticket
    by_id: dict[int, int] = field(default_factory=dict)  # ticket id → seq
    order: list[tuple[int, int]] = field(default_factory=list)  # sorted (gts, seq)
    ratings: dict[int, Rating] = field(default_factory=dict)
    rating_order: list[tuple[int, int]] = field(default_factory=list)  # sorted (updated, id)
    next_org: int = FIRST_ORG_ID
    next_ticket: int = FIRST_TICKET_ID
    next_seq: int = 1
    next_rating: int = FIRST_RATING_ID

    # -- organizations ---------------------------------------------------------------------
    def add_org(
        self,
        name: str,
        domain_names: list[str],
        external_id: str | None,
        stamp: int,
        tags: list[str] | None = None,
    ) -> int:
        with self.lock:
            org_id = self.next_org
            self.next_org += 1
            self.orgs[org_id] = {
                "name": name,
                "external_id": external_id,
                "domain_names": list(domain_names),
                "tags": tags or [],
                "created": stamp,
                "updated": stamp,
            }
            self.org_ids.append(org_id)  # ids only grow: stays sorted
            return org_id

    def render_org(self, org_id: int, base: str) -> dict[str, Any]:
        o = self.orgs[org_id]
        return {
            "id": org_id,
            "url": f"{base}organizations/{org_id}.json",
            "name": o["name"],
            "external_id": o["external_id"],
            "domain_names": list(o["domain_names"]),
            "group_id": None,
            "tags": list(o["tags"]),
            "organization_fields": {},
            "shared_tickets": False,
            "shared_comments": False,
            "details": "",
            "notes": "",
            "created_at": iso(o["created"]),
            "updated_at": iso(o["updated"]),
        }

    # -- tickets ---------------------------------------------------------------------------
    def add_ticket(self, ticket: Ticket) -> Ticket:
        with self.lock:
            self.tickets[ticket.seq] = ticket
            if ticket.id is not None:
                self.by_id[ticket.id] = ticket.seq
            bisect.insort(self.order, (ticket.gts, ticket.seq))
            return ticket

    def add_tickets_bulk(self, tickets: list[Ticket]) -> None:
        with self.lock:
            for t in tickets:
                self.tickets[t.seq] = t
                if t.id is not None:
                    self.by_id[t.id] = t.seq
            self.order.extend((t.gts, t.seq) for t in tickets)
            self.order.sort()

    def touch(self, ticket: Ticket, stamp: int) -> None:
        """A change: ``updated_at`` and the export position move to ``stamp``."""
        with self.lock:
            index = bisect.bisect_left(self.order, (ticket.gts, ticket.seq))
            if index < len(self.order) and self.order[index] == (ticket.gts, ticket.seq):
                del self.order[index]
            ticket.updated = ticket.gts = stamp
            bisect.insort(self.order, (ticket.gts, ticket.seq))

    def new_seq(self) -> int:
        with self.lock:
            self.next_seq += 1
            return self.next_seq - 1

    def new_ticket_id(self) -> int:
        with self.lock:
            self.next_ticket += 1
            return self.next_ticket - 1

    def export_page(
        self, after: tuple[int, int], until: int, limit: int
    ) -> tuple[list[Ticket], tuple[int, int], bool]:
        """Tickets after position ``after`` up to ``generated_timestamp <= until``."""
        with self.lock:
            start = bisect.bisect_right(self.order, after)
            stop = bisect.bisect_right(self.order, (until, float("inf")))  # type: ignore[arg-type]
            keys = self.order[start : min(stop, start + limit)]
            page = [self.tickets[seq] for _, seq in keys]
            position = keys[-1] if keys else after
            return page, position, start + len(keys) >= stop

    # -- ratings ---------------------------------------------------------------------------
    def rate(self, ticket: Ticket, score: str, stamp: int) -> Rating:
        with self.lock:
            if ticket.rating is not None:
                rating = self.ratings[ticket.rating[0]]
                self.rating_order.remove((rating.updated, rating.id))
                rating.score, rating.updated = score, stamp
            else:
                rating = Rating(self.next_rating, ticket.id or 0, score, stamp, stamp)
                self.next_rating += 1
                self.ratings[rating.id] = rating
            bisect.insort(self.rating_order, (rating.updated, rating.id))
            ticket.rating = (rating.id, score)
            return rating

    def add_ratings_bulk(self, ratings: list[Rating]) -> None:
        with self.lock:
            for r in ratings:
                self.ratings[r.id] = r
            self.rating_order.extend((r.updated, r.id) for r in ratings)
            self.rating_order.sort()
