"""sObject schemas for the Salesforce emulator: field metadata, describe JSON, value codec.

Objects: Account, User, Contact, Opportunity, Case, Task, Event.  To add one, write a builder
like ``_account()`` and add it to ``SCHEMA_BUILDERS``.  Formula-like standard fields
(``Opportunity.IsClosed``/``IsWon``, ``Case.IsClosed``/``ClosedDate``, ``Task.IsClosed``,
``Event.ActivityDate``/``EndDateTime``, ``Contact.Name``) are recomputed by the schema's
``derive`` hook on every insert/update, as Salesforce does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sandbox.soql import NUMBER_TYPES, STRING_TYPES

INDUSTRY_VALUES: tuple[str, ...] = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications",
    "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
    "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare",
    "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit",
    "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation",
    "Utilities", "Other",
)  # fmt: skip
PLAN_TIERS: tuple[str, ...] = ("Starter", "Growth", "Enterprise")
HEALTH_GRADES: tuple[str, ...] = ("Green", "Yellow", "Red", "Insufficient Data")
HEALTH_OVERRIDES: tuple[str, ...] = ("Green", "Yellow", "Red")
OPPORTUNITY_STAGES: tuple[str, ...] = (
    "Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
    "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review",
    "Closed Won", "Closed Lost",
)  # fmt: skip
OPPORTUNITY_TYPES: tuple[str, ...] = (
    "New Business", "Renewal", "Expansion", "Upsell", "Existing Customer - Upgrade",
    "Existing Customer - Downgrade",
)  # fmt: skip
CASE_STATUSES: tuple[str, ...] = ("New", "Working", "Escalated", "Closed")
CASE_PRIORITIES: tuple[str, ...] = ("Low", "Medium", "High", "Urgent")
CASE_ORIGINS: tuple[str, ...] = ("Phone", "Email", "Web")
CASE_TYPES: tuple[str, ...] = ("Question", "Problem", "Feature Request", "Billing")
TASK_STATUSES: tuple[str, ...] = (
    "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred",
)  # fmt: skip
TASK_PRIORITIES: tuple[str, ...] = ("High", "Normal", "Low")
TASK_TYPES: tuple[str, ...] = ("Call", "Email", "Meeting", "Other")
EVENT_TYPES: tuple[str, ...] = (
    "Call", "Meeting", "Executive Sponsor Meeting", "QBR", "Onboarding Session", "Other",
)  # fmt: skip
CONTACT_ROLES: tuple[str, ...] = ("Admin", "Champion", "Executive Sponsor", "User")
SYSTEM_DATETIMES: tuple[str, ...] = ("CreatedDate", "LastModifiedDate", "SystemModstamp")

_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
    "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime",
}  # fmt: skip
_DEFAULT_LENGTH = {
    "id": 18, "reference": 18, "url": 255, "email": 80, "phone": 40, "picklist": 255,
    "multipicklist": 4099,
}  # fmt: skip


@dataclass(frozen=True)
class FieldDef:
    """Metadata of one field, rendered by :meth:`describe` like Salesforce's describe."""

    name: str
    type: str
    label: str
    custom: bool = False
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    #: name of the child relationship on the referenced object (``Account.Opportunities``)
    child_relationship: str | None = None
    external_id: bool = False
    unique: bool = False
    #: value a new record gets when the create request does not set the field
    default: Any = None
    #: auto-number field (``Case.CaseNumber``): filled from the insert counter
    autonumber: bool = False

    @property
    def is_string(self) -> bool:
        return self.type in STRING_TYPES

    def describe(self) -> dict[str, Any]:
        length = self.length or _DEFAULT_LENGTH.get(self.type, 0)
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "custom": self.custom,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "length": length if self.is_string else 0,
            "byteLength": length * 3 if self.is_string else 0,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.digits,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": False, "validFor": None}
                for v in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "calculated": False,
            "defaultedOnCreate": self.name in (*SYSTEM_DATETIMES, "Id", "IsDeleted", "OwnerId")
            or self.default is not None
            or self.autonumber,
            "autoNumber": self.autonumber,
            "externalId": self.external_id,
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "groupable": self.type not in ("textarea", "double", "currency", "percent"),
            "idLookup": self.type == "id" or self.external_id or self.autonumber,
            "unique": self.unique,
        }


