"""SendGrid → per-account email engagement: webhook events, Email Activity messages and
suppressions kept per recipient (see connectors/email/sync.py for the shared rules).

Objects: ``events``, one per signed webhook event (id ``sg_event_id``: a redelivered event is
not kept twice); ``messages``, one per Email Activity message (``per_recipient:
activity_api``); ``suppressions``, bounces and global unsubscribes, pulled every sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from connectors.email.engagement import fact, parse_time, window_start
from connectors.email.sync import (
    FACT_OBJECTS,
    RECIPIENTS,
    EmailSyncReport,
    Progress,
    RecipientMatcher,
    _finish,
    _id_of,
    _insert_new,
    _Keeper,
    _rate,
    arrived_since,
    recompute,
    record_key,
)
from connectors.identity import Match
from connectors.sendgrid.client import (
    SendGridClient,
    category_totals,
    pull_activity,
    pull_suppressions,
)
from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.webhook import event_fact
from store import Store

log = logging.getLogger(__name__)

SOURCE = "sendgrid"
FACT_OBJECTS[SOURCE] = ("events", "messages", "suppressions")


def activity_fact(message: Any) -> tuple[str, dict[str, Any], datetime]:
    """One Email Activity message → (msg_id, fact, time); ValueError when malformed."""
    if not isinstance(message, dict) or not message.get("msg_id"):
        raise ValueError("no msg_id")
    email = message.get("to_email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"to_email {email!r} is not an address")
    at = parse_time(message.get("last_event_time"))
    if at is None:
        raise ValueError(f"last_event_time {message.get('last_event_time')!r} is not a time")
    opens, clicks = message.get("opens_count", 0), message.get("clicks_count", 0)
    if not isinstance(opens, int) or not isinstance(clicks, int):
        raise ValueError("opens_count / clicks_count are not numbers")
    status = message.get("status")
    msg_id = str(message["msg_id"])
    return (
        msg_id,
        fact(
            msg_id,
            email,
            at,
            delivered=status == "delivered",
            dropped=status == "not_delivered",
            opened=opens > 0,
            clicked=clicks > 0,
        ),
        at,
    )


def suppression_fact(kind: str, entry: Any) -> tuple[str, dict[str, Any], datetime]:
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    email = entry.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"email {email!r} is not an address")
    created = entry.get("created")
    at = parse_time(created) if isinstance(created, int) else None
    if at is None:
        raise ValueError(f"created {created!r} is not epoch seconds")
    label = "bounce" if kind == "bounces" else "unsubscribe"
    return (
        record_key(f"{label}:{email.lower()}:{created}"),
        fact(None, email, at, suppression=label),
        at,
    )


def sync_sendgrid(
    client: SendGridClient,
    store: Store,
    source: SendGridSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Pull what changed since ``since`` (the last 90 days when None) up to ``started``."""
    report = EmailSyncReport(SOURCE)
    keeper = _Keeper(store, SOURCE, RecipientMatcher(store), report)
    opens = window_start(started)  # the engagement window's first moment
    start = max(opens, since - source.overlap) if since else opens
    requests_before, limited_before = client.requests, client.rate_limited
    if source.per_recipient == "activity_api":
        for page in pull_activity(client, start, started):
            keeper.keep_page(
                "messages",
                page,
                activity_fact,
                lambda m: _id_of(m, "msg_id"),
                merge=True,
                progress=progress,
            )
    for kind in ("bounces", "unsubscribes"):
        for page in pull_suppressions(client, kind, start, started, page_size=source.page_size):
            keeper.keep_page(
                "suppressions",
                page,
                partial(suppression_fact, kind),
                lambda e, k=kind: f"{k}:{_id_of(e, 'email')}",
                progress=progress,
            )
    keeper.touched |= arrived_since(store, SOURCE, "events", start)  # webhook events
    totals = category_totals(client, opens.date(), started.date(), source.categories)
    report.baseline = {
        "delivered": float(totals.get("delivered", 0)),
        "open_rate_90d": _rate(totals, "unique_opens"),
        "click_rate_90d": _rate(totals, "unique_clicks"),
    }
    report.requests = client.requests - requests_before
    report.rate_limited = client.rate_limited - limited_before
    _finish(store, SOURCE, keeper, report, now(), source.metric_prefix, source.categories)
    log.info(
        "SendGrid sync: %d records (%d skipped), %d unmatched recipients, %d accounts "
        "recomputed in %d requests; org-wide open rate %s",
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
        report.baseline.get("open_rate_90d"),
    )
    return report


@dataclass
class WebhookResult:
    received: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    unmatched: int = 0
    accounts_recomputed: int = 0
    touched: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "new": self.new,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "skipped_ids": self.skipped_ids[:50],
            "unmatched": self.unmatched,
            "accounts_recomputed": self.accounts_recomputed,
        }


def apply_sendgrid_events(
    store: Store,
    events: list[Any],
    matcher: RecipientMatcher,
    *,
    now: datetime,
    prefix: str,
    categories: Iterable[str] = (),
    recompute_now: bool = True,
) -> WebhookResult:
    """Keep a webhook batch's events (each ``sg_event_id`` once, in one transaction) and
    recompute the accounts that got new ones (or, with ``recompute_now=False``, leave that to
    the caller: ``result.touched``). A redelivered batch adds nothing.

    A kept event's ``modified`` is when it *arrived*, so the next sync finds the accounts that
    got events since its cursor, however late SendGrid delivered them."""
    result = WebhookResult(received=len(events))
    rows: dict[str, dict[str, Any]] = {}
    recipients: dict[str, Match] = {}
    for event in events:
        try:
            parsed = event_fact(event)
        except ValueError as exc:
            rid = _id_of(event, "sg_event_id")
            log.warning("sendgrid webhook event %s skipped: %s", rid, exc)
            result.skipped += 1
            result.skipped_ids.append(rid)
            continue
        if parsed.event_id in rows:
            result.duplicates += 1
            continue
        email = parsed.fact["email"]
        match = recipients.setdefault(email, matcher.resolve(email))
        rows[parsed.event_id] = {
            "source": SOURCE,
            "object": "events",
            "id": record_key(parsed.event_id),
            "account_id": match.account_id,
            "fields": parsed.fact,
            "deleted": False,
            "modified": now,
        }
    by_key = {row["id"]: row for row in rows.values()}
    new = [by_key[k] for k in _insert_new(store, list(by_key.values()))]
    result.new = len(new)
    result.duplicates += len(rows) - len(new)
    fresh = {row["fields"]["email"] for row in new}
    unmatched = {
        e[:128]: (m.reason, m.detail) for e, m in recipients.items() if e in fresh and not m.matched
    }
    result.unmatched = len(unmatched)
    if fresh:
        store.record_unmatched(
            SOURCE,
            RECIPIENTS,
            unmatched,
            matched=[e[:128] for e in fresh if recipients[e].matched],
        )
    result.touched = {row["account_id"] for row in new if row["account_id"]}
    if recompute_now:
        result.accounts_recomputed, _ = recompute(
            store, SOURCE, result.touched, now, prefix, categories
        )
    return result
