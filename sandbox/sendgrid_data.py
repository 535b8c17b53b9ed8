"""Data side of the SendGrid emulator (:mod:`sandbox.sendgrid`): per-endpoint rate windows,
synthetic messages with their events, Email Activity summaries and the stats aggregation.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

_BETWEEN = re.compile(
    r'last_event_time\s+BETWEEN\s+TIMESTAMP\s+"([^"]+)"\s+AND\s+TIMESTAMP\s+'
    r'"([^"]+)"',
    re.I,
)
_TO = re.compile(r'to_email\s*=\s*"([^"]+)"', re.I)
_MSG = re.compile(r"msg_id\s+LIKE\s+'([^']*)%'", re.I)
METRICS = (
    "blocks",
    "bounce_drops",
    "bounces",
    "clicks",
    "deferred",
    "delivered",
    "invalid_emails",
    "opens",
    "processed",
    "requests",
    "spam_report_drops",
    "spam_reports",
    "unique_clicks",
    "unique_opens",
    "unsubscribe_drops",
    "unsubscribes",
)


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RateWindows:
    """Fixed windows per endpoint: ``limit`` requests per ``window`` seconds, or the
    endpoint's own limit from ``limits``."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float], limits: dict[str, int]
    ) -> None:
        self.limit, self.window, self.clock, self.limits = limit, window, clock, limits
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}  # endpoint → (window start, used)

    def limit_for(self, endpoint: str) -> int:
        return self.limits.get(endpoint, self.limit)

    def take(self, endpoint: str) -> tuple[bool, dict[str, str]]:
        """(admitted, the X-RateLimit headers to answer with)."""
        with self._lock:
            now, limit = self.clock(), self.limit_for(endpoint)
            start, used = self._state.get(endpoint, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            admitted = used < limit
            used += admitted
            self._state[endpoint] = (start, used)
            return admitted, self.headers(endpoint, limit - used, start + self.window)

    def headers(self, endpoint: str, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit_for(endpoint)),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }


def build_message(
    msg_id: str,
    to_email: str,
    sent_at: datetime,
    *,
    opened: bool = False,
    clicked: bool = False,
    bounced: bool = False,
    unsubscribed: bool = False,
    categories: tuple[str, ...] = ("healthscore",),
    machine_open: bool = False,
) -> dict[str, Any]:
    """A message and its events (processed, delivered or bounce, open, click, …)."""
    t = int(sent_at.timestamp())
    events = [("processed", t)]
    if bounced:
        events.append(("bounce", t + 5))
    else:
        events.append(("delivered", t + 3))
        if machine_open:
            events.append(("open", t + 10))
        if opened or clicked:
            events.append(("open", t + 600))
        if clicked:
            events.append(("click", t + 660))
        if unsubscribed:
            events.append(("unsubscribe", t + 720))
    message = {
        "msg_id": msg_id,
        "to_email": to_email.lower(),
        "from_email": "success@vendor.example",
        "subject": "From your CS team",
        "categories": list(categories),
        "events": [],
    }
    for n, (kind, at) in enumerate(events):
        event: dict[str, Any] = {
            "email": to_email.lower(),
            "timestamp": at,
            "event": kind,
            "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode(),
            "sg_message_id": msg_id,
            "category": list(categories)
            if len(categories) > 1
            else (categories[0] if categories else []),
        }
        if kind == "open":
            event["sg_machine_open"] = machine_open and n == 2
        if kind == "bounce":
            event.update(type="bounce", status="5.1.1", reason="550 5.1.1 unknown user")
        if kind == "click":
            event["url"] = "https://app.vendor.example/dashboards"
        message["events"].append(event)
    return message


def activity_summary(message: dict[str, Any]) -> dict[str, Any]:
    """A message as ``GET /v3/messages`` lists it (Email Activity)."""
    kinds = [e["event"] for e in message["events"]]
    status = (
        "not_delivered"
        if {"bounce", "dropped"} & set(kinds)
        else "delivered"
        if "delivered" in kinds
        else "processed"
    )
    return {
        "from_email": message["from_email"],
        "msg_id": message["msg_id"],
        "subject": message["subject"],
        "to_email": message["to_email"],
        "status": status,
        "opens_count": kinds.count("open"),
        "clicks_count": kinds.count("click"),
        "last_event_time": iso(max(e["timestamp"] for e in message["events"])),
    }


