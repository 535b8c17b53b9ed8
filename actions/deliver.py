"""Deliver pending intents from the action log: Slack alerts and digests, CSM tasks, emails.

Intents go out in batches, as many a request as the vendor takes (each back end says its
batch size: 200 tasks a CRM collections upsert, 100 a batch upsert, 1,000 recipients a mail
send, each with its own key); Slack posts one message a request. A
batch moves ``pending → sending`` (committed) before its request, then each item to ``sent``
with the vendor's id — or on its own to ``failed``, ``skipped``, ``pending`` or ``unknown``
(``actions.delivery_batches`` has the table). A refusal of our credentials or settings is not
the item's fault: it stays ``pending`` with the error and goes out by itself once fixed;
``failed`` is for what the vendor refused in the item, and ``requeue_failed`` (``healthscore
actions --retry-failed``) hands those back after a person fixed the cause.

A timeout or a worker killed mid-call leaves the outcome unknown (``unknown``, or a ``sending``
row nobody finished). Such an intent is *reconciled* where the vendor lets us look it up by
its idempotency key, item by item (the look-ups themselves batched):

- Slack: the key is in the message metadata; ``conversations.history`` finds it (→ ``sent``)
  or, once the post can no longer be in flight, proves it was never posted (→ ``pending``).
- Tasks: the record CRM's back end looks the tasks up by key (an external-id query or a
  search on the key property; the creates are upserts on the same key anyway).
- Email cannot be looked up (see ``actions.email``): a ``sending`` row left by a dead worker
  becomes ``unknown`` and is never re-sent — at most once.

One destination failing never stops the others: each is delivered on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actions.delivery_batches import recover, send_all
from actions.delivery_handlers import EmailHandler, SlackHandler
from actions.delivery_intake import (
    bundle_digests,
    email_payload,
    expand_emails,
    period_of,
    skip_reason,
)
from actions.delivery_model import (
    LABELS,
    STUCK_SENDING,
    DeliveryHooks,
    DeliveryReport,
    Handler,
    WorkerKilled,
    batched,
)
from actions.email import EmailSender
from actions.rule_model import ActionSettings
from actions.slack import SlackAlerter
from store import Store
from store.models import ActionLog, utcnow

__all__ = [
    "STUCK_SENDING",
    "Channels",
    "DeliveryHooks",
    "DeliveryReport",
    "WorkerKilled",
    "deliver_pending",
    "email_payload",
    "failed_deliveries",
    "period_of",
    "requeue_failed",
    "skip_reason",
]

log = logging.getLogger(__name__)
DELIVERED_KINDS = ("slack", "task", "email_send")


@dataclass
class Channels:
    """What delivery may use; a missing one leaves its intents pending."""

    slack: SlackAlerter | None = None
    default_channel: str | None = None
    tasks: Any | None = None  # the record CRM's task back end
    senders: dict[str, EmailSender] = field(default_factory=dict)
    settings: ActionSettings = field(default_factory=ActionSettings)


def deliver_pending(
    store: Store,
    alerter: SlackAlerter | None,
    *,
    default_channel: str | None,
    dry_run: bool = False,
    channels: Channels | None = None,
    hooks: DeliveryHooks | None = None,
    now: datetime | None = None,
    stuck_after: timedelta = STUCK_SENDING,
) -> DeliveryReport:
    """Reconcile what a dead worker left, bundle digests, expand emails, then send."""
    report = DeliveryReport()
    if dry_run:
        report.retry_later = sum(
            1
            for a in store.actions(status="pending")
            if a.kind in ("slack", "task", "email", "email_send")
        )
        return report
    channels = channels or Channels()
    channels.slack = alerter if alerter is not None else channels.slack
    channels.default_channel = default_channel or channels.default_channel
    hooks = hooks or DeliveryHooks()
    now = now or utcnow()
    handlers: dict[str, Handler] = {}
    if channels.slack is not None:
        handlers["slack"] = SlackHandler(channels.slack, channels.default_channel)
    if channels.tasks is not None:
        handlers["task"] = batched(channels.tasks)
    if channels.senders:
        handlers["email_send"] = EmailHandler(channels.senders)

    _isolated(
        "reconciling interrupted deliveries", report, recover, store, handlers, report, stuck_after
    )
    _isolated("bundling digests", report, bundle_digests, store, now)
    _isolated(
        "expanding emails",
        report,
        expand_emails,
        store,
        channels.senders,
        channels.settings.email,
        now,
        report,
    )
    for kind, label in LABELS.items():
        pending = store.actions(status="pending", kind=kind)
        if not pending:
            continue
        handler = handlers.get(kind)
        if handler is None:
            store.note_waiting([a.key for a in pending], _missing(kind))
            report.retry_later += len(pending)
            log.warning("%d %s wait: %s", len(pending), label, _missing(kind))
            continue
        _isolated(
            f"delivering {label}", report, send_all, store, handler, pending, report, hooks, label
        )
    return report


def _isolated(what: str, report: DeliveryReport, fn: Any, *args: Any) -> None:
    """Run one stage; an unexpected error is reported and the other stages go on (a
    ``WorkerKilled`` is not an ``Exception``: it stops everything, like a real kill)."""
    try:
        fn(*args)
    except Exception as exc:
        log.exception("%s failed", what)
        report.errors.append(f"{what}: {exc.__class__.__name__}: {exc}")


def _missing(kind: str) -> str:
    return {
        "slack": "SLACK_BOT_TOKEN is not set",
        "task": "no CRM of record to create tasks in",
        "email_send": "no email provider API key is set",
    }[kind]


def failed_deliveries(store: Store) -> list[ActionLog]:
    """Deliveries the vendor refused (``failed``), oldest first, with their errors."""
    return [a for a in store.actions(status="failed") if a.kind in DELIVERED_KINDS]


def requeue_failed(store: Store) -> int:
    """Hand every ``failed`` delivery back to the queue (``pending``) once a person fixed its
    cause; the next delivery sends each once. A ``sent`` or ``unknown`` intent never moves.
    Returns how many moved."""
    moved = store.requeue_failed([a.key for a in failed_deliveries(store)])
    log.info("%d failed deliveries queued again", moved)
    return moved
