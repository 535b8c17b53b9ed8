"""HubSpot CRM schema for the emulator: object types, properties, value rules, associations.

Property values travel as strings.  :func:`normalize_value` turns what a client wrote into the
stored string (or ``None`` to clear) or a ``PropertyValidationResult``-shaped error, the way
HubSpot's ``Property values were not valid: [...]`` message lists them.
See /work/shared/api-specs/hubspot.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

# canonical name → (objectTypeId, singular name used in messages)
OBJECT_TYPES: dict[str, tuple[str, str]] = {
    "contacts": ("0-1", "contact"),
    "companies": ("0-2", "company"),
    "deals": ("0-3", "deal"),
    "tickets": ("0-5", "ticket"),
    "tasks": ("0-27", "task"),
}
_ALIASES: dict[str, str] = {}
for _name, (_type_id, _singular) in OBJECT_TYPES.items():
    _ALIASES.update({_name: _name, _type_id: _name, _singular: _name})

#: the "last modified" property of each object type (contacts differ: trap 5 of the sheet)
MODIFIED_PROPERTY = {name: "hs_lastmodifieddate" for name in OBJECT_TYPES} | {
    "contacts": "lastmodifieddate"
}
#: properties returned when a request names none
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    "tickets": (
        "content",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
    ),
    "tasks": ("createdate", "hs_lastmodifieddate", "hs_object_id", "hs_task_subject"),
}
#: properties a create must carry
REQUIRED_ON_CREATE: dict[str, tuple[str, ...]] = {"tasks": ("hs_timestamp",)}
#: free-text properties the search ``query`` looks in
QUERY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("name", "domain", "website", "phone"),
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "deals": ("dealname",),
    "tickets": ("subject", "content"),
    "tasks": ("hs_task_subject", "hs_task_body"),
}

PROPERTY_TYPES = frozenset(
    {"bool", "date", "datetime", "enumeration", "number", "phone_number", "string"}
)
FIELD_TYPES = frozenset(
    {
        "booleancheckbox",
        "calculation_equation",
        "checkbox",
        "date",
        "file",
        "html",
        "number",
        "phonenumber",
        "radio",
        "select",
        "text",
        "textarea",
    }
)
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*")
# values the emulator maintains itself; writing them is an error
READ_ONLY = frozenset({"hs_object_id", "hs_lastmodifieddate", "lastmodifieddate"})


def resolve_object_type(raw: str) -> str | None:
    """``companies`` / ``company`` / ``0-2`` → ``companies``; ``None`` when unknown."""
    return _ALIASES.get(raw.strip().lower())


def type_label(object_type: str) -> str:
    """``COMPANY`` — the spelling of batch error messages."""
    return OBJECT_TYPES[object_type][1].upper()


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    hubspot_defined: bool = False
    has_unique_value: bool = False
    external_options: bool = False
    display_order: int = -1
    hidden: bool = False
    form_field: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    archived: bool = False

    def option_values(self) -> list[str]:
        return [str(o.get("value")) for o in self.options]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [dict(o) for o in self.options],
            "displayOrder": self.display_order,
            "calculated": False,
            "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.name in READ_ONLY,
            },
            "formField": self.form_field,
            "archived": self.archived,
        }
        if self.created_at:
            body["createdAt"] = self.created_at
        if self.updated_at:
            body["updatedAt"] = self.updated_at
        return body


def options(*values: str) -> list[dict[str, Any]]:
    return [
        {"label": v.replace("_", " ").title(), "value": v, "displayOrder": i, "hidden": False}
        for i, v in enumerate(values)
    ]


_LIFECYCLE = options(
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_TEXT, _NUM, _DT = ("string", "text"), ("number", "number"), ("datetime", "date")
_DATE = ("date", "date")
_COMMON: list[tuple[str, str, tuple[str, str]]] = [
    ("createdate", "Create Date", _DT),
    ("hs_object_id", "Record ID", _NUM),
    ("hubspot_owner_id", "Owner", ("enumeration", "select")),
]
_BUILTIN: dict[str, list[tuple[str, str, tuple[str, str]]]] = {
    "companies": [
        ("name", "Company name", _TEXT),
        ("domain", "Company Domain Name", _TEXT),
        ("website", "Website URL", _TEXT),
        ("phone", "Phone Number", ("string", "phonenumber")),
        ("city", "City", _TEXT),
        ("country", "Country/Region", _TEXT),
        ("industry", "Industry", _TEXT),
        ("description", "Description", ("string", "textarea")),
        ("numberofemployees", "Number of Employees", _NUM),
        ("annualrevenue", "Annual Revenue", _NUM),
        ("lifecyclestage", "Lifecycle Stage", ("enumeration", "radio")),
        ("hs_lastmodifieddate", "Last Modified Date", _DT),
        ("hs_merged_object_ids", "Merged Company IDs", ("enumeration", "checkbox")),
    ],
    "contacts": [
        ("email", "Email", _TEXT),
        ("firstname", "First Name", _TEXT),
        ("lastname", "Last Name", _TEXT),
        ("phone", "Phone Number", ("string", "phonenumber")),
        ("company", "Company Name", _TEXT),
        ("jobtitle", "Job Title", _TEXT),
        ("lifecyclestage", "Lifecycle Stage", ("enumeration", "radio")),
        ("associatedcompanyid", "Primary Associated Company ID", _NUM),
        ("lastmodifieddate", "Last Modified Date", _DT),
        ("hs_email_open", "Marketing emails opened", _NUM),
        ("hs_email_click", "Marketing emails clicked", _NUM),
        ("hs_email_delivered", "Marketing emails delivered", _NUM),
        ("hs_email_bounce", "Marketing emails bounced", _NUM),
        ("hs_email_optout", "Unsubscribed from all email", ("bool", "booleancheckbox")),
        ("hs_email_last_open_date", "Last marketing email open date", _DT),
        ("hs_email_last_click_date", "Last marketing email click date", _DT),
    ],
    "deals": [
        ("dealname", "Deal Name", _TEXT),
        ("amount", "Amount", _NUM),
        ("dealstage", "Deal Stage", _TEXT),
        ("pipeline", "Pipeline", _TEXT),
        ("closedate", "Close Date", _DT),
        ("hs_lastmodifieddate", "Last Modified Date", _DT),
    ],
    "tickets": [
        ("subject", "Ticket name", _TEXT),
        ("content", "Ticket description", _TEXT),
        ("hs_pipeline", "Pipeline", _TEXT),
        ("hs_pipeline_stage", "Ticket status", _TEXT),
        ("hs_ticket_priority", "Priority", ("enumeration", "select")),
        ("hs_ticket_category", "Category", _TEXT),
        ("closed_date", "Close date", _DT),
        ("hs_lastmodifieddate", "Last Modified Date", _DT),
    ],
    "tasks": [
        ("hs_timestamp", "Due date", _DT),
        ("hs_task_subject", "Task Title", _TEXT),
        ("hs_task_body", "Notes", ("string", "html")),
        ("hs_task_status", "Task Status", ("enumeration", "select")),
        ("hs_task_priority", "Priority", ("enumeration", "select")),
        ("hs_task_type", "Task Type", ("enumeration", "select")),
        ("hs_lastmodifieddate", "Last Modified Date", _DT),
    ],
}
_OPTIONS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("companies", "lifecyclestage"): _LIFECYCLE,
    ("contacts", "lifecyclestage"): _LIFECYCLE,
    ("tickets", "hs_ticket_priority"): options("LOW", "MEDIUM", "HIGH", "URGENT"),
    ("tasks", "hs_task_status"): options(
        "NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"
    ),
    ("tasks", "hs_task_priority"): options("NONE", "LOW", "MEDIUM", "HIGH"),
    ("tasks", "hs_task_type"): options("EMAIL", "CALL", "TODO"),
}
DEFAULT_GROUP = {
    "companies": ("companyinformation", "Company information"),
    "contacts": ("contactinformation", "Contact information"),
    "deals": ("dealinformation", "Deal information"),
    "tickets": ("ticketinformation", "Ticket information"),
    "tasks": ("taskinformation", "Task information"),
}


def builtin_properties(object_type: str, stamp: str) -> dict[str, PropertyDef]:
    group = DEFAULT_GROUP[object_type][0]
    out: dict[str, PropertyDef] = {}
    for order, (name, label, (kind, field_type)) in enumerate(_COMMON + _BUILTIN[object_type]):
        out[name] = PropertyDef(
            name=name,
            label=label,
            type=kind,
            field_type=field_type,
            group_name=group,
            options=[dict(o) for o in _OPTIONS.get((object_type, name), [])],
            hubspot_defined=True,
            has_unique_value=(object_type, name) == ("contacts", "email"),
            external_options=name == "hubspot_owner_id",
            display_order=order,
            created_at=stamp,
            updated_at=stamp,
        )
    return out


# ---------------------------------------------------------------------- time helpers
def iso_from_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_from_datetime(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated like HubSpot's stamps: rounding would stamp a
    write up to half a millisecond in the future, after a sync that started later."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding


def parse_time_ms(raw: str) -> int | None:
    """Epoch milliseconds, ISO-8601 (``Z`` or offset) or ``YYYY-MM-DD`` → epoch ms."""
    text = raw.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return ms_from_datetime(datetime.combine(date.fromisoformat(text), datetime.min.time()))
        return ms_from_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _as_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def invalid(name: str, error: str, message: str) -> dict[str, Any]:
    """One entry of HubSpot's ``Property values were not valid`` list."""
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }


