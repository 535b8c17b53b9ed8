"""Who gets email, and how engaged they are, for the SendGrid and Mailchimp emulators' seeds.

Recipients are the synthetic org's contacts (or one admin address per account when the org
has no related records), plus a few addresses at free-mail and at unknown company domains —
the ones identity resolution must leave unmatched. Engagement follows the account's
archetype: healthy customers open and click more; churning ones open little, bounce and
unsubscribe more.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sandbox.synthetic import SyntheticOrg


@dataclass(frozen=True)
class Engagement:
    open: float
    click: float  # of the opened
    bounce: float
    unsubscribe: float


PROFILES = {
    "healthy": Engagement(0.55, 0.30, 0.005, 0.003),
    "new_healthy": Engagement(0.60, 0.35, 0.005, 0.002),
    "declining": Engagement(0.30, 0.15, 0.02, 0.01),
    "stuck_onboarding": Engagement(0.20, 0.10, 0.02, 0.01),
    "about_to_churn": Engagement(0.10, 0.05, 0.05, 0.04),
}
OUTSIDERS = Engagement(0.25, 0.10, 0.03, 0.02)
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com")
UNKNOWN_DOMAINS = ("unknown-partner.example.org", "reseller-one.example.net")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    engagement: Engagement
    account: str | None  # account Name, None for outsiders


def recipients(org: SyntheticOrg, rng: random.Random) -> list[Recipient]:
    """Every account's contacts (engaged per archetype) plus free-mail and unknown ones."""
    out: list[Recipient] = []
    by_index: dict[int, list[dict[str, Any]]] = {}
    for contact in org.contacts:
        by_index.setdefault(int(contact["AccountIndex"]), []).append(contact)
    for index, account in enumerate(org.accounts):
        profile = PROFILES.get(org.archetypes.get(account["Name"], "healthy"), OUTSIDERS)
        contacts = by_index.get(index) or [
            {
                "Email": "admin@" + str(account["Website"]).split("://", 1)[-1].split("/")[0],
                "FirstName": "Admin",
                "LastName": str(account["Name"]),
            }
        ]
        for c in contacts:
            out.append(
                Recipient(
                    str(c["Email"]).lower(),
                    f"{c.get('FirstName', '')} {c.get('LastName', '')}".strip(),
                    profile,
                    account["Name"],
                )
            )
    extra = max(3, len(org.accounts) // 50)
    for n in range(extra):
        domain = (
            FREE_MAIL[n % len(FREE_MAIL)]
            if n % 2 == 0
            else UNKNOWN_DOMAINS[n % len(UNKNOWN_DOMAINS)]
        )
        out.append(
            Recipient(f"reader{n}.{rng.randrange(10_000)}@{domain}", f"Reader {n}", OUTSIDERS, None)
        )
    return out
