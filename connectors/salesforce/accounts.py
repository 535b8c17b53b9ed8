"""Incremental Account pull: SOQL on ``SystemModstamp`` with an overlap window.

``pull_accounts`` is a generator of ``AccountRecord``s, one per good record; it takes the stored
cursor as an argument and reports the new high-water mark in ``SyncState`` — the caller stores it
only after the records are safely in the store. Query order is ``SystemModstamp, Id`` so a sync
interrupted mid-way resumes without a gap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.identity import domain_of
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.config import SalesforceSource
from connectors.salesforce.settings import SOQL_DATETIME
from healthscore.core.errors import ConfigError, SkippableRecord
from store import AccountRow, SignalRow

log = logging.getLogger(__name__)

SOURCE = "salesforce"
SOBJECT = "Account"
BASE_FIELDS = ("Id", "Name", "OwnerId", "Owner.Name", "Owner.Email", "SystemModstamp", "IsDeleted")
NUMERIC_TYPES = {"double", "currency", "percent", "int", "long"}
METRIC_TYPES = NUMERIC_TYPES | {"boolean", "date", "datetime"}
WRITE_BACK_TYPES = {
    "score": "Number(5, 1)",
    "grade": "Picklist (Green, Yellow, Red, Insufficient Data)",
    "trend": "Text(40)",
    "reasons": "Long Text Area(1000)",
    "updated": "Date/Time",
    "stale": "Checkbox",
    "churn_risk": "Percent(3, 1)",
    "arr_at_risk": "Currency(16, 2)",
}


@dataclass
class SyncState:
    """What one pull saw: the new cursor and the counts an operator wants to read."""

    cursor: datetime | None
    records: int = 0
    skipped: int = 0
    deleted: int = 0
    skipped_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccountRecord:
    account: AccountRow
    signals: list[SignalRow]
    crm_values: dict[str, Any]  # the health fields as the CRM holds them now
    domain: str | None = None  # the company's web domain, for identity resolution
    override: dict[str, Any] | None = None  # a CSM's override fields (when configured)


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce writes ``2026-11-20T09:14:03.000+0000``; accept ``Z`` and ``+00:00`` too
    (a time without an offset is UTC, as Salesforce's API times are)."""
    parsed = datetime.fromisoformat(value.strip())  # ~100x faster than strptime
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def check_fields(
    describe: dict[str, Any],
    source: SalesforceSource,
    config_path: str,
    churn_roles: tuple[str, ...] = (),
) -> None:
    """Every configured field must exist with a usable type; say exactly what to create
    (of the churn fields, those of ``churn_roles``: the card's churn model fills them)."""
    fields = {f["name"]: f for f in describe.get("fields", [])}
    problems = []
    for metric, name in source.metrics.items():
        f = fields.get(name)
        if f is None:
            problems.append(f"  sources.salesforce.metrics.{metric}: Account has no field {name}")
        elif f["type"] not in METRIC_TYPES:
            problems.append(
                f"  sources.salesforce.metrics.{metric}: {name} is a {f['type']} "
                f"field; metrics must be numbers, checkboxes or dates"
            )
    if source.domain_field and source.domain_field not in fields:
        problems.append(
            f"  sources.salesforce.domain_field: Account has no field {source.domain_field}"
        )
    for attr, name in source.attributes.items():
        if name.split(".")[0] not in fields:
            problems.append(f"  sources.salesforce.attributes.{attr}: Account has no field {name}")
    missing_writes = []
    for role, name in source.write_back.roles(churn_roles).items():
        f = fields.get(name)
        if f is None:
            missing_writes.append(f"  {name}  ({WRITE_BACK_TYPES[role]})")
        elif not f.get("updateable", False):
            problems.append(
                f"  sources.salesforce.write_back.{role}: {name} is not updateable "
                f"by the integration user (field-level security?)"
            )
    if source.override_fields is not None:
        for role, name in source.override_fields.model_dump().items():
            if name not in fields:
                missing_writes.append(f"  {name}  (override {role})")
    if missing_writes:
        problems.append(
            "  create these custom fields on Account (Setup → Object Manager → "
            "Account → Fields & Relationships), visible and editable by the "
            "integration user:\n" + "\n".join("  " + m for m in missing_writes)
        )
    if problems:
        raise ConfigError(
            f"{config_path}: the Salesforce org does not match the configuration:\n"
            + "\n".join(problems)
        )


def build_soql(
    source: SalesforceSource, since: datetime | None, churn_roles: tuple[str, ...] = ()
) -> str:
    fields = list(
        dict.fromkeys(
            [
                *BASE_FIELDS,
                *source.metrics.values(),
                *source.attributes.values(),
                *([source.domain_field] if source.domain_field else []),
                *source.write_back.roles(churn_roles).values(),
                *(source.override_fields.model_dump().values() if source.override_fields else ()),
            ]
        )
    )
    soql = f"SELECT {', '.join(fields)} FROM {SOBJECT}"
    if since is not None:
        # a datetime we formatted ourselves: no user text reaches the query
        soql += f" WHERE SystemModstamp >= {since.astimezone(UTC).strftime(SOQL_DATETIME)}"
    return soql + " ORDER BY SystemModstamp, Id"