def normalize_value(defn: PropertyDef, raw: Any) -> tuple[str | None, dict[str, Any] | None]:
    """(stored value or None to clear, None) or (None, validation error)."""
    if raw is None:
        return None, None
    text = _as_text(raw)
    if text == "":
        return None, None
    kind = defn.type
    if kind == "number":
        if _number(text.strip()) is None:
            return None, invalid(defn.name, "INVALID_LONG", f"{text} was not a valid long.")
        return text.strip(), None
    if kind in ("date", "datetime"):
        ms = parse_time_ms(text)
        if ms is None:
            return None, invalid(defn.name, "INVALID_DATE", f"{text} is not a valid date")
        if kind == "datetime":
            return iso_from_ms(ms), None
        if ms % 86_400_000:
            at = iso_from_ms(ms)[11:23]
            return None, invalid(defn.name, "INVALID_DATE", f"{ms} is at {at} UTC, not midnight!")
        return iso_from_ms(ms)[:10], None
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            message = f"{text} was not one of the allowed options: [true, false]"
            return None, invalid(defn.name, "INVALID_OPTION", message)
        return lowered, None
    if kind == "enumeration" and defn.options and not defn.external_options:
        allowed = defn.option_values()
        chosen = text.split(";") if defn.field_type == "checkbox" else [text]
        for value in chosen:
            if value not in allowed:
                message = f"{value} was not one of the allowed options: [{', '.join(allowed)}]"
                return None, invalid(defn.name, "INVALID_OPTION", message)
    return text, None


