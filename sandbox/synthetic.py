"""Deterministic synthetic Salesforce org: CSM users and accounts with believable archetypes.

Each account gets an archetype (``healthy``, ``declining``, ``stuck_onboarding``,
``about_to_churn``, ``new_healthy``) and internally consistent usage, support and relationship
fields, so a health score computed from them should reproduce the archetype.

Related records (Contacts, Opportunities, Cases, Tasks, Events) are drawn from a separate random
stream after the accounts, so the accounts of a seed are the same with or without them.  They
agree with their account: the open renewal closes on ``Renewal_Date__c``, the open cases and
urgent open cases match ``Open_Cases__c``/``Urgent_Open_Cases__c`` (at least as many open
cases as urgent ones), the latest completed CSM
task is on ``Last_CSM_Touch_Date__c`` and there are ``Exec_Sponsor_Meetings_90d__c`` executive
sponsor meetings in the last 90 days.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.salesforce_schema import INDUSTRY_VALUES

EMAIL_DOMAIN = "healthscore-demo.test"
ARCHETYPE_SHARES: dict[str, float] = {
    "healthy": 0.50,
    "declining": 0.18,
    "stuck_onboarding": 0.12,
    "about_to_churn": 0.12,
    "new_healthy": 0.08,
}
HOSTILE_NAMES: tuple[str, ...] = (
    "Smith & Sons <Ltd>",
    'O\'Reilly "Quoted" Media',
    "<!channel> Alerts Inc",
    "Back\\Slash Labs",
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Probability of a missing NPS per archetype (~5 % overall).
_NPS_MISSING = {
    "healthy": 0.02,
    "declining": 0.02,
    "stuck_onboarding": 0.12,
    "about_to_churn": 0.12,
    "new_healthy": 0.08,
}

_FIRST = _words(
    "Avery Blake Casey Dana Elliot Frankie Gale Harper Indra Jordan Kim Logan Morgan Noor Olive "
    "Parker Quinn Riley Sasha Taylor Uma Val Wren Yael Zoe Amara Bruno Chen Dmitri Esme Farah "
    "Gustav Hana Ines Jonas Kofi Lena Mateo Nadia Omar Priya Rafael Sofia Tomas Ulla Vikram Wei "
    "Ximena Yusuf Zara"
)
_LAST = _words(
    "Lee Garcia Novak Okafor Patel Rossi Schmidt Tanaka Umar Varga Walsh Xu Yamamoto Zhang "
    "Andersen Bianchi Costa Dubois Eriksen Fischer Gomez Haddad Ivanova Jensen Kowalski Larsen "
    "Moreau Nakamura Oliveira Petrov Quist Ramos Silva Torres Ueda Vargas Weber Young Ziegler "
    "Abbott Brennan Castillo Delgado Evans Flores Grant Hughes Ito Jansen Kaur"
)
_WORD_A = _words(
    "Blue Silver Iron Bright North Swift Clear Red Golden Quiet Bold Green Summit Cedar Granite "
    "Harbor Maple Nimbus Orbit Pine Quartz River Stone Terra Union Vertex West Willow Zenith "
    "Apex Beacon Cobalt Delta Echo Falcon Glacier Horizon Indigo Juniper Keystone Lumen Meridian "
    "Nova Oak Pioneer Prairie Radiant Sierra Tidal Upland Vista Aurora Birch Crest Dune Ember "
    "Fjord Grove Helix"
)
_WORD_B = _words(
    "Analytics Bridge Cloud Data Dynamics Edge Forge Foundry Gate Grid Harbor Hub Insight Labs "
    "Leaf Line Link Logic Loop Mark Mesh Mill Mind Motion Net Path Peak Point Pulse Range Ridge "
    "Scale Signal Source Span Sphere Spring Stack Stream Track Trail Vault Ventures View Wave "
    "Works Yard Field Flow Frame Gear Haven Key Lane Lens Matrix Metric Nest"
)
_SUFFIX = (
    "Inc", "LLC", "Ltd", "Group", "Corp", "Co", "Systems", "Technologies", "Partners", "Holdings",
    "Solutions", "Software", "Networks", "Health", "Logistics", "Media", "GmbH", "AG", "SA", "BV",
)  # fmt: skip
_REGIONS = ("EMEA", "APAC", "Americas", "Nordics", "DACH", "UK", "LATAM", "ANZ")
_TIERS = (("Starter", 0.40, 5, 40), ("Growth", 0.40, 40, 250), ("Enterprise", 0.20, 250, 3000))


@dataclass
class SyntheticOrg:
    """Users (CSM owners) and accounts in Salesforce field names, plus each account's archetype.

    The related lists hold Salesforce field names plus pseudo-fields that
    :meth:`SalesforceEmulator.seed <sandbox.salesforce.SalesforceEmulator.seed>` resolves:
    ``AccountIndex`` (index into ``accounts``; becomes ``AccountId``, or ``WhatId`` on Tasks and
    Events), ``ContactIndex`` (index into ``contacts``; ``ContactId`` on Cases, ``WhoId`` on
    activities) and ``OwnerEmail`` (``OwnerId``).
    """

    users: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    archetypes: dict[str, str] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def related(self, account_index: int) -> dict[str, list[dict[str, Any]]]:
        """The related records of one account, per list name."""
        lists = {
            "contacts": self.contacts,
            "opportunities": self.opportunities,
            "cases": self.cases,
            "tasks": self.tasks,
            "events": self.events,
        }
        return {
            name: [r for r in rows if r.get("AccountIndex") == account_index]
            for name, rows in lists.items()
        }


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "account"


def _quotas(n: int) -> list[str]:
    """Exact archetype counts for n accounts (largest remainder), unshuffled."""
    raw = {k: n * share for k, share in ARCHETYPE_SHARES.items()}
    counts = {k: int(v) for k, v in raw.items()}
    leftovers = sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)
    for key in leftovers[: n - sum(counts.values())]:
        counts[key] += 1
    return [k for k, c in counts.items() for _ in range(c)]


def _users(rng: random.Random, count: int) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(users) < count:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = f"{first}.{last}".lower()
        suffix = 2
        while local in seen:
            local = f"{first}.{last}{suffix}".lower()
            suffix += 1
        seen.add(local)
        email = f"{local}@{EMAIL_DOMAIN}"
        users.append(
            {
                "Name": f"{first} {last}",
                "Email": email,
                "Username": f"{email}.sandbox",
                "IsActive": True,
            }
        )
    return users


def _company_name(rng: random.Random, taken: set[str]) -> str:
    for _ in range(6):
        a, b, s = rng.choice(_WORD_A), rng.choice(_WORD_B), rng.choice(_SUFFIX)
        style = rng.random()
        if style < 0.45:
            name = f"{a} {b} {s}"
        elif style < 0.8:
            name = f"{a}{b.lower()} {s}"
        else:
            name = f"{a} & {rng.choice(_WORD_A)} {s}"
        if name not in taken:
            return name
    base = f"{rng.choice(_WORD_A)} {rng.choice(_WORD_B)} {rng.choice(_SUFFIX)}"
    name = f"{base} ({rng.choice(_REGIONS)})"
    counter = 2
    while name in taken:
        name = f"{base} {counter}"
        counter += 1
    return name


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class _AccountFactory:
    """Builds the field values of one account for a given archetype."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today

    def ago(self, lo: int, hi: int) -> date:
        return self.today - timedelta(days=self.rng.randint(lo, hi))

    def build(self, name: str, archetype: str, owner_email: str) -> dict[str, Any]:
        rng, today = self.rng, self.today
        tier, _, lo, hi = rng.choices(_TIERS, weights=[t[1] for t in _TIERS])[0]
        seats = rng.randint(lo, hi)
        new = archetype in ("stuck_onboarding", "new_healthy")
        if new:
            since = self.ago(14, 89)
            renewal = _add_years(since, 1)
        else:
            lead = rng.randint(7, 60) if archetype == "about_to_churn" else rng.randint(1, 365)
            renewal = today + timedelta(days=lead)
            years = rng.randint(1, 5)
            since = _add_years(renewal, -years)
            while (today - since).days < 120:
                years += 1
                since = _add_years(renewal, -years)
        values = getattr(self, f"_{archetype}")(seats, since)
        nps = values.pop("nps")
        if rng.random() < _NPS_MISSING[archetype]:
            nps = None
        return {
            "Name": name,
            "Website": f"https://{_slug(name)}.example.com",
            "Industry": rng.choice(INDUSTRY_VALUES),
            "NumberOfEmployees": int(seats * rng.uniform(1.2, 6.0)) + 1,
            "OwnerEmail": owner_email,
            "ARR__c": float(round(seats * rng.uniform(600, 1200), -2)),
            "Plan_Tier__c": tier,
            "Customer_Since__c": since,
            "Renewal_Date__c": renewal,
            "Licensed_Seats__c": float(seats),
            "NPS_Score__c": None if nps is None else float(nps),
            **values,
        }

    def _usage(
        self, seats: int, band: tuple[float, float], per_user: float, trend: float
    ) -> tuple[float, float, float]:
        """Active users within the utilisation ``band``, logins now and in the prior period."""
        lo, hi = band
        active = round(seats * self.rng.uniform(lo, hi))
        floor, ceiling = math.ceil(seats * lo), math.floor(seats * hi)
        if floor <= ceiling:
            active = min(max(active, floor), ceiling)
        active = max(1, active)
        logins = max(1, round(active * per_user))
        previous = max(0, round(logins / trend))
        return float(active), float(logins), float(previous)

    def _healthy(self, seats: int, since: date) -> dict[str, Any]:
        rng = self.rng
        active, logins, prev = self._usage(
            seats, (0.70, 1.0), rng.uniform(10, 22), rng.uniform(0.97, 1.25)
        )
        return {
            "Active_Users_30d__c": active,
            "Logins_30d__c": logins,
            "Logins_Prev_30d__c": prev,
            "Feature_Adoption__c": round(rng.uniform(55, 95), 1),
            "Last_Login_Date__c": self.ago(0, 3),
            "Onboarding_Complete__c": True,
            "Open_Cases__c": float(rng.randint(0, 3)),
            "Urgent_Open_Cases__c": 0.0,
            "nps": rng.randint(8, 10),
            "Last_CSM_Touch_Date__c": self.ago(2, 30),
            "Exec_Sponsor_Meetings_90d__c": float(rng.randint(1, 4)),
        }

    def _declining(self, seats: int, since: date) -> dict[str, Any]:
        rng = self.rng
        active, logins, prev = self._usage(
            seats, (0.35, 0.60), rng.uniform(6, 14), rng.uniform(0.40, 0.70)
        )
        open_cases = rng.randint(3, 10)
        return {
            "Active_Users_30d__c": active,
            "Logins_30d__c": logins,
            "Logins_Prev_30d__c": prev,
            "Feature_Adoption__c": round(rng.uniform(25, 55), 1),
            "Last_Login_Date__c": self.ago(1, 10),
            "Onboarding_Complete__c": True,
            "Open_Cases__c": float(open_cases),
            "Urgent_Open_Cases__c": float(rng.randint(0, min(2, open_cases))),
            "nps": rng.randint(5, 7),
            "Last_CSM_Touch_Date__c": self.ago(20, 60),
            "Exec_Sponsor_Meetings_90d__c": float(rng.randint(0, 1)),
        }

    def _stuck_onboarding(self, seats: int, since: date) -> dict[str, Any]:
        rng = self.rng
        tenure = (self.today - since).days
        active, logins, prev = self._usage(
            seats, (0.05, 0.30), rng.uniform(1, 4), rng.uniform(0.7, 1.2)
        )
        if tenure < 30:
            prev = 0.0
        return {
            "Active_Users_30d__c": active,
            "Logins_30d__c": logins,
            "Logins_Prev_30d__c": prev,
            "Feature_Adoption__c": round(rng.uniform(3, 25), 1),
            "Last_Login_Date__c": self.ago(3, min(25, tenure)),
            "Onboarding_Complete__c": False,
            "Open_Cases__c": float(rng.randint(0, 3)),
            "Urgent_Open_Cases__c": float(rng.randint(0, 1)),
            "nps": rng.randint(4, 8),
            "Last_CSM_Touch_Date__c": self.ago(5, min(40, tenure)),
            "Exec_Sponsor_Meetings_90d__c": float(rng.randint(0, 1)),
        }

    def _about_to_churn(self, seats: int, since: date) -> dict[str, Any]:
        rng = self.rng
        active, logins, prev = self._usage(
            seats, (0.03, 0.24), rng.uniform(1, 5), rng.uniform(0.1, 0.5)
        )
        urgent = rng.randint(1, 4)
        return {
            "Active_Users_30d__c": active,
            "Logins_30d__c": logins,
            "Logins_Prev_30d__c": prev,
            "Feature_Adoption__c": round(rng.uniform(3, 30), 1),
            "Last_Login_Date__c": self.ago(30, 90),
            "Onboarding_Complete__c": True,
            "Open_Cases__c": float(urgent + rng.randint(2, 10)),
            "Urgent_Open_Cases__c": float(urgent),
            "nps": rng.randint(0, 4),
            "Last_CSM_Touch_Date__c": self.ago(60, 200),
            "Exec_Sponsor_Meetings_90d__c": 0.0,
        }

    def _new_healthy(self, seats: int, since: date) -> dict[str, Any]:
        rng = self.rng
        tenure = (self.today - since).days
        active, logins, prev = self._usage(
            seats, (0.60, 0.95), rng.uniform(8, 18), rng.uniform(1.1, 2.0)
        )
        if tenure < 30:
            prev = 0.0
        return {
            "Active_Users_30d__c": active,
            "Logins_30d__c": logins,
            "Logins_Prev_30d__c": prev,
            "Feature_Adoption__c": round(rng.uniform(40, 80), 1),
            "Last_Login_Date__c": self.ago(0, 3),
            "Onboarding_Complete__c": True,
            "Open_Cases__c": float(rng.randint(0, 2)),
            "Urgent_Open_Cases__c": 0.0,
            "nps": rng.randint(8, 10),
            "Last_CSM_Touch_Date__c": self.ago(1, min(20, tenure)),
            "Exec_Sponsor_Meetings_90d__c": float(rng.randint(1, 3)),
        }