@dataclass
class SObjectSchema:
    """One sObject type; field lookup is case-insensitive like Salesforce's."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef]
    custom: bool = False
    #: recomputes derived fields of a stored record in place: ``derive(record, now)``
    derive: Callable[[dict[str, Any], datetime], None] | None = None
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        self._lower = {name.lower(): name for name in self.fields}

    def field(self, name: str) -> FieldDef | None:
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical is not None else None

    def external_id_fields(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.external_id]

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationshipName is ``name`` (case-insensitive)."""
        wanted = name.lower()
        for f in self.fields.values():
            if f.relationship_name is not None and f.relationship_name.lower() == wanted:
                return f
        return None

    def remove_field(self, name: str) -> None:
        found = self.field(name)
        if found is None:
            raise KeyError(f"No such column '{name}' on entity '{self.name}'")
        del self.fields[found.name]
        self._reindex()

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "createable": True,
            "updateable": True,
            "deletable": self.name != "User",
            "undeletable": "IsDeleted" in self.fields,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def child_relationships(self, schemas: Iterable[SObjectSchema]) -> list[dict[str, Any]]:
        """Describe's ``childRelationships``: every reference field of ``schemas`` pointing here."""
        out: list[dict[str, Any]] = []
        for child in schemas:
            for f in child.fields.values():
                if self.name in f.reference_to and f.child_relationship is not None:
                    out.append(
                        {
                            "cascadeDelete": child.name in ("Opportunity", "Task", "Event")
                            and f.name in ("AccountId", "WhatId"),
                            "childSObject": child.name,
                            "deprecatedAndHidden": False,
                            "field": f.name,
                            "junctionIdListNames": [],
                            "junctionReferenceTo": [],
                            "relationshipName": f.child_relationship,
                            "restrictedDelete": False,
                        }
                    )
        return out

    def describe(
        self, version: str, schemas: Iterable[SObjectSchema] | None = None
    ) -> dict[str, Any]:
        return {
            **self.summary(version),
            "activateable": False,
            "childRelationships": self.child_relationships(schemas or ()),
            "compactLayoutable": True,
            "customSetting": False,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "layoutable": True,
            "mergeable": self.name == "Account",
            "mruEnabled": True,
            "recordTypeInfos": [],
            "replicateable": True,
            "triggerable": True,
            "fields": [f.describe() for f in self.fields.values()],
        }


# ---------------------------------------------------------------------------- builders


def _f(name: str, ftype: str, label: str, **kw: Any) -> FieldDef:
    return FieldDef(name=name, type=ftype, label=label, custom=name.endswith("__c"), **kw)


def _ro(name: str, ftype: str, label: str, **kw: Any) -> FieldDef:
    kw.setdefault("nillable", False)
    return _f(name, ftype, label, updateable=False, createable=False, **kw)


def _num(name: str, ftype: str, label: str, precision: int, scale: int, **kw: Any) -> FieldDef:
    return _f(name, ftype, label, precision=precision, scale=scale, **kw)


def _system_fields() -> list[FieldDef]:
    return [
        _ro("CreatedDate", "datetime", "Created Date"),
        _ro("LastModifiedDate", "datetime", "Last Modified Date"),
        _ro("SystemModstamp", "datetime", "System Modstamp"),
    ]


def _schema(
    name: str,
    label: str,
    plural: str,
    prefix: str,
    fields: Iterable[FieldDef],
    derive: Callable[[dict[str, Any], datetime], None] | None = None,
) -> SObjectSchema:
    return SObjectSchema(name, label, plural, prefix, {f.name: f for f in fields}, derive=derive)


def _ref(
    name: str,
    label: str,
    targets: tuple[str, ...],
    relationship: str,
    children: str | None = None,
    **kw: Any,
) -> FieldDef:
    return _f(
        name,
        "reference",
        label,
        reference_to=targets,
        relationship_name=relationship,
        child_relationship=children,
        **kw,
    )


def _owner() -> FieldDef:
    return _ref("OwnerId", "Owner ID", ("User",), "Owner", nillable=False)


def _head(label: str) -> list[FieldDef]:
    return [_ro("Id", "id", f"{label} ID"), _ro("IsDeleted", "boolean", "Deleted")]


