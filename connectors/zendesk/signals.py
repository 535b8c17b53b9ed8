"""Per-account support signals from the tickets and CSAT ratings kept in the store.

- ``zendesk_tickets_30d``: tickets created in the last 30 days;
- ``zendesk_urgent_open``: urgent tickets not yet solved (new, open, pending, on hold);
- ``zendesk_reopened_90d``: tickets updated in the last 90 days that were reopened at least
  once (``metric_set.reopens``);
- ``zendesk_repeated_topic_90d``: tickets created in the last 90 days sharing a topic — the
  normalized subject, or a tag starting with the topic prefix — with an earlier ticket of the
  same account created up to 90 days before;
- ``zendesk_csat_90d``: good / (good + bad) over ratings given in the last 90 days; missing
  when nothing was rated (an account nobody rated is not unhappy).

An account without tickets gets 0 for the counts, not missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .tickets import OPEN_STATUSES, parse_time

METRICS = ("zendesk_tickets_30d", "zendesk_urgent_open", "zendesk_reopened_90d",
           "zendesk_repeated_topic_90d", "zendesk_csat_90d")
MONTH, QUARTER = timedelta(days=30), timedelta(days=90)
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_NOISE = re.compile(r"[^a-z]+")


def subject_topic(subject: str) -> str | None:
    """``RE: Export fails (#4312)!`` → ``export fails``; None when nothing is left."""
    text = _PREFIX.sub("", subject or "").lower()
    text = " ".join(_NOISE.sub(" ", text).split())
    return text if len(text) >= 3 else None


def topics(ticket: dict[str, Any], tag_prefix: str) -> set[str]:
    out = {f"tag:{t.lower()}" for t in ticket.get("tags") or []
           if tag_prefix and str(t).lower().startswith(tag_prefix.lower())}
    subject = subject_topic(str(ticket.get("subject") or ""))
    if subject:
        out.add(f"subject:{subject}")
    return out


def _when(record: dict[str, Any], key: str) -> datetime | None:
    try:
        return parse_time(record.get(key))
    except ValueError:
        return None


def repeated_topics(tickets: Iterable[dict[str, Any]], now: datetime, tag_prefix: str) -> int:
    """Tickets created in the last 90 days whose topic an earlier ticket had (≤ 90 days before)."""
    dated = sorted(((c, t) for t in tickets if (c := _when(t, "created_at")) is not None),
                   key=lambda pair: pair[0])
    last_seen: dict[str, datetime] = {}
    count = 0
    for created, ticket in dated:
        keys = topics(ticket, tag_prefix)
        repeat = any(created - last_seen[k] <= QUARTER for k in keys if k in last_seen)
        if repeat and now - created <= QUARTER and created <= now:
            count += 1
        for k in keys:
            last_seen[k] = created
    return count


def aggregate(tickets: list[dict[str, Any]], ratings: list[dict[str, Any]], now: datetime,
              tag_prefix: str = "topic_") -> dict[str, float | None]:
    """The five signals of one account from its (not deleted) tickets and ratings."""
    created = [(_when(t, "created_at"), t) for t in tickets]
    recent = sum(1 for c, _ in created if c is not None and now - MONTH <= c <= now)
    urgent = sum(1 for t in tickets if t.get("priority") == "urgent"
                 and t.get("status") in OPEN_STATUSES)
    reopened = 0
    for t in tickets:
        updated = _when(t, "updated_at")
        if int(t.get("reopens") or 0) > 0 and updated is not None and now - updated <= QUARTER:
            reopened += 1
    good = bad = 0
    for r in ratings:
        rated = _when(r, "created_at")
        if rated is None or not now - QUARTER <= rated <= now:
            continue
        if r.get("score") == "good":
            good += 1
        elif r.get("score") == "bad":
            bad += 1
    return {
        "zendesk_tickets_30d": float(recent),
        "zendesk_urgent_open": float(urgent),
        "zendesk_reopened_90d": float(reopened),
        "zendesk_repeated_topic_90d": float(repeated_topics(tickets, now, tag_prefix)),
        "zendesk_csat_90d": good / (good + bad) if good + bad else None,
    }
