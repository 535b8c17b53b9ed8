"""Write health fields to HubSpot companies: batch update, 100 a request, same contract as
every CRM writer (see ``healthscore.pipeline.writeback``), and create the properties when
they are missing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import HubSpotOverrideProperties, HubSpotWriteBack
from healthscore.core.errors import FatalError
from scoring.churn_model import CHURN_ROLES

BATCH_LIMIT = 100
GRADE_OPTIONS = (
    ("Green", "green"),
    ("Yellow", "yellow"),
    ("Red", "red"),
    ("Insufficient data", "insufficient_data"),
)
PROPERTY_TYPES = {  # role → (type, fieldType, label)
    "score": ("number", "number", "Health score"),
    "grade": ("enumeration", "select", "Health grade"),
    "trend": ("string", "text", "Health trend"),
    "reasons": ("string", "textarea", "Health reasons"),
    "updated": ("datetime", "date", "Health updated"),
    "stale": ("bool", "booleancheckbox", "Health data stale"),
    "churn_risk": ("number", "number", "Health churn risk (%)"),
    "arr_at_risk": ("number", "number", "Health ARR at risk"),
}
OVERRIDE_GRADES = (("Red", "red"), ("Yellow", "yellow"), ("Green", "green"))
OVERRIDE_TYPES = {  # role → (type, fieldType, label, description): set by CSMs, read by us
    "grade": (
        "enumeration",
        "select",
        "Health override",
        "a CSM's grade override; empty it to end the override",
    ),
    "reason": ("string", "textarea", "Health override reason", "why the grade is overridden"),
    "until": ("date", "date", "Health override until", "the override ends after this day"),
    "by": (
        "string",
        "text",
        "Health override set by",
        "email (or HubSpot owner id) of who set the override",
    ),
    "set_at": (
        "datetime",
        "date",
        "Health override set at",
        "when the override was set (stamped by a workflow); each value is read once",
    ),
}


def to_property_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class HubSpotWriter:
    crm = "hubspot"

    def __init__(
        self,
        client: HubSpotClient,
        fields: HubSpotWriteBack,
        company_of: Mapping[str, str],
        batch_size: int = BATCH_LIMIT,
    ) -> None:
        self.client = client
        self.fields = fields.roles(CHURN_ROLES)  # what a pending write holds decides
        self.company_of = company_of  # account id → HubSpot company id
        self.batch_size = min(batch_size, BATCH_LIMIT)

    def write(self, batch: list[tuple[str, Mapping[str, Any]]]) -> dict[str, str | None]:
        outcome: dict[str, str | None] = {}
        inputs, account_of = [], {}
        for account_id, values in batch:
            company = self.company_of.get(account_id)
            if company is None:
                outcome[account_id] = "no HubSpot company is matched to this account"
                continue
            account_of[company] = account_id
            inputs.append(
                {
                    "id": company,
                    "properties": {
                        self.fields[role]: to_property_value(v) for role, v in values.items()
                    },
                }
            )
        if not inputs:
            return outcome
        api = self.client.sdk.crm.companies.batch_api
        resp = self.client.call("batch update companies", api.update, {"inputs": inputs})
        for obj in resp.results or []:
            if str(obj.id) in account_of:
                outcome[account_of[str(obj.id)]] = None
        for err in getattr(resp, "errors", None) or []:
            ids = (getattr(err, "context", None) or {}).get("ids") or []
            for company in ids:
                if company in account_of:
                    outcome[account_of[company]] = f"{err.category}: {err.message}"
        for account_id in account_of.values():
            outcome.setdefault(account_id, "HubSpot returned no result for this company")
        return outcome


def ensure_properties(
    client: HubSpotClient,
    fields: HubSpotWriteBack,
    overrides: HubSpotOverrideProperties | None = None,
    churn_roles: tuple[str, ...] = (),
) -> list[str]:
    """Create the property group and any missing health property (the churn ones of
    ``churn_roles`` too, and with ``overrides`` the CSM override properties); return what was
    created.

    An existing property of the wrong type is an error naming it (never silently reused).
    """
    core = client.sdk.crm.properties.core_api
    existing = {
        p.name: p
        for p in client.call(
            "read company properties", core.get_all, object_type="companies"
        ).results
        or []
    }
    created = []
    groups = client.sdk.crm.properties.groups_api
    known_groups = {
        g.name
        for g in client.call(
            "read property groups", groups.get_all, object_type="companies"
        ).results
        or []
    }
    if fields.group not in known_groups:
        client.call(
            "create property group",
            groups.create,
            object_type="companies",
            property_group_create={
                "name": fields.group,
                "label": "Health score",
                "displayOrder": -1,
            },
        )
        created.append(f"group {fields.group}")
    wanted = [
        (
            name,
            *PROPERTY_TYPES[role],
            "written by healthscore",
            GRADE_OPTIONS if role == "grade" else (),
        )
        for role, name in fields.roles(churn_roles).items()
    ]
    if overrides is not None:
        wanted += [
            (name, *OVERRIDE_TYPES[role], OVERRIDE_GRADES if role == "grade" else ())
            for role, name in overrides.roles().items()
        ]
    problems = []
    for name, kind, field_type, label, description, grades in wanted:
        have = existing.get(name)
        if have is not None:
            if have.type != kind:
                problems.append(f"{name} is a {have.type} property; healthscore needs {kind}")
            continue
        body: dict[str, Any] = {
            "name": name,
            "label": label,
            "groupName": fields.group,
            "type": kind,
            "fieldType": field_type,
            "description": description,
        }
        if grades:
            body["options"] = [
                {"label": lbl, "value": val, "displayOrder": i}
                for i, (lbl, val) in enumerate(grades)
            ]
        if kind == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0},
                {"label": "No", "value": "false", "displayOrder": 1},
            ]
        client.call("create property", core.create, object_type="companies", property_create=body)
        created.append(name)
    if problems:
        raise FatalError("HubSpot company properties do not match: " + "; ".join(problems))
    return created


def missing_properties(
    client: HubSpotClient,
    fields: HubSpotWriteBack,
    overrides: HubSpotOverrideProperties | None = None,
    churn_roles: tuple[str, ...] = (),
) -> list[str]:
    """The health (and override) company properties the portal does not have yet."""
    core = client.sdk.crm.properties.core_api
    existing = {
        p.name
        for p in client.call(
            "read company properties", core.get_all, object_type="companies"
        ).results
        or []
    }
    wanted = list(fields.roles(churn_roles).values())
    if overrides is not None:
        wanted += list(overrides.roles().values())
    return [name for name in wanted if name not in existing]