def _account() -> SObjectSchema:
    return _schema(
        "Account",
        "Account",
        "Accounts",
        "001",
        [
            _ro("Id", "id", "Account ID"),
            _ro("IsDeleted", "boolean", "Deleted"),
            _f("Name", "string", "Account Name", length=255, nillable=False),
            _f(
                "OwnerId",
                "reference",
                "Owner ID",
                nillable=False,
                reference_to=("User",),
                relationship_name="Owner",
            ),
            _f("Website", "url", "Website", length=255),
            _f("Industry", "picklist", "Industry", length=255, picklist=INDUSTRY_VALUES),
            _f("NumberOfEmployees", "int", "Employees", digits=8),
            *_system_fields(),
            _num("ARR__c", "currency", "ARR", 18, 2),
            _f("Plan_Tier__c", "picklist", "Plan Tier", picklist=PLAN_TIERS),
            _f("Customer_Since__c", "date", "Customer Since"),
            _f("Renewal_Date__c", "date", "Renewal Date"),
            _num("Licensed_Seats__c", "double", "Licensed Seats", 18, 0),
            _num("Active_Users_30d__c", "double", "Active Users (30d)", 18, 0),
            _num("Logins_30d__c", "double", "Logins (30d)", 18, 0),
            _num("Logins_Prev_30d__c", "double", "Logins (previous 30d)", 18, 0),
            _num("Feature_Adoption__c", "percent", "Feature Adoption", 5, 1),
            _f("Last_Login_Date__c", "date", "Last Login Date"),
            _f("Onboarding_Complete__c", "boolean", "Onboarding Complete", nillable=False),
            _num("Open_Cases__c", "double", "Open Cases", 18, 0),
            _num("Urgent_Open_Cases__c", "double", "Urgent Open Cases", 18, 0),
            _num("NPS_Score__c", "double", "NPS Score (latest)", 3, 0),
            _f("Last_CSM_Touch_Date__c", "date", "Last CSM Touch Date"),
            _num("Exec_Sponsor_Meetings_90d__c", "double", "Exec Sponsor Meetings (90d)", 18, 0),
            _num("Health_Score__c", "double", "Health Score", 5, 1),
            _f(
                "Health_Grade__c",
                "picklist",
                "Health Grade",
                picklist=HEALTH_GRADES,
                restricted=True,
            ),
            _f("Health_Trend__c", "string", "Health Trend", length=40),
            _f("Health_Reasons__c", "textarea", "Health Reasons", length=1000),
            _f("Health_Updated__c", "datetime", "Health Updated"),
            _f("Health_Data_Stale__c", "boolean", "Health Data Stale", nillable=False),
            _num("Health_Churn_Risk__c", "percent", "Health Churn Risk", 4, 1),
            _num("Health_ARR_at_Risk__c", "currency", "Health ARR at Risk", 16, 2),
            _f(
                "Health_Override__c",
                "picklist",
                "Health Override",
                picklist=HEALTH_OVERRIDES,
                restricted=True,
            ),
            _f("Health_Override_Reason__c", "string", "Health Override Reason", length=255),
            _f("Health_Override_Until__c", "date", "Health Override Until"),
            _f("Health_Override_By__c", "email", "Health Override By"),
            _f("Health_Override_Set__c", "datetime", "Health Override Set At"),
        ],
    )


def _user() -> SObjectSchema:
    return _schema(
        "User",
        "User",
        "Users",
        "005",
        [
            _ro("Id", "id", "User ID"),
            _f("Name", "string", "Full Name", length=121, updateable=False, nillable=False),
            _f("Email", "email", "Email", length=128, nillable=False),
            _f("Username", "string", "Username", length=80, nillable=False),
            _f("IsActive", "boolean", "Active", nillable=False),
            *_system_fields(),
        ],
    )


def _derive_contact(record: dict[str, Any], now: datetime) -> None:
    parts = [record.get("FirstName"), record.get("LastName")]
    record["Name"] = " ".join(p for p in parts if p) or None


