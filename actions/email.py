"""Tech-touch email: who receives it and through which provider's sender.

Recipients are the account's CRM contacts in the action's roles (each CRM package says how its
contact records read: role, title, opt-out), minus anyone unsubscribed: the CRM's opt-out
flag, the local suppression list, and the provider's own lists (read once per delivery run, or
answered per recipient at send time). A per-contact frequency cap is counted from the action
log.

No provider can be asked "did you already send the message with key K?" on its send API (the
activity searches are paid add-ons, and custom arguments are not searchable) — so email is
*at most once*: the per-contact intent (key ``rule:account:episode[:dN]:email:contact``)
is stored before the request, and an outcome we could not see stays ``unknown``, never re-sent.
Batched, the same holds per email: a request that was lost leaves every email in it
``unknown``; an email the provider refused inside an accepted batch fails (or is skipped) alone.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from connectors.contract import SyncContext
from connectors.outbound import Contact, Outcome, OutgoingEmail
from connectors.registry import crms
from connectors.registry import email_senders as registry_senders
from store import Store

log = logging.getLogger(__name__)


def account_contacts(store: Store, account_ids: Iterable[str]) -> dict[str, list[Contact]]:
    """Each account's contacts from every CRM that keeps them (one per address; the first
    CRM's identity, an opt-out in any of them wins)."""
    ids = list(account_ids)
    out: dict[str, dict[str, Contact]] = {a: {} for a in ids}
    for crm in crms():
        if crm.contacts is None:
            continue
        obj, parse = crm.contacts
        for account_id, records in store.source_records(crm.name, obj, ids).items():
            for record in records:
                contact = parse(record)
                if contact is None:
                    continue
                held = out[account_id].get(contact.email)
                if held is not None:
                    contact = replace(held, opted_out=held.opted_out or contact.opted_out)
                out[account_id][contact.email] = contact
    return {a: sorted(c.values(), key=lambda c: c.email) for a, c in out.items()}


def in_roles(contact: Contact, roles: list[str]) -> bool:
    """A role matches the CRM role exactly, or appears in the title (case-insensitive)."""
    have = contact.role.casefold()
    return any(r.casefold() == have or r.casefold() in have for r in roles)


def locally_suppressed(email: str, suppressed: Iterable[str]) -> bool:
    domain = "@" + email.rsplit("@", 1)[-1]
    return any(s.lower() in (email, domain) for s in suppressed)


class EmailSender(Protocol):
    """A provider's sender. ``send_batch`` delivers up to ``batch_size`` emails sharing a
    ``batch_key`` (what the provider takes once a request, e.g. the template) in one request
    and answers an outcome per intent key (see ``connectors.outbound``)."""

    provider: str
    batch_size: int

    def suppressed(self) -> set[str]: ...

    def batch_key(self, email: OutgoingEmail) -> Hashable: ...

    def send_batch(self, emails: list[OutgoingEmail]) -> dict[str, Outcome]: ...

    def send(
        self,
        *,
        to: Contact,
        template: str,
        data: dict[str, Any],
        key: str,
        account_id: str,
        subject: str | None,
    ) -> str: ...


def email_senders(ctx: SyncContext, email: Any) -> dict[str, EmailSender]:
    """A sender per provider whose API key is set, each on the context's client for its
    vendor (the one the pulls use)."""
    common = {
        "from_email": email.from_email,
        "from_name": email.from_name,
        "categories": email.categories,
    }
    senders: dict[str, EmailSender] = {}
    for provider, make in registry_senders():
        sender = make(ctx, email, common)
        if sender is not None:
            senders[provider] = sender
    return senders