def generate_org(
    n_accounts: int, seed: int = 42, now: datetime | None = None, *, related: bool = True
) -> SyntheticOrg:
    """Build a deterministic org of ``n_accounts`` accounts (same seed + day -> same org).

    ``now`` defaults to the current UTC time; only its date is used, so all dates are relative
    to "today" (renewals in the next 12 months, recent logins, ...).  ``related=False`` leaves
    the Contact/Opportunity/Case/Task/Event lists empty (the users and accounts are identical).
    """
    if n_accounts < 0:
        raise ValueError("n_accounts must be >= 0")
    rng = random.Random(seed)
    today = (now or datetime.now(UTC)).date()
    users = _users(rng, max(3, n_accounts // 60))
    archetypes = _quotas(n_accounts)
    rng.shuffle(archetypes)
    factory = _AccountFactory(rng, today)
    taken: set[str] = set()
    org = SyntheticOrg(users=users)
    for index, archetype in enumerate(archetypes):
        if n_accounts >= 20 and index < len(HOSTILE_NAMES):
            name = HOSTILE_NAMES[index]
        else:
            name = _company_name(rng, taken)
        taken.add(name)
        owner = rng.choice(users)["Email"]
        org.accounts.append(factory.build(name, archetype, owner))
        org.archetypes[name] = archetype
    if related:
        _RelatedFactory(random.Random(f"healthscore-related:{seed}"), today).build(org)
    return org


# ---------------------------------------------------------------------------- related records

_TITLES: dict[str, tuple[str, ...]] = {
    "Admin": ("IT Administrator", "Systems Administrator", "Platform Admin", "IT Manager"),
    "Champion": ("Operations Manager", "Head of Operations", "Team Lead", "Program Manager"),
    "Executive Sponsor": ("VP Operations", "Chief Operating Officer", "CTO", "CFO", "SVP Sales"),
    "User": ("Analyst", "Coordinator", "Specialist", "Account Manager", "Engineer"),
}
_EARLY_STAGES = ("Prospecting", "Qualification", "Needs Analysis")
_MID_STAGES = ("Value Proposition", "Perception Analysis", "Id. Decision Makers")
_CASE_SUBJECTS: dict[str, tuple[str, ...]] = {
    "Problem": (
        "Dashboard fails to load",
        "Sync job stuck for hours",
        "Export returns an error",
        "Users cannot log in with SSO",
        "Report totals look wrong",
        "API requests time out",
    ),
    "Question": (
        "How to add more seats",
        "Question about permissions",
        "How do we configure alerts",
        "Where to find usage reports",
    ),
    "Feature Request": ("Request: bulk edit", "Request: custom fields on reports"),
    "Billing": ("Invoice does not match contract", "Update billing contact"),
}
_TASK_SUBJECTS: dict[str, tuple[str, ...]] = {
    "healthy": ("Check-in call", "Usage review", "QBR follow-up", "Expansion discussion"),
    "new_healthy": ("Onboarding check-in", "Training follow-up", "Check-in call"),
    "stuck_onboarding": ("Onboarding check-in", "Setup help", "Re-engage admin"),
    "declining": ("Usage review", "Check-in call", "Escalation follow-up", "Renewal prep"),
    "about_to_churn": ("Escalation follow-up", "Renewal risk call", "Executive outreach"),
}


def _domain(account: dict[str, Any]) -> str:
    website = str(account.get("Website") or "")
    host = website.split("://", 1)[-1].split("/", 1)[0]
    return host or f"{_slug(str(account['Name']))}.example.com"


class _RelatedFactory:
    """Contacts, Opportunities, Cases, Tasks and Events that agree with each account."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today

    def at(self, day: date, first_hour: int = 8, last_hour: int = 17) -> datetime:
        """A datetime on ``day`` during office hours (UTC, second resolution)."""
        seconds = first_hour * 3600 + self.rng.randrange((last_hour - first_hour + 1) * 3600)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)

    def days_ago(self, lo: int, hi: int) -> date:
        return self.today - timedelta(days=self.rng.randint(lo, max(lo, hi)))

    def build(self, org: SyntheticOrg) -> None:
        for index, account in enumerate(org.accounts):
            kind = org.archetypes[account["Name"]]
            contacts = self.contacts(index, account, kind)
            first_contact = len(org.contacts)
            org.contacts.extend(contacts)
            contact_ids = list(range(first_contact, len(org.contacts)))
            org.opportunities.extend(self.opportunities(index, account, kind))
            org.cases.extend(self.cases(index, account, kind, contact_ids))
            org.tasks.extend(self.tasks(index, account, kind, contact_ids))
            sponsor = next(
                (
                    ci
                    for ci, c in zip(contact_ids, contacts, strict=True)
                    if c["Role__c"] == "Executive Sponsor"
                ),
                None,
            )
            org.events.extend(self.events(index, account, kind, contact_ids, sponsor))

    # ------------------------------------------------------------------ contacts
    def contacts(self, index: int, account: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        rng = self.rng
        enterprise = account["Plan_Tier__c"] == "Enterprise"
        roles = ["Admin"]
        if account["Exec_Sponsor_Meetings_90d__c"] or (kind == "healthy" and enterprise):
            roles.append("Executive Sponsor")
        if kind in ("healthy", "new_healthy", "stuck_onboarding") or (
            kind == "declining" and rng.random() < 0.6
        ):
            roles.append("Champion")
        lo, hi = (2, 4) if kind in ("healthy", "new_healthy") else (1, 3)
        count = min(4, max(len(roles), rng.randint(lo, hi) + (1 if enterprise else 0)))
        roles += ["User"] * (count - len(roles))
        domain = _domain(account)
        seen: set[str] = set()
        out = []
        for role in roles:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            local = f"{first}.{last}".lower()
            suffix = 2
            while local in seen:
                local = f"{first}.{last}{suffix}".lower()
                suffix += 1
            seen.add(local)
            out.append(
                {
                    "AccountIndex": index,
                    "FirstName": first,
                    "LastName": last,
                    "Email": f"{local}@{domain}",
                    "Title": rng.choice(_TITLES[role]),
                    "Role__c": role,
                    "HasOptedOutOfEmail": rng.random() < 0.07,
                    "OwnerEmail": account["OwnerEmail"],
                }
            )
        return out

    # ------------------------------------------------------------------ opportunities
    def _opportunity(
        self,
        index: int,
        account: dict[str, Any],
        label: str,
        kind: str,
        stage: str,
        close: date,
        amount: float,
    ) -> dict[str, Any]:
        created_day = min(close - timedelta(days=self.rng.randint(20, 120)), self.today)
        created_day = min(created_day, self.today - timedelta(days=1))
        return {
            "AccountIndex": index,
            "Name": f"{account['Name']} - {label}",
            "Type": kind,
            "StageName": stage,
            "CloseDate": close,
            "Amount": amount,
            "ARR__c": amount if kind in ("New Business", "Renewal") else None,
            "IsClosed": stage in ("Closed Won", "Closed Lost"),
            "IsWon": stage == "Closed Won",
            "OwnerEmail": account["OwnerEmail"],
            "CreatedDate": self.at(created_day),
        }

    def opportunities(self, index: int, account: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        rng, today = self.rng, self.today
        arr = float(account["ARR__c"])
        since: date = account["Customer_Since__c"]
        renewal: date = account["Renewal_Date__c"]
        out = [
            self._opportunity(
                index,
                account,
                "New Business",
                "New Business",
                "Closed Won",
                since,
                float(round(arr * rng.uniform(0.6, 1.0), -2)),
            )
        ]
        past = []
        years = 1
        while _add_years(renewal, -years) > since and years <= 2:
            past.append(_add_years(renewal, -years))
            years += 1
        for day in reversed(past):
            amount = float(round(arr * rng.uniform(0.85, 1.0), -2))
            out.append(
                self._opportunity(
                    index, account, f"Renewal {day.year}", "Renewal", "Closed Won", day, amount
                )
            )
        lead = (renewal - today).days
        label = f"Renewal {renewal.year}"
        if kind == "about_to_churn" and rng.random() < 0.35:
            lost_on = self.days_ago(2, 45)
            out.append(
                self._opportunity(index, account, label, "Renewal", "Closed Lost", lost_on, arr)
            )
        else:
            if kind == "about_to_churn":
                stage = rng.choice(("Needs Analysis", "Perception Analysis", "Negotiation/Review"))
            elif lead <= 30:
                stage = "Negotiation/Review"
            elif lead <= 90:
                stage = "Proposal/Price Quote"
            elif lead <= 180:
                stage = rng.choice(_MID_STAGES)
            else:
                stage = rng.choice(_EARLY_STAGES)
            uplift = {"healthy": (1.0, 1.15), "declining": (0.8, 1.0)}.get(kind, (0.95, 1.05))
            amount = float(round(arr * rng.uniform(*uplift), -2))
            out.append(self._opportunity(index, account, label, "Renewal", stage, renewal, amount))
        tenure = (today - since).days
        if kind == "healthy":
            for n in range(rng.randint(1, 2)):
                close = self.days_ago(10, min(330, tenure - 1))
                kind_name = rng.choice(("Expansion", "Upsell"))
                amount = float(round(arr * rng.uniform(0.05, 0.3), -2)) or 100.0
                out.append(
                    self._opportunity(
                        index, account, f"{kind_name} {n + 1}", kind_name, "Closed Won", close,
                        amount,
                    )
                )  # fmt: skip
            if rng.random() < 0.3:
                close = today + timedelta(days=rng.randint(15, 120))
                amount = float(round(arr * rng.uniform(0.1, 0.3), -2)) or 100.0
                stage = rng.choice(_MID_STAGES)
                out.append(
                    self._opportunity(
                        index, account, "Expansion", "Expansion", stage, close, amount
                    )
                )
        elif kind == "new_healthy" and rng.random() < 0.3:
            close = self.days_ago(1, max(1, tenure - 1))
            amount = float(round(arr * rng.uniform(0.05, 0.2), -2)) or 100.0
            out.append(
                self._opportunity(index, account, "Upsell", "Upsell", "Closed Won", close, amount)
            )
        elif kind == "declining" and rng.random() < 0.25:
            close = self.days_ago(15, min(200, tenure - 1))
            amount = float(round(arr * rng.uniform(0.1, 0.3), -2)) or 100.0
            out.append(
                self._opportunity(
                    index, account, "Expansion", "Expansion", "Closed Lost", close, amount
                )
            )
        return out

    # ------------------------------------------------------------------ cases
    def _case(
        self,
        index: int,
        account: dict[str, Any],
        contacts: list[int],
        priority: str,
        status: str,
        created: date,
    ) -> dict[str, Any]:
        rng = self.rng
        case_type = rng.choices(list(_CASE_SUBJECTS), weights=[6, 3, 1, 1])[0]
        created_at = self.at(created)
        closed_at = None
        if status == "Closed":
            days = rng.randint(0, 20)
            closed_day = min(created + timedelta(days=days), self.today - timedelta(days=1))
            closed_at = max(created_at, self.at(closed_day))
        return {
            "AccountIndex": index,
            "ContactIndex": rng.choice(contacts) if contacts else None,
            "Subject": rng.choice(_CASE_SUBJECTS[case_type]),
            "Type": case_type,
            "Status": status,
            "Priority": priority,
            "Origin": rng.choice(("Phone", "Email", "Web")),
            "IsClosed": status == "Closed",
            "CreatedDate": created_at,
            "ClosedDate": closed_at,
            "OwnerEmail": account["OwnerEmail"],
        }

    def cases(
        self, index: int, account: dict[str, Any], kind: str, contacts: list[int]
    ) -> list[dict[str, Any]]:
        rng = self.rng
        tenure = (self.today - account["Customer_Since__c"]).days
        urgent = int(account["Urgent_Open_Cases__c"] or 0)
        # A few stuck_onboarding accounts have an urgent case but Open_Cases__c = 0: the urgent
        # count wins (it is the stronger signal).
        open_cases = max(int(account["Open_Cases__c"] or 0), urgent)
        recent = {"declining": 30, "about_to_churn": 40}.get(kind, 25)
        out = []
        for n in range(open_cases):
            if n < urgent:
                weights = [3, 2] if kind == "about_to_churn" else [1, 3]
                priority = rng.choices(["Urgent", "High"], weights=weights)[0]
                status = rng.choice(("Escalated", "Working"))
            else:
                priority = rng.choice(("Low", "Medium", "Medium"))
                status = rng.choice(("New", "Working", "Working"))
            created = self.days_ago(1, min(recent, tenure - 1))
            out.append(self._case(index, account, contacts, priority, status, created))
        closed_counts = {
            "healthy": (0, 3),
            "new_healthy": (0, 2),
            "stuck_onboarding": (0, 2),
            "declining": (2, 5),
            "about_to_churn": (3, 6),
        }
        lo, hi = closed_counts[kind]
        troubled = kind in ("declining", "about_to_churn")
        for _ in range(rng.randint(lo, hi)):
            window = 60 if troubled else 300
            created = self.days_ago(2, min(window, tenure - 1))
            high = rng.random() < (0.4 if troubled else 0.1)
            priority = rng.choice(("High", "Urgent")) if high else rng.choice(("Low", "Medium"))
            out.append(self._case(index, account, contacts, priority, "Closed", created))
        return out

    # ------------------------------------------------------------------ activities
    def tasks(
        self, index: int, account: dict[str, Any], kind: str, contacts: list[int]
    ) -> list[dict[str, Any]]:
        rng, today = self.rng, self.today
        since: date = account["Customer_Since__c"]
        counts = {
            "healthy": (2, 4),
            "new_healthy": (2, 3),
            "declining": (1, 3),
            "stuck_onboarding": (1, 3),
            "about_to_churn": (1, 2),
        }
        day: date = account["Last_CSM_Touch_Date__c"]
        out = []
        for _ in range(rng.randint(*counts[kind])):
            if day < since or day >= today:
                break
            out.append(
                {
                    "AccountIndex": index,
                    "ContactIndex": rng.choice(contacts)
                    if contacts and rng.random() < 0.7
                    else None,
                    "Subject": rng.choice(_TASK_SUBJECTS[kind]),
                    "Description": "CSM touchpoint logged by the account owner.",
                    "Type": rng.choice(("Call", "Email", "Meeting")),
                    "Status": "Completed",
                    "Priority": "High" if kind == "about_to_churn" else "Normal",
                    "ActivityDate": day,
                    "IsClosed": True,
                    "CreatedDate": self.at(day),
                    "OwnerEmail": account["OwnerEmail"],
                }
            )
            day -= timedelta(days=rng.randint(7, 45))
        if kind in ("declining", "about_to_churn") and rng.random() < 0.5:
            out.append(
                {
                    "AccountIndex": index,
                    "ContactIndex": None,
                    "Subject": rng.choice(("Renewal risk review", "Follow up on escalations")),
                    "Description": "Open follow-up.",
                    "Type": "Other",
                    "Status": "Not Started",
                    "Priority": "High",
                    "ActivityDate": today + timedelta(days=rng.randint(1, 14)),
                    "IsClosed": False,
                    "CreatedDate": self.at(today - timedelta(days=1)),
                    "OwnerEmail": account["OwnerEmail"],
                }
            )
        return out

    def _event(
        self,
        index: int,
        account: dict[str, Any],
        event_type: str,
        subject: str,
        start: datetime,
        who: int | None,
    ) -> dict[str, Any]:
        minutes = self.rng.choice((30, 45, 60))
        booked = start.date() - timedelta(days=self.rng.randint(1, 20))
        booked = min(booked, self.today - timedelta(days=1))
        return {
            "AccountIndex": index,
            "ContactIndex": who,
            "Subject": subject,
            "Type": event_type,
            "StartDateTime": start,
            "EndDateTime": start + timedelta(minutes=minutes),
            "DurationInMinutes": minutes,
            "OwnerEmail": account["OwnerEmail"],
            "CreatedDate": min(self.at(booked), start),
        }

    def events(
        self,
        index: int,
        account: dict[str, Any],
        kind: str,
        contacts: list[int],
        sponsor: int | None,
    ) -> list[dict[str, Any]]:
        rng, today = self.rng, self.today
        tenure = (today - account["Customer_Since__c"]).days
        out = []
        for _ in range(int(account["Exec_Sponsor_Meetings_90d__c"] or 0)):
            start = self.at(self.days_ago(1, min(89, tenure - 1)), 13, 17)
            subject = "Executive sponsor meeting"
            out.append(
                self._event(index, account, "Executive Sponsor Meeting", subject, start, sponsor)
            )
        larger = account["Plan_Tier__c"] in ("Growth", "Enterprise")
        if kind == "healthy" and larger and tenure > 100:
            start = self.at(self.days_ago(91, min(180, tenure - 1)), 13, 17)
            out.append(self._event(index, account, "QBR", "Quarterly business review", start, None))
        if kind in ("stuck_onboarding", "new_healthy"):
            for _ in range(rng.randint(1, 2)):
                start = self.at(self.days_ago(1, tenure - 1))
                who = contacts[0] if contacts else None
                out.append(
                    self._event(index, account, "Onboarding Session", "Onboarding", start, who)
                )
        if kind in ("healthy", "new_healthy") and rng.random() < 0.3:
            start = self.at(today + timedelta(days=rng.randint(1, 30)))
            out.append(self._event(index, account, "Meeting", "Roadmap preview", start, None))
        return out