def _contact() -> SObjectSchema:
    return _schema(
        "Contact",
        "Contact",
        "Contacts",
        "003",
        [
            *_head("Contact"),
            _ref("AccountId", "Account ID", ("Account",), "Account", "Contacts"),
            _f("FirstName", "string", "First Name", length=40),
            _f("LastName", "string", "Last Name", length=80, nillable=False),
            _ro("Name", "string", "Full Name", length=121),
            _f("Email", "email", "Email"),
            _f("Title", "string", "Title", length=128),
            _f("Phone", "phone", "Business Phone"),
            _f("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False),
            _owner(),
            *_system_fields(),
            _f("Role__c", "picklist", "Role", picklist=CONTACT_ROLES),
        ],
        _derive_contact,
    )


def _derive_opportunity(record: dict[str, Any], now: datetime) -> None:
    stage = record.get("StageName")
    record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
    record["IsWon"] = stage == "Closed Won"


def _opportunity() -> SObjectSchema:
    return _schema(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        "006",
        [
            *_head("Opportunity"),
            _ref("AccountId", "Account ID", ("Account",), "Account", "Opportunities"),
            _f("Name", "string", "Name", length=120, nillable=False),
            _f(
                "StageName",
                "picklist",
                "Stage",
                picklist=OPPORTUNITY_STAGES,
                restricted=True,
                nillable=False,
            ),
            _f("CloseDate", "date", "Close Date", nillable=False),
            _num("Amount", "currency", "Amount", 18, 2),
            _f("Type", "picklist", "Opportunity Type", picklist=OPPORTUNITY_TYPES),
            _ro("IsClosed", "boolean", "Closed"),
            _ro("IsWon", "boolean", "Won"),
            _owner(),
            *_system_fields(),
            _num("ARR__c", "currency", "ARR", 18, 2),
        ],
        _derive_opportunity,
    )


def _derive_case(record: dict[str, Any], now: datetime) -> None:
    closed = record.get("Status") == "Closed"
    record["IsClosed"] = closed
    if not closed:
        record["ClosedDate"] = None
    elif record.get("ClosedDate") is None:
        record["ClosedDate"] = now


def _case() -> SObjectSchema:
    return _schema(
        "Case",
        "Case",
        "Cases",
        "500",
        [
            *_head("Case"),
            _ro("CaseNumber", "string", "Case Number", length=30, autonumber=True),
            _ref("AccountId", "Account ID", ("Account",), "Account", "Cases"),
            _ref("ContactId", "Contact ID", ("Contact",), "Contact", "Cases"),
            _f("Subject", "string", "Subject", length=255),
            _f("Description", "textarea", "Description", length=32000),
            _f("Status", "picklist", "Status", picklist=CASE_STATUSES, default="New"),
            _f("Priority", "picklist", "Priority", picklist=CASE_PRIORITIES, default="Medium"),
            _f("Origin", "picklist", "Case Origin", picklist=CASE_ORIGINS),
            _f("Type", "picklist", "Case Type", picklist=CASE_TYPES),
            _ro("IsClosed", "boolean", "Closed"),
            _ro("ClosedDate", "datetime", "Closed Date", nillable=True),
            _owner(),
            *_system_fields(),
        ],
        _derive_case,
    )


def _activity_refs(children: str) -> list[FieldDef]:
    return [
        _ref(
            "WhatId",
            "Related To ID",
            ("Account", "Opportunity", "Case"),
            "What",
            children,
        ),
        _ref("WhoId", "Name ID", ("Contact",), "Who", children),
        _owner(),
    ]


def _derive_task(record: dict[str, Any], now: datetime) -> None:
    record["IsClosed"] = record.get("Status") == "Completed"


def _task() -> SObjectSchema:
    return _schema(
        "Task",
        "Task",
        "Tasks",
        "00T",
        [
            *_head("Activity"),
            *_activity_refs("Tasks"),
            _f("Subject", "string", "Subject", length=255),
            _f("Description", "textarea", "Description", length=32000),
            _f("ActivityDate", "date", "Due Date Only"),
            _f(
                "Status",
                "picklist",
                "Status",
                picklist=TASK_STATUSES,
                nillable=False,
                default="Not Started",
            ),
            _f(
                "Priority",
                "picklist",
                "Priority",
                picklist=TASK_PRIORITIES,
                nillable=False,
                default="Normal",
            ),
            _f("Type", "picklist", "Type", picklist=TASK_TYPES),
            _ro("IsClosed", "boolean", "Closed"),
            *_system_fields(),
            _f(
                "Healthscore_Key__c",
                "string",
                "Healthscore Key",
                length=255,
                external_id=True,
                unique=True,
            ),
        ],
        _derive_task,
    )


def _derive_event(record: dict[str, Any], now: datetime) -> None:
    start = record.get("StartDateTime")
    if not isinstance(start, datetime):
        return
    end = record.get("EndDateTime")
    if isinstance(end, datetime) and end >= start:
        record["DurationInMinutes"] = int((end - start).total_seconds() // 60)
    else:
        minutes = record.get("DurationInMinutes")
        record["DurationInMinutes"] = 60 if minutes is None else minutes
        record["EndDateTime"] = start + timedelta(minutes=record["DurationInMinutes"])
    record["ActivityDate"] = start.date()


def _event() -> SObjectSchema:
    return _schema(
        "Event",
        "Event",
        "Events",
        "00U",
        [
            *_head("Activity"),
            *_activity_refs("Events"),
            _f("Subject", "string", "Subject", length=255),
            _f("Description", "textarea", "Description", length=32000),
            _f("Location", "string", "Location", length=255),
            _f("StartDateTime", "datetime", "Start Date Time", nillable=False),
            _f("EndDateTime", "datetime", "End Date Time"),
            _f("DurationInMinutes", "int", "Duration", digits=8),
            _ro("ActivityDate", "date", "Due Date Only", nillable=True),
            _f("Type", "picklist", "Type", picklist=EVENT_TYPES),
            *_system_fields(),
        ],
        _derive_event,
    )


SCHEMA_BUILDERS: dict[str, Callable[[], SObjectSchema]] = {
    "Account": _account,
    "User": _user,
    "Contact": _contact,
    "Opportunity": _opportunity,
    "Case": _case,
    "Task": _task,
    "Event": _event,
}


def default_schemas() -> dict[str, SObjectSchema]:
    """Fresh (mutable) schemas for a new emulator."""
    return {name: build() for name, build in SCHEMA_BUILDERS.items()}


# ---------------------------------------------------------------------------- ids

_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def id_checksum(id15: str) -> str:
    """Salesforce's 3-character case-encoding suffix of a 15-character id."""
    out = []
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")
        out.append(_CHECKSUM_CHARS[bits])
    return "".join(out)


def make_id(prefix: str, counter: int) -> str:
    """``prefix`` + ``SB`` + base36 counter (10 chars) + checksum -> 18-character id."""
    digits = ""
    n = counter
    while n:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
    id15 = f"{prefix}SB{digits.rjust(10, '0')}"
    return id15 + id_checksum(id15)


def normalize_id(value: Any) -> str | None:
    """Return the 18-character form of a well-formed id, else ``None`` (bad checksum too)."""
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        return None
    id15 = value[:15]
    checksum = id_checksum(id15)
    if len(value) == 18 and value[15:].upper() != checksum:
        return None
    return id15 + checksum


# ---------------------------------------------------------------------------- values

_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?"
)


def format_datetime(value: datetime) -> str:
    """``2026-11-20T09:14:03.000+0000`` (UTC, milliseconds, no colon in the offset)."""
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}+0000"
    )


