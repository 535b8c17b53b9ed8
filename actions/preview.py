"""What ``healthscore actions`` would deliver — read from the store alone, no vendor request.

Email intents are shown with the contacts they would go to (and the ones that would be skipped,
with the reason known locally: CRM opt-out, the local suppression list, the frequency cap; a
provider's own unsubscribe list is only read when sending).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actions.delivery_intake import period_of, skip_reason
from actions.email import account_contacts, in_roles
from actions.rule_model import ActionSettings
from store import Store

SHOWN = ("slack", "digest", "task", "email", "email_send")


@dataclass(frozen=True)
class Planned:
    key: str
    kind: str
    rule: str
    account: str
    target: str
    why: str


def plan(
    store: Store, settings: ActionSettings, now: datetime, intents: Sequence[Any] | None = None
) -> list[Planned]:
    """Pending intents (or ``intents`` — e.g. a rule preview) with their recipients."""
    pending = [
        a
        for a in (store.actions(status="pending") if intents is None else intents)
        if a.kind in SHOWN
    ]
    contacts = account_contacts(store, {a.account_id for a in pending if a.kind == "email"})
    sent_to = store.target_counts("email_send", now - settings.email.cap_window)
    out = []
    for a in pending:
        name = str(a.payload.get("name") or a.account_id)
        why = str(a.payload.get("why") or "")
        if a.kind == "email":
            spec = a.payload["email"]
            provider = spec.get("provider") or settings.email.provider
            chosen = [c for c in contacts.get(a.account_id, []) if in_roles(c, spec["roles"])]
            if not chosen:
                out.append(
                    Planned(
                        a.key,
                        "email",
                        a.rule,
                        name,
                        "(no contact in roles " + ", ".join(spec["roles"]) + ")",
                        why,
                    )
                )
            for c in chosen:
                reason = skip_reason(c, settings.email, provider, set(), sent_to.get(c.email, 0))
                step = f" step day {spec['step']}" if spec.get("step") is not None else ""
                out.append(
                    Planned(
                        f"{a.key}:{c.id}",
                        f"email ({provider}{step})",
                        a.rule,
                        name,
                        f"{c.email} ({c.role})" + (f" — SKIP: {reason}" if reason else ""),
                        why,
                    )
                )
        elif a.kind == "digest":
            period = period_of(str(a.payload.get("digest")), now)
            out.append(Planned(a.key, f"digest ({period})", a.rule, name, a.target or "", why))
        elif a.kind == "task":
            out.append(Planned(a.key, "task", a.rule, name, f"owner {a.target or '?'}", why))
        else:
            target = a.target or ""
            if a.payload.get("digest") is True:
                name = f"{len(a.payload.get('items', []))} accounts"
                why = f"digest {a.payload.get('period')}"
            out.append(Planned(a.key, a.kind, a.rule, name, target, why))
    return out