def filter_activity(rows: list[Any], query: str) -> list[Any]:
    """The Email Activity rows ``query`` selects (its ``last_event_time BETWEEN TIMESTAMP ...``,
    ``to_email = "..."`` and ``msg_id LIKE '...%'`` clauses), newest first; ValueError with
    SendGrid's message for a query it cannot read."""
    between, to, msg = _BETWEEN.search(query), _TO.search(query), _MSG.search(query)
    if query and not (between or to or msg):
        raise ValueError("invalid query")
    try:
        lo, hi = (
            (
                datetime.fromisoformat(between.group(1).replace("Z", "+00:00")),
                datetime.fromisoformat(between.group(2).replace("Z", "+00:00")),
            )
            if between
            else (None, None)
        )
    except ValueError:
        raise ValueError("invalid timestamp in query") from None
    out = []
    for m in rows:
        if isinstance(m, dict) and isinstance(m.get("last_event_time"), str):
            try:
                at = datetime.fromisoformat(m["last_event_time"].replace("Z", "+00:00"))
            except ValueError:
                at = None
            if lo and hi and (at is None or not lo <= at <= hi):
                continue
        if to and m.get("to_email") != to.group(1).lower():
            continue
        if msg and not str(m.get("msg_id", "")).startswith(msg.group(1)):
            continue
        out.append(m)
    out.sort(key=lambda m: str(m.get("last_event_time")), reverse=True)
    return out


def stats_body(
    messages: Iterable[dict[str, Any]],
    start: date,
    end: date,
    by: str,
    categories: list[str] | None,
) -> list[dict[str, Any]]:
    """``GET /v3/stats`` (``categories`` None) or ``/v3/categories/stats``: one entry per
    ``by`` bucket between ``start`` and ``end``, days without traffic included."""
    names = categories if categories is not None else [None]
    buckets: dict[date, dict[str | None, dict[str, int]]] = {}
    day = start
    while day <= end:
        key = _bucket(day, by)
        buckets.setdefault(key, {n: dict.fromkeys(METRICS, 0) for n in names})
        day += timedelta(days=1)
    for m in messages:
        seen: set[str] = set()
        for e in m["events"]:
            day = datetime.fromtimestamp(e["timestamp"], UTC).date()
            if not start <= day <= end:
                continue
            for name in names:
                if name is not None and name not in m["categories"]:
                    continue
                counts = buckets[_bucket(day, by)][name]
                _count(counts, e["event"], seen, m["msg_id"])
    body = []
    for key in sorted(buckets):
        stats = []
        for name in names:
            entry: dict[str, Any] = {"metrics": buckets[key][name]}
            if name is not None:
                entry.update(type="category", name=name)
            stats.append(entry)
        body.append({"date": key.isoformat(), "stats": stats})
    return body


def _bucket(day: date, by: str) -> date:
    if by == "month":
        return day.replace(day=1)
    if by == "week":
        return day - timedelta(days=day.weekday())
    return day


def _count(counts: dict[str, int], kind: str, seen: set[str], msg_id: str) -> None:
    simple = {
        "processed": "processed",
        "delivered": "delivered",
        "bounce": "bounces",
        "deferred": "deferred",
        "spamreport": "spam_reports",
        "unsubscribe": "unsubscribes",
        "group_unsubscribe": "unsubscribes",
    }
    if kind in simple:
        counts[simple[kind]] += 1
        if kind == "processed":
            counts["requests"] += 1
    elif kind in ("open", "click"):
        counts["opens" if kind == "open" else "clicks"] += 1
        if kind not in seen:
            seen.add(kind)
            counts["unique_opens" if kind == "open" else "unique_clicks"] += 1