def parse_datetime(text: str) -> datetime:
    """Parse Salesforce/ISO datetimes (``Z``, ``+0000``, ``+00:00``, no zone = UTC)."""
    match = _DT_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a valid value for the type xsd:dateTime")
    year, month, day, hh, mm, ss, frac, zone = match.groups()
    iso = f"{year}-{month}-{day}T{hh}:{mm}:{ss}.{(frac or '0').ljust(6, '0')}"
    if zone and zone != "Z":
        iso += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    else:
        iso += "+00:00"
    return datetime.fromisoformat(iso).astimezone(UTC)


def to_json(value: Any) -> Any:
    """Python value -> Salesforce JSON value."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def coerce(fdef: FieldDef, value: Any) -> Any:
    """JSON (or Python) value -> stored Python value; ``ValueError`` when the type is wrong."""
    if value is None:
        return None
    ftype = fdef.type
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif ftype in NUMBER_TYPES:
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return int(value) if ftype == "int" else float(value)
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                pass
            else:
                return int(number) if ftype == "int" else float(number)
    elif ftype == "datetime":
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            return parse_datetime(value)
    elif ftype == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
    elif isinstance(value, str):
        return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(
        f"Cannot deserialize instance of {_SOAP_TYPES.get(ftype, 'xsd:string')[4:]} "
        f"from {type(value).__name__} value {value!r} for field {fdef.name}"
    )


def round_to_scale(fdef: FieldDef, value: float) -> float:
    """Round half-up to the field's scale (as Salesforce stores numbers)."""
    quantum = Decimal(1).scaleb(-fdef.scale)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))
