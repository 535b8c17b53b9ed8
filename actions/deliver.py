"""Deliver pending intents from the action log: Slack alerts and digests, CSM tasks, emails.

Each intent moves ``pending → sending`` (committed) before the vendor call, then to ``sent``
with the vendor's id. A definite failure (rate limit, 5xx) goes back to ``pending`` for the next
try; a configuration error is ``failed``; a timeout or a worker killed mid-call leaves the
outcome unknown (``unknown``, or a ``sending`` row nobody finished).

Such an intent is *reconciled* where the vendor lets us look it up by its idempotency key:

- Slack: the key is in the message metadata; ``conversations.history`` finds it (→ ``sent``)
  or, once the post can no longer be in flight, proves it was never posted (→ ``pending``).
- Tasks: the record CRM's back end looks the task up by its key (an external-id query or a
  search on the key
  property (the creates are upserts on the same key anyway).
- Email cannot be looked up (see ``actions.email``): a ``sending`` row left by a dead worker
  becomes ``unknown`` and is never re-sent — at most once.

Email intents name roles, not people: each is first *expanded* into one intent per contact
(``…:contact-id``), stored before anything is sent; skipped contacts (unsubscribed, over the
frequency cap) are stored as ``skipped`` with the reason.

Digest items (``digest``) are bundled, once per rule, channel and period, into one Slack
intent whose key names the period (``rule:digest:2026-11-26:channel``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from actions.email import EmailSender, account_contacts, in_roles, locally_suppressed
from actions.rule_model import ActionSettings, EmailSettings
from actions.slack import SlackAlerter, build_alert, build_digest
from connectors.outbound import Contact, Rejected, render
from healthscore.core.errors import ConfigError, HealthscoreError, RetriableError
from store import Store
from store.models import ActionLog, utcnow

log = logging.getLogger(__name__)

STUCK_SENDING = timedelta(minutes=10)


@dataclass
class DeliveryReport:
    sent: int = 0  # Slack messages (alerts and digests)
    tasks_created: int = 0
    emails_sent: int = 0
    emails_skipped: int = 0
    retry_later: int = 0
    failed: int = 0
    unknown: int = 0
    reconciled: int = 0  # delivered before, found at the vendor by key, recorded now
    errors: list[str] = field(default_factory=list)


class WorkerKilled(BaseException):
    """Raised from a delivery hook to stop a worker dead: nothing after it is recorded
    (``except Exception`` does not catch it), exactly as if the process had been killed."""


@dataclass
class DeliveryHooks:
    """Test and chaos points between the stages of one delivery."""

    before_send: Callable[[ActionLog], None] | None = None  # intent claimed, not yet sent
    after_accept: Callable[[ActionLog, str], None] | None = None  # vendor accepted, unrecorded


class Handler(Protocol):
    kind: str
    reconcilable: bool

    def send(self, action: ActionLog) -> str: ...

    def find(self, action: ActionLog) -> str | None: ...


class SlackHandler:
    kind = "slack"
    reconcilable = True

    def __init__(self, alerter: SlackAlerter, default_channel: str | None) -> None:
        self.alerter = alerter
        self.default_channel = default_channel

    def channel(self, action: ActionLog) -> str:
        channel = action.target or self.default_channel
        if not channel:
            raise ConfigError("no Slack channel configured")
        return channel

    def send(self, action: ActionLog) -> str:
        channel = self.channel(action)
        if action.payload.get("digest") is True:
            message = build_digest(action.payload)
        else:
            message = build_alert(
                action.payload, self.alerter.mention(action.payload.get("owner_email"))
            )
        return f"{channel}/{self.alerter.post(channel, message, key=action.key)}"

    def find(self, action: ActionLog) -> str | None:
        channel = self.channel(action)
        ts = self.alerter.find(channel, action.key, oldest=action.created_at.timestamp() - 60)
        return None if ts is None else f"{channel}/{ts}"


class EmailHandler:
    kind = "email_send"
    reconcilable = False

    def __init__(self, senders: dict[str, EmailSender]) -> None:
        self.senders = senders

    def send(self, action: ActionLog) -> str:
        p = action.payload
        sender = self.senders.get(p["provider"])
        if sender is None:
            raise RetriableError(f"no API key for the {p['provider']} email provider")
        contact = Contact(**p["contact"])
        return sender.send(
            to=contact,
            template=p["template"],
            data=p["data"],
            key=action.key,
            account_id=action.account_id,
            subject=p.get("subject"),
        )

    def find(self, action: ActionLog) -> str | None:  # pragma: no cover - not reconcilable
        raise NotImplementedError("email providers offer no look-up by key")


@dataclass
class Channels:
    """What delivery may use; a missing one leaves its intents pending."""

    slack: SlackAlerter | None = None
    default_channel: str | None = None
    tasks: Handler | None = None
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
        handlers["task"] = channels.tasks
    if channels.senders:
        handlers["email_send"] = EmailHandler(channels.senders)

    _recover(store, handlers, report, stuck_after)
    _bundle_digests(store, now)
    _expand_emails(store, channels.senders, channels.settings.email, now, report)
    labels = {"slack": "Slack alerts", "task": "CSM tasks", "email_send": "emails"}
    for kind, label in labels.items():
        pending = store.actions(status="pending", kind=kind)
        if not pending:
            continue
        handler = handlers.get(kind)
        if handler is None:
            report.retry_later += len(pending)
            log.warning("%d %s wait: %s", len(pending), label, _missing(kind))
            continue
        _send_all(store, handler, pending, report, hooks, label)
    return report


def _missing(kind: str) -> str:
    return {
        "slack": "SLACK_BOT_TOKEN is not set",
        "task": "no CRM of record to create tasks in",
        "email_send": "no email provider API key is set",
    }[kind]


def _recover(
    store: Store, handlers: dict[str, Handler], report: DeliveryReport, stuck_after: timedelta
) -> None:
    """Settle ``sending`` rows a dead worker left and ``unknown`` outcomes, by key."""
    for action in store.actions(status="sending") + store.actions(status="unknown"):
        stale = utcnow() - action.updated_at > stuck_after
        if action.status == "sending" and not stale:
            continue  # another worker may still be on it
        handler = handlers.get(action.kind)
        if handler is None:
            continue
        if not handler.reconcilable or not action.payload.get("keyed"):
            # (an alert queued before keys rode in the metadata cannot be looked up either)
            if action.status == "sending":
                store.finish_delivery(
                    action.key,
                    "unknown",
                    error="worker stopped mid-delivery; not re-sent (no look-up by key)",
                )
                report.unknown += 1
            continue
        try:
            found = handler.find(action)
        except HealthscoreError as exc:
            log.warning("could not reconcile %s yet: %s", action.key, exc)
            continue
        if found is not None:
            store.finish_delivery(action.key, "sent", response_id=found)
            report.reconciled += 1
            log.info("%s was delivered before (%s): recorded, not re-sent", action.key, found)
        elif action.status == "sending" or stale:
            # not at the vendor, and no request can still be in flight: send it again
            store.finish_delivery(
                action.key,
                "pending",
                error="not found at the vendor after an interrupted delivery; sent again",
            )
        # a fresh unknown that is not found yet may still be in flight: ask again next time


def period_of(digest: str, at: datetime) -> str:
    if digest == "weekly":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return at.date().isoformat()


def _bundle_digests(store: Store, now: datetime) -> None:
    """One Slack intent per rule, channel and period holding the period's pending items.

    Items that arrive after their period's digest was made wait for the next period's.
    """
    groups: dict[tuple[str, str | None, str], list[ActionLog]] = {}
    for item in store.actions(status="pending", kind="digest"):
        period = period_of(str(item.payload.get("digest")), now)
        groups.setdefault((item.rule, item.target, period), []).append(item)
    for (rule, channel, period), items in groups.items():
        key = f"{rule}:digest:{period}" + (f":{channel}" if channel else "")
        payload = {
            "digest": True,
            "keyed": True,
            "rule": rule,
            "period": period,
            "items": [
                {k: i.payload.get(k) for k in ("name", "score", "grade", "why", "crm_url")}
                for i in items
            ],
        }
        if store.bundle_actions(
            key,
            rule=rule,
            kind="slack",
            target=channel,
            payload=payload,
            item_keys=[i.key for i in items],
        ):
            log.info("digest %s: %d accounts", key, len(items))


def _expand_emails(
    store: Store,
    senders: dict[str, EmailSender],
    settings: EmailSettings,
    now: datetime,
    report: DeliveryReport,
) -> None:
    parents = store.actions(status="pending", kind="email")
    if not parents:
        return
    contacts = account_contacts(store, {p.account_id for p in parents})
    sent_to = store.target_counts("email_send", now - settings.cap_window)
    provider_lists: dict[str, set[str]] = {}
    for parent in parents:
        spec = parent.payload["email"]
        provider = spec.get("provider") or settings.provider
        sender = senders.get(provider)
        if sender is None:
            report.retry_later += 1
            continue
        if provider not in provider_lists:
            try:
                provider_lists[provider] = sender.suppressed()
            except HealthscoreError as exc:  # the lists could not be read: send nothing yet
                report.retry_later += 1
                report.errors.append(str(exc))
                log.warning("emails wait: %s", exc)
                continue
        chosen = [c for c in contacts.get(parent.account_id, []) if in_roles(c, spec["roles"])]
        for c in chosen:
            reason = skip_reason(
                c, settings, provider, provider_lists[provider], sent_to.get(c.email, 0)
            )
            key = f"{parent.key}:{c.id}"
            claimed = store.claim_action(
                key,
                rule=parent.rule,
                kind="email_send",
                account_id=parent.account_id,
                target=c.email,
                payload=email_payload(parent, c, provider, spec),
                status="skipped" if reason else "pending",
                error=reason,
            )
            if claimed and reason:
                report.emails_skipped += 1
                log.info("email %s to contact %s skipped: %s", key, c.id, reason)
            elif claimed:
                sent_to[c.email] = sent_to.get(c.email, 0) + 1
        store.finish_delivery(
            parent.key,
            "expanded" if chosen else "skipped",
            response_id=f"{len(chosen)} contacts",
            error=None if chosen else "no contact in roles " + ", ".join(spec["roles"]),
        )


def skip_reason(
    c: Any, settings: EmailSettings, provider: str, provider_list: set[str], recent: int
) -> str | None:
    if c.opted_out:
        return "opted out of email in the CRM"
    if locally_suppressed(c.email, settings.suppressed):
        return "on the local suppression list"
    if c.email in provider_list:
        return f"unsubscribed at {provider}"
    if recent >= settings.max_per_contact:
        return (
            f"frequency cap: {recent} email(s) within "
            f"{settings.cap_window.days or settings.cap_window}d"
        )
    return None


def email_payload(parent: ActionLog, c: Any, provider: str, spec: dict[str, Any]) -> dict[str, Any]:
    p = parent.payload
    data = {
        "first_name": c.first_name,
        "account_name": p.get("name"),
        "score": p.get("score"),
        "grade": p.get("grade"),
        "why": p.get("why"),
        "rule": parent.rule,
        "step": spec.get("step"),
    }
    subject = spec.get("subject")
    return {
        "name": p.get("name"),
        "why": p.get("why"),
        "provider": provider,
        "template": spec["template"],
        "step": spec.get("step"),
        "subject": render(subject, p) if subject else None,
        "data": {k: v for k, v in data.items() if v is not None},
        "contact": {
            "id": c.id,
            "email": c.email,
            "first_name": c.first_name,
            "role": c.role,
            "opted_out": c.opted_out,
            "source": c.source,
        },
    }


def _send_all(
    store: Store,
    handler: Handler,
    pending: list[ActionLog],
    report: DeliveryReport,
    hooks: DeliveryHooks,
    label: str,
) -> None:
    prepare = getattr(handler, "prepare", None)
    if prepare is not None:  # e.g. the tasks' owners, read in bulk
        try:
            prepare(pending)
        except HealthscoreError as exc:
            report.retry_later += len(pending)
            report.errors.append(str(exc))
            log.warning("%s wait for the next run (%s)", label, exc)
            return
    for index, action in enumerate(pending):
        if not store.begin_delivery(action.key):
            continue  # another worker has it
        if hooks.before_send is not None:
            hooks.before_send(action)
        try:
            response_id = handler.send(action)
        except Rejected as exc:
            store.finish_delivery(action.key, "skipped", error=str(exc))
            report.emails_skipped += 1
            log.info("%s %s skipped by the provider: %s", label, action.key, exc)
            continue
        except RetriableError as exc:
            store.finish_delivery(action.key, "pending", error=str(exc))
            # the vendor is down or rate limiting us: the rest would fail the same way (and
            # could pin the worker for as long as their timeouts add up): they wait
            report.retry_later += len(pending) - index
            report.errors.append(str(exc))
            log.warning(
                "%s wait for the next run (%s): %d pending", label, exc, len(pending) - index
            )
            return
        except HealthscoreError as exc:
            store.finish_delivery(action.key, "failed", error=str(exc))
            report.failed += 1
            report.errors.append(str(exc))
            log.error("%s %s failed: %s", label, action.key, exc)
            continue
        except Exception as exc:  # OutcomeUnknown, a timeout …: it may have gone through
            store.finish_delivery(action.key, "unknown", error=f"{exc.__class__.__name__}: {exc}")
            report.unknown += 1
            log.error(
                "%s %s outcome unknown (%s); %s",
                label,
                action.key,
                exc,
                "reconciled by key next run" if handler.reconcilable else "not re-sent",
            )
            continue
        if hooks.after_accept is not None:
            hooks.after_accept(action, response_id)
        store.finish_delivery(action.key, "sent", response_id=response_id)
        if handler.kind == "slack":
            report.sent += 1
        elif handler.kind == "task":
            report.tasks_created += 1
        else:
            report.emails_sent += 1
