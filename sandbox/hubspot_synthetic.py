"""Map a :class:`~sandbox.synthetic.SyntheticOrg` (Salesforce-shaped) onto HubSpot companies.

One synthetic org can seed both CRMs: accounts become companies with the same names, a domain
from the account's website, owners made from the org's users, and the usage fields as custom
company properties holding the same values as the Salesforce fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.hubspot_store import FIRST_OWNER_ID, FIRST_USER_ID
from sandbox.synthetic import SyntheticOrg

USAGE_GROUP = ("customer_usage", "Customer usage")
#: Salesforce Account field → (HubSpot company property, type, fieldType, label)
USAGE_PROPERTIES: dict[str, tuple[str, str, str, str]] = {
    "Plan_Tier__c": ("plan_tier", "string", "text", "Plan tier"),
    "ARR__c": ("arr", "number", "number", "ARR"),
    "Customer_Since__c": ("customer_since", "date", "date", "Customer since"),
    "Renewal_Date__c": ("renewal_date", "date", "date", "Renewal date"),
    "Licensed_Seats__c": ("licensed_seats", "number", "number", "Licensed seats"),
    "Active_Users_30d__c": ("active_users_30d", "number", "number", "Active users (30 days)"),
    "Logins_30d__c": ("logins_30d", "number", "number", "Logins (30 days)"),
    "Logins_Prev_30d__c": ("logins_prev_30d", "number", "number", "Logins (previous 30 days)"),
    "Feature_Adoption__c": ("feature_adoption", "number", "number", "Feature adoption %"),
    "Last_Login_Date__c": ("last_login_date", "date", "date", "Last login date"),
    "Onboarding_Complete__c": (
        "onboarding_complete",
        "bool",
        "booleancheckbox",
        "Onboarding complete",
    ),
    "Open_Cases__c": ("open_cases", "number", "number", "Open cases"),
    "Urgent_Open_Cases__c": ("urgent_open_cases", "number", "number", "Urgent open cases"),
    "NPS_Score__c": ("nps_score", "number", "number", "NPS score"),
    "Last_CSM_Touch_Date__c": ("last_csm_touch_date", "date", "date", "Last CSM touch"),
    "Exec_Sponsor_Meetings_90d__c": (
        "exec_sponsor_meetings_90d",
        "number",
        "number",
        "Exec sponsor meetings (90 days)",
    ),
}
ACCOUNT_ID_PROPERTY = "salesforce_account_id"


def property_value(value: Any) -> str | None:
    """A Python value as HubSpot's string form (dates ``YYYY-MM-DD``, booleans lower case)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def domain_from(website: str | None, name: str) -> str:
    """``https://www.acme.example.com/x`` → ``acme.example.com``; else a slug of the name."""
    if website:
        text = website if "://" in website else f"https://{website}"
        host = (urlsplit(text).hostname or "").lower()
        if host:
            return host.removeprefix("www.")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "company"
    return f"{slug}.example.com"


def hubspot_owners_from_org(org: SyntheticOrg) -> list[dict[str, Any]]:
    """One owner per org user, with the ids :meth:`HubSpotEmulator.seed` gives them."""
    owners = []
    for index, user in enumerate(org.users):
        first, _, last = str(user.get("Name", "")).partition(" ")
        owners.append(
            {
                "id": str(FIRST_OWNER_ID + index),
                "email": user["Email"],
                "firstName": first,
                "lastName": last,
                "userId": FIRST_USER_ID + index,
                "archived": not user.get("IsActive", True),
            }
        )
    return owners


def hubspot_companies_from_org(
    org: SyntheticOrg, *, account_ids: Sequence[str] | None = None
) -> list[dict[str, str]]:
    """Company property dicts (string values) for the org's accounts, in account order.

    ``account_ids`` (e.g. what ``SalesforceEmulator.seed`` returned) fills
    ``salesforce_account_id`` so the two CRMs can be matched by id as well as by domain.
    """
    if account_ids is not None and len(account_ids) != len(org.accounts):
        raise ValueError("account_ids must have one id per account")
    owner_of = {o["email"].lower(): o["id"] for o in hubspot_owners_from_org(org)}
    companies = []
    for index, account in enumerate(org.accounts):
        name = str(account["Name"])
        props: dict[str, str | None] = {
            "name": name,
            "domain": domain_from(account.get("Website"), name),
            "website": account.get("Website"),
            "numberofemployees": property_value(account.get("NumberOfEmployees")),
            "annualrevenue": property_value(account.get("ARR__c")),
            "lifecyclestage": "customer",
            "hubspot_owner_id": owner_of.get(str(account.get("OwnerEmail", "")).lower()),
        }
        for field, (prop, *_rest) in USAGE_PROPERTIES.items():
            props[prop] = property_value(account.get(field))
        if account_ids is not None:
            props[ACCOUNT_ID_PROPERTY] = account_ids[index]
        companies.append({k: v for k, v in props.items() if v is not None})
    return companies


def usage_property_specs(with_account_id: bool = True) -> list[Mapping[str, Any]]:
    """PropertyCreate-shaped bodies for the custom company properties above."""
    group = USAGE_GROUP[0]
    specs: list[Mapping[str, Any]] = [
        {"name": prop, "label": label, "type": kind, "fieldType": field_type, "groupName": group}
        for prop, kind, field_type, label in USAGE_PROPERTIES.values()
    ]
    if with_account_id:
        specs.append(
            {
                "name": ACCOUNT_ID_PROPERTY,
                "label": "Salesforce account id",
                "type": "string",
                "fieldType": "text",
                "groupName": group,
                "hasUniqueValue": True,
            }
        )
    return specs
