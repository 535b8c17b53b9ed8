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

:func:`aggregate` is the plain reference, one account's records at a time: the sync computes
the same signals for many accounts at once in the database (connectors/zendesk/signals_sql.py),
and tests/test_zendesk_sql_recompute.py checks the two agree on the same kept records.
:func:`repeated_topics` also finishes, there, the count of accounts holding tickets kept
before their topic was (it derives the topic from the subject).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from connectors.zendesk.tickets import OPEN_STATUSES, parse_time, subject_topic

METRICS = (
    "zendesk_tickets_30d",
    "zendesk_urgent_open",
    "zendesk_reopened_90d",
    "zendesk_repeated_topic_90d",
    "zendesk_csat_90d",
)
MONTH, QUARTER = timedelta(days=30), timedelta(days=90)


def topics(ticket: dict[str, Any], tag_prefix: str) -> set[str]:
    prefix = tag_prefix.lower()
    out = {
        f"tag:{t.lower()}"
        for t in ticket.get("tags") or []
        if prefix and str(t).lower().startswith(prefix)
    }
    # kept since the ticket was read (``topic``); computed here for tickets kept before that
    subject = (
        ticket["topic"] if "topic" in ticket else subject_topic(str(ticket.get("subject") or ""))
    )
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
    return _repeated(
        [(c, t) for t in tickets if (c := _when(t, "created_at")) is not None], now, tag_prefix
    )


def _repeated(dated: list[tuple[datetime, dict[str, Any]]], now: datetime, tag_prefix: str) -> int:
    dated.sort(key=lambda pair: pair[0])
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


def aggregate(
    tickets: list[dict[str, Any]],
    ratings: list[dict[str, Any]],
    now: datetime,
    tag_prefix: str = "topic_",
) -> dict[str, float | None]:
    """The five signals of one account from its (not deleted) tickets and ratings."""
    dated = [(c, t) for t in tickets if (c := _when(t, "created_at")) is not None]
    month_ago, quarter_ago = now - MONTH, now - QUARTER
    recent = sum(1 for c, _ in dated if month_ago <= c <= now)
    urgent = sum(
        1 for t in tickets if t.get("priority") == "urgent" and t.get("status") in OPEN_STATUSES
    )
    reopened = 0
    for t in tickets:
        if int(t.get("reopens") or 0) > 0:  # the date is read only for reopened tickets
            updated = _when(t, "updated_at")
            if updated is not None and updated >= quarter_ago:
                reopened += 1
    repeated = _repeated(dated, now, tag_prefix)
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
        "zendesk_repeated_topic_90d": float(repeated),
        "zendesk_csat_90d": good / (good + bad) if good + bad else None,
    }
