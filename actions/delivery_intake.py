"""What delivery prepares before sending: digests bundled, emails expanded per contact.

Digest items (``digest``) are bundled, once per rule, channel and period, into one Slack
intent whose key names the period (``rule:digest:2026-11-26:channel``).

Email intents name roles, not people: each is first *expanded* into one intent per contact
(``…:contact-id``), stored before anything is sent; skipped contacts (unsubscribed, over the
frequency cap) are stored as ``skipped`` with the reason.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from actions.delivery_model import DeliveryReport
from actions.email import EmailSender, account_contacts, in_roles, locally_suppressed
from actions.rule_model import EmailSettings
from connectors.outbound import render
from healthscore.core.errors import HealthscoreError
from store import Store
from store.models import ActionLog

log = logging.getLogger("actions.deliver")  # one logger for delivery, whatever module


# what a digest line shows of each account (the churn keys with a churn model on the card)
DIGEST_ITEM_KEYS = (
    "name",
    "score",
    "grade",
    "why",
    "crm_url",
    "churn_probability",
    "churn_horizon_days",
    "arr_at_risk",
)


def period_of(digest: str, at: datetime) -> str:
    if digest == "weekly":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return at.date().isoformat()


def bundle_digests(store: Store, now: datetime) -> None:
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
            "items": [{k: i.payload.get(k) for k in DIGEST_ITEM_KEYS} for i in items],
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


def expand_emails(
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
    waiting: dict[str, list[str]] = {}  # why → the parents it holds back (they stay pending)
    unreadable: dict[str, str] = {}  # provider → why its lists could not be read this run
    for parent in parents:
        spec = parent.payload["email"]
        provider = spec.get("provider") or settings.provider
        sender = senders.get(provider)
        if sender is None:
            waiting.setdefault(f"no API key for the {provider} email provider", []).append(
                parent.key
            )
            continue
        if provider not in provider_lists and provider not in unreadable:
            try:
                provider_lists[provider] = sender.suppressed()
            except HealthscoreError as exc:  # the lists could not be read: send nothing yet
                unreadable[provider] = str(exc)
                report.errors.append(str(exc))
                log.warning("emails wait: %s", exc)
        if provider in unreadable:
            waiting.setdefault(unreadable[provider], []).append(parent.key)
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
    for why, keys in waiting.items():  # each keeps the reason it waits
        store.note_waiting(keys, why)
        report.retry_later += len(keys)


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