def _metric_value(raw: Any, field_type: str, name: str) -> float | None:
    if raw is None:
        return None
    if field_type == "boolean":
        if not isinstance(raw, bool):
            raise ValueError(f"{name}={raw!r} is not a checkbox value")
        return 1.0 if raw else 0.0
    if field_type == "date":
        day = date.fromisoformat(str(raw))
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    if field_type == "datetime":
        return parse_sf_datetime(str(raw)).timestamp()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{name}={raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a finite number")
    return value


def _attribute(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass(frozen=True)
class AccountFields:
    """The write-back and override field names of a source, as plain dicts (a pydantic
    ``model_dump`` per record cost more than the rest of the record's conversion)."""

    write_back: dict[str, str]
    override: dict[str, str] | None

    @classmethod
    def of(cls, source: SalesforceSource, churn_roles: tuple[str, ...] = ()) -> AccountFields:
        return cls(
            source.write_back.roles(churn_roles),
            None if source.override_fields is None else source.override_fields.model_dump(),
        )


def to_account_record(
    record: dict[str, Any],
    source: SalesforceSource,
    types: dict[str, str],
    *,
    fields: AccountFields | None = None,
) -> AccountRecord:
    """One Account JSON record → account row, signals and current health values.

    ``fields``: the source's field names, read once per sync (see :class:`AccountFields`)."""
    fields = fields or AccountFields.of(source)
    account_id = record.get("Id")
    if not isinstance(account_id, str) or not account_id:
        raise SkippableRecord("<no Id>", "record has no Id")
    try:
        observed = parse_sf_datetime(str(record["SystemModstamp"]))
        name = record.get("Name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("Name is empty")
        signals = [
            SignalRow(
                account_id,
                metric,
                _metric_value(record.get(field), types[field], field),
                observed,
                SOURCE,
            )
            for metric, field in source.metrics.items()
        ]
    except (KeyError, ValueError, TypeError) as exc:
        raise SkippableRecord(account_id, str(exc)) from None
    owner = record.get("Owner") or {}
    account = AccountRow(
        id=account_id,
        crm=SOURCE,
        name=name,
        owner_email=owner.get("Email"),
        owner_name=owner.get("Name"),
        attributes={a: _attribute(record, f) for a, f in source.attributes.items()},
        deleted=bool(record.get("IsDeleted")),
    )
    crm_values = {role: record.get(field) for role, field in fields.write_back.items()}
    domain = domain_of(record.get(source.domain_field)) if source.domain_field else None
    override = None
    if fields.override is not None:
        override = _override(record, fields.override)
    return AccountRecord(account, signals, crm_values, domain, override)


def _override(record: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The override fields as values: dates and date-times parsed (a bad one is None)."""
    out: dict[str, Any] = {role: record.get(name) for role, name in names.items()}
    try:
        out["set_at"] = parse_sf_datetime(str(out["set_at"])) if out["set_at"] else None
    except ValueError:
        out["set_at"] = None
    try:  # a date: the override lasts through that day
        day = date.fromisoformat(str(out["until"])) if out["until"] else None
        out["until"] = (
            None
            if day is None
            else datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        )
    except ValueError:
        out["until"] = None
    return out


def pull_accounts(
    client: SalesforceClient,
    source: SalesforceSource,
    cursor: datetime | None,
    state: SyncState,
    *,
    config_path: str = "healthscore.yaml",
    churn_roles: tuple[str, ...] = (),
) -> Iterator[list[AccountRecord]]:
    """Yield good records page by page, from ``cursor - overlap`` on; deleted ones included.

    ``state`` collects the new cursor and the skip counts as the pages go by;
    ``churn_roles`` are the churn fields the card fills (read back like the others).
    """
    describe = client.describe(SOBJECT)
    check_fields(describe, source, config_path, churn_roles)
    types = {f["name"]: f["type"] for f in describe["fields"]}
    since = cursor - source.overlap if cursor else None
    soql = build_soql(source, since, churn_roles)
    log.info(
        "pulling Salesforce Accounts %s",
        f"modified since {since:%Y-%m-%d %H:%M:%S}Z" if since else "(full sync)",
    )
    fields = AccountFields.of(source, churn_roles)
    for page in client.query_pages(soql, include_deleted=True):
        good: list[AccountRecord] = []
        for raw in page:
            state.records += 1
            modstamp = raw.get("SystemModstamp")
            try:
                rec = to_account_record(raw, source, types, fields=fields)
            except SkippableRecord as exc:
                state.skipped += 1
                state.skipped_ids.append(exc.record_id)
                log.warning("skipped Salesforce Account %s: %s", exc.record_id, exc.reason)
                continue
            finally:
                if isinstance(modstamp, str):
                    try:
                        seen = parse_sf_datetime(modstamp)
                        state.cursor = max(state.cursor, seen) if state.cursor else seen
                    except ValueError:
                        pass
            state.deleted += rec.account.deleted
            good.append(rec)
        yield good
