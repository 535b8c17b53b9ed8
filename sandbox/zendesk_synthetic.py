"""A Zendesk desk made from a :class:`~sandbox.synthetic.SyntheticOrg`.

One organization per account (every other one carrying the Salesforce account id as
``external_id``, the rest found by domain), plus two organizations no account owns. Tickets
follow the account's archetype: troubled accounts (declining, about to churn) have more
tickets, urgent open ones, reopens, a few topics that keep coming back and worse CSAT.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.hubspot_synthetic import domain_from
from sandbox.synthetic import SyntheticOrg


@dataclass(frozen=True)
class Profile:
    tickets: tuple[int, int]  # over the last 180 days
    urgent_open: tuple[int, int]
    reopen: float  # share of tickets reopened at least once
    topics: int  # how many distinct topics the account's tickets are about
    recent_days: int  # tickets fall mostly in this many recent days
    rated: float  # share of solved tickets rated
    good: float  # share of ratings that are good


PROFILES = {
    "healthy": Profile((1, 4), (0, 0), 0.03, 12, 180, 0.5, 0.92),
    "new_healthy": Profile((1, 3), (0, 0), 0.03, 12, 60, 0.5, 0.9),
    "stuck_onboarding": Profile((2, 6), (0, 1), 0.10, 3, 60, 0.5, 0.7),
    "declining": Profile((4, 9), (0, 2), 0.25, 4, 60, 0.6, 0.55),
    "about_to_churn": Profile((6, 12), (1, 3), 0.35, 3, 45, 0.7, 0.3),
}
TOPICS = (
    ("Export to CSV fails", "topic_export"),
    ("SSO login loop", "topic_sso"),
    ("Dashboard loads slowly", "topic_performance"),
    ("Invoice shows wrong seats", "topic_billing"),
    ("API returns 500 on sync", "topic_api"),
    ("Cannot invite new members", "topic_invites"),
    ("Onboarding checklist stuck", "topic_onboarding"),
    ("Data import incomplete", "topic_import"),
    ("Email notifications missing", "topic_notifications"),
    ("Report totals do not match", "topic_reports"),
    ("Permissions for admins", "topic_permissions"),
    ("Mobile app crashes", "topic_mobile"),
    ("How do I set up webhooks?", "topic_webhooks"),
    ("Password reset link expired", "topic_login"),
)
ONBOARDING = (6, 7, 5)  # onboarding, import, invites: what stuck accounts ask about
UNMATCHED = (("Initech (trial)", ["initech.example"]), ("Freelance helpdesk", []))


@dataclass
class TicketSpec:
    account: int  # index into org.accounts; -1 for the unmatched organizations
    subject: str
    tags: list[str]
    status: str
    priority: str
    type: str
    created: datetime
    updated: datetime
    reopens: int
    rating: tuple[str, datetime] | None


def organization_specs(
    org: SyntheticOrg, account_ids: Sequence[str] | None
) -> list[dict[str, Any]]:
    """One organization per account, in account order, then the two unmatched ones."""
    out = []
    for i, account in enumerate(org.accounts):
        external = account_ids[i] if account_ids is not None and i % 2 == 0 else None
        tier = str(account.get("Plan_Tier__c") or "").lower()
        out.append(
            {
                "name": account["Name"],
                "external_id": external,
                "domain_names": [domain_from(account.get("Website"), account["Name"])],
                "tags": [tier] if tier else [],
            }
        )
    out += [{"name": n, "external_id": None, "domain_names": d, "tags": []} for n, d in UNMATCHED]
    return out


def _tenure(account: dict[str, Any], now: datetime) -> int:
    since = account.get("Customer_Since__c")
    if since is None:
        return 180
    return max(2, min(180, (now.date() - since).days))


def ticket_specs(org: SyntheticOrg, now: datetime, seed: int = 7) -> list[TicketSpec]:
    """Every account's tickets (archetype-shaped), then a few on the unmatched orgs."""
    rng = random.Random(seed)
    latest = now - timedelta(minutes=5)  # all visible to the export (older than a minute)
    out: list[TicketSpec] = []
    for i, account in enumerate(org.accounts):
        kind = org.archetypes.get(account["Name"], "healthy")
        p = PROFILES.get(kind, PROFILES["healthy"])
        tenure = _tenure(account, now)
        pool = (
            ONBOARDING
            if kind == "stuck_onboarding"
            else tuple(rng.sample(range(len(TOPICS)), min(p.topics, len(TOPICS))))
        )
        urgent = rng.randint(*p.urgent_open)
        for n in range(rng.randint(*p.tickets)):
            window = min(tenure, p.recent_days if rng.random() < 0.8 else 180)
            age = timedelta(days=rng.uniform(0.2, window), minutes=10)
            created = max(now - age, now - timedelta(days=tenure))
            subject, tag = TOPICS[rng.choice(pool)]
            if n < urgent:
                created = now - timedelta(days=rng.uniform(0.5, min(20, tenure)))
                status, priority = rng.choice(("open", "pending")), "urgent"
            elif now - created < timedelta(days=7):
                status = rng.choice(("new", "open", "pending", "solved"))
                priority = rng.choice(("low", "normal", "normal", "high"))
            else:
                status = rng.choice(("solved", "closed", "closed"))
                priority = rng.choice(("low", "normal", "normal", "high"))
            updated = min(latest, created + timedelta(hours=rng.uniform(1, 24 * 10)))
            reopens = rng.choice((1, 1, 2)) if rng.random() < p.reopen else 0
            rating = None
            if status in ("solved", "closed") and rng.random() < p.rated:
                rated_at = min(latest, updated + timedelta(hours=rng.uniform(1, 48)))
                rating = ("good" if rng.random() < p.good else "bad", rated_at)
                updated = rated_at  # a rating is an update of the ticket
            prefix = rng.choice(("", "", "", "Re: "))
            out.append(
                TicketSpec(
                    i,
                    prefix + subject,
                    [tag, kind.split("_")[0]],
                    status,
                    priority,
                    rng.choice(("question", "incident", "problem")),
                    created,
                    updated,
                    reopens,
                    rating,
                )
            )
    for _ in range(3):
        created = now - timedelta(days=rng.uniform(1, 60))
        out.append(
            TicketSpec(
                -1,
                "Trial question",
                [],
                "solved",
                "low",
                "question",
                created,
                min(latest, created + timedelta(hours=2)),
                0,
                None,
            )
        )
    return out
