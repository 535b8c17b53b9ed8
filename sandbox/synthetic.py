"""Deterministic synthetic Salesforce org: CSM users and accounts with believable archetypes.

Each account gets an archetype (``healthy``, ``declining``, ``stuck_onboarding``,
``about_to_churn``, ``new_healthy``) and internally consistent usage, support and relationship
fields, so a health score computed from them should reproduce the archetype.
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
    """Users (CSM owners) and accounts in Salesforce field names, plus each account's archetype."""

    users: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    archetypes: dict[str, str] = field(default_factory=dict)


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


def generate_org(n_accounts: int, seed: int = 42, now: datetime | None = None) -> SyntheticOrg:
    """Build a deterministic org of ``n_accounts`` accounts (same seed + day -> same org).

    ``now`` defaults to the current UTC time; only its date is used, so all dates are relative
    to "today" (renewals in the next 12 months, recent logins, ...).
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
    return org