def comparable(defn: PropertyDef | None, value: str | None) -> Any:
    """A sortable/comparable key for a stored or filter value (``None`` when absent/bad)."""
    if value is None or value == "":
        return None
    kind = defn.type if defn is not None else "string"
    if kind == "number":
        return _number(value)
    if kind in ("date", "datetime"):
        return parse_time_ms(value)
    return value.lower()


# ---------------------------------------------------------------------- associations
# (from, to) → (default unlabeled type id, other HUBSPOT_DEFINED ids such as "primary")
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[int, tuple[int, ...]]] = {
    ("contacts", "companies"): (279, (1,)),
    ("companies", "contacts"): (280, (2,)),
    ("deals", "companies"): (341, (5,)),
    ("companies", "deals"): (342, (6,)),
    ("tickets", "companies"): (339, (26,)),
    ("companies", "tickets"): (340, (25,)),
    ("contacts", "deals"): (4, ()),
    ("deals", "contacts"): (3, ()),
    ("contacts", "tickets"): (15, ()),
    ("tickets", "contacts"): (16, ()),
    ("deals", "tickets"): (27, ()),
    ("tickets", "deals"): (28, ()),
    ("tasks", "contacts"): (204, ()),
    ("contacts", "tasks"): (203, ()),
    ("tasks", "companies"): (192, ()),
    ("companies", "tasks"): (191, ()),
    ("tasks", "deals"): (216, ()),
    ("deals", "tasks"): (215, ()),
    ("tasks", "tickets"): (230, ()),
    ("tickets", "tasks"): (229, ()),
}
_INVERSE_PAIRS = [(1, 2), (5, 6), (26, 25)]


def association_target(from_type: str, type_id: int) -> str | None:
    """The object type a HUBSPOT_DEFINED association type id points to from ``from_type``."""
    for (src, dst), (default, others) in ASSOCIATION_TYPES.items():
        if src == from_type and (type_id == default or type_id in others):
            return dst
    return None


def inverse_type_id(from_type: str, to_type: str, type_id: int) -> int:
    """The type id of the same association seen from the other side."""
    for a, b in _INVERSE_PAIRS:
        if type_id in (a, b):
            return b if type_id == a else a
    forward = ASSOCIATION_TYPES.get((from_type, to_type))
    backward = ASSOCIATION_TYPES.get((to_type, from_type))
    if forward is not None and backward is not None and type_id == forward[0]:
        return backward[0]
    return type_id
