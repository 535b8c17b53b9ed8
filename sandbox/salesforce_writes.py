"""Record writes for the Salesforce emulator: sObject Collections (update and create) and the
validation shared with single-record writes (:mod:`sandbox.salesforce_records`).

Request-level problems raise :class:`ApiError` (``errorCode``); per-record problems become
SaveResults with ``statusCode`` errors, exactly like Salesforce.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce_errors import ApiError, record_error
from sandbox.salesforce_schema import FieldDef, SObjectSchema, coerce, normalize_id, round_to_scale
from sandbox.salesforce_store import RecordStore

MAX_COLLECTION = 200
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ROLLED_BACK = record_error(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
    [],
)


class InjectedFailures:
    """``fail_records`` bookkeeping: id -> (statusCode, message, remaining uses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[Any]] = {}

    def add(self, ids: Mapping[str, tuple[str, str]], times: int) -> None:
        with self._lock:
            for raw_id, (code, message) in ids.items():
                self._pending[normalize_id(raw_id) or raw_id] = [code, message, times]

    def take(self, record_id: str) -> tuple[str, str] | None:
        with self._lock:
            entry = self._pending.get(record_id)
            if entry is None:
                return None
            entry[2] -= 1
            if entry[2] <= 0:
                del self._pending[record_id]
            return entry[0], entry[1]


@dataclass
class PendingWrite:
    """One input record of a write request after request-level parsing."""

    schema: SObjectSchema | None
    raw_id: Any
    values: dict[FieldDef, Any]
    record_id: str | None = None
    errors: list[dict[str, object]] = field(default_factory=list)


def parse_values(
    schema: SObjectSchema, record: Mapping[str, Any]
) -> tuple[Any, dict[FieldDef, Any]]:
    """Split ``id`` from field values; unknown fields / wrong JSON types are request-level."""
    raw_id: Any = None
    values: dict[FieldDef, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if key.lower() == "id":
            raw_id = value
            continue
        fdef = schema.field(key)
        if fdef is None:
            raise ApiError(
                400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {schema.name}"
            )
        try:
            values[fdef] = coerce(fdef, value)
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", str(exc)) from exc
    return raw_id, values


def _value_errors(store: RecordStore, fdef: FieldDef, value: Any) -> list[dict[str, object]]:
    label, name = fdef.label, fdef.name
    if value is None:
        if not fdef.nillable:
            return [
                record_error(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
            ]
        return []
    if fdef.is_string and fdef.length and len(value) > fdef.length:
        shown = value if len(value) <= 40 else value[:37] + "..."
        return [
            record_error(
                "STRING_TOO_LONG",
                f"{label}: data value too large: {shown} (max length={fdef.length})",
                [name],
            )
        ]
    if fdef.restricted and value not in fdef.picklist:
        return [
            record_error(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{label}: bad value for restricted picklist field: {value}",
                [name],
            )
        ]
    numeric = fdef.precision and isinstance(value, (int, float))
    if numeric and abs(value) >= 10 ** (fdef.precision - fdef.scale):
        return [
            record_error(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {value}",
                [name],
            )
        ]
    if fdef.type == "email" and not _EMAIL_RE.fullmatch(value):
        return [
            record_error(
                "INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", [name]
            )
        ]
    if fdef.type == "reference":
        target = normalize_id(value)
        exists = target is not None and any(
            store.get(ref, target) is not None for ref in fdef.reference_to
        )
        if not exists:
            return [
                record_error(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{label}: id value of incorrect type: {value}",
                    [name],
                )
            ]
    return []


def _normalize(fdef: FieldDef, value: Any) -> Any:
    if fdef.type == "reference" and value is not None:
        return normalize_id(value)
    if fdef.type in ("double", "currency", "percent") and value is not None:
        return round_to_scale(fdef, value)
    return value


def check_record(
    store: RecordStore, item: PendingWrite, failures: InjectedFailures | None
) -> list[dict[str, object]]:
    """Per-record validation; fills ``item.record_id`` when the id is usable."""
    schema = item.schema
    if schema is None:
        return [record_error("INVALID_TYPE", "Must send a concrete entity type.", [])]
    if item.raw_id is None:
        return [record_error("MISSING_ARGUMENT", "Id not specified in an update call", [])]
    record_id = normalize_id(item.raw_id)
    if record_id is None or not record_id.startswith(schema.key_prefix):
        message = f"{schema.label} ID: id value of incorrect type: {item.raw_id}"
        return [record_error("MALFORMED_ID", message, ["Id"])]
    item.record_id = record_id
    if failures is not None:
        injected = failures.take(record_id)
        if injected is not None:
            return [record_error(injected[0], injected[1], [])]
    record = store.get(schema.name, record_id)
    if record is None:
        return [record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])]
    if record.get("IsDeleted"):
        return [record_error("ENTITY_IS_DELETED", "entity is deleted", ["Id"])]
    readonly = [f.name for f in item.values if not f.updateable]
    if readonly:
        return [
            record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                readonly,
            )
        ]
    errors: list[dict[str, object]] = []
    for fdef, value in item.values.items():
        errors.extend(_value_errors(store, fdef, value))
    errors.extend(unique_errors(store, schema, item.values, record_id, {}))
    return errors


def unique_errors(
    store: RecordStore,
    schema: SObjectSchema,
    values: Mapping[FieldDef, Any],
    own_id: str | None,
    claimed: dict[tuple[str, Any], str | None],
) -> list[dict[str, object]]:
    """DUPLICATE_VALUE for unique fields already used by another live record (or earlier in
    the same request: ``claimed`` maps ``(field, folded value)`` to the claiming record's id)."""
    errors: list[dict[str, object]] = []
    for fdef, value in values.items():
        if not fdef.unique or value is None:
            continue
        others = [
            r["Id"] for r in store.find_all_by(schema.name, fdef.name, value) if r["Id"] != own_id
        ]
        key = (fdef.name, value.casefold() if isinstance(value, str) else value)
        if not others and key in claimed:
            others = [claimed[key] or ""]
        if others:
            errors.append(
                record_error(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {fdef.name} duplicates value on record with id: "
                    f"{others[0]}",
                    [fdef.name],
                )
            )
        else:
            claimed[key] = own_id
    return errors


def apply_write(
    store: RecordStore, item: PendingWrite, history: list[tuple[str, dict[str, Any]]]
) -> None:
    assert item.schema is not None and item.record_id is not None
    record = store.get(item.schema.name, item.record_id)
    assert record is not None
    written = {f.name: _normalize(f, v) for f, v in item.values.items()}
    record.update(written)
    store.touch(record)
    store.derive(item.schema, record)
    history.append((item.record_id, dict(written)))


def update_collection(
    store: RecordStore,
    payload: Any,
    failures: InjectedFailures,
    history: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """``PATCH /composite/sobjects``: one SaveResult per input record, in order."""
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with a 'records' array")
    records = payload.get("records")
    all_or_none = payload.get("allOrNone", False)
    if not isinstance(records, list) or not isinstance(all_or_none, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected 'records' array and boolean 'allOrNone'")
    if len(records) > MAX_COLLECTION:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    with store.lock:
        items: list[PendingWrite] = []
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            if not type_name:
                items.append(PendingWrite(None, None, {}))
                continue
            schema = store.schema(str(type_name))
            if schema is None:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
            raw_id, values = parse_values(schema, record)
            items.append(PendingWrite(schema, raw_id, values))
        for item in items:
            item.errors = check_record(store, item, failures)
        failed = any(item.errors for item in items)
        results: list[dict[str, Any]] = []
        for item in items:
            if item.errors:
                results.append({"success": False, "errors": item.errors})
            elif all_or_none and failed:
                results.append({"success": False, "errors": [dict(_ROLLED_BACK)]})
            else:
                apply_write(store, item, history)
                results.append({"id": item.record_id, "success": True, "errors": []})
        return results


# ---------------------------------------------------------------------------- creates


def _required(fdef: FieldDef) -> bool:
    return (
        not fdef.nillable
        and fdef.createable
        and fdef.default is None
        and fdef.type != "boolean"
        and fdef.name != "OwnerId"
    )


def check_create(
    store: RecordStore,
    schema: SObjectSchema,
    values: Mapping[FieldDef, Any],
    claimed: dict[tuple[str, Any], str | None],
) -> list[dict[str, object]]:
    """Per-record validation of a new record (createable, required, values, unique)."""
    readonly = [f.name for f in values if not f.createable]
    if readonly:
        return [
            record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                readonly,
            )
        ]
    missing = [f.name for f in schema.fields.values() if _required(f) and values.get(f) is None]
    if missing:
        return [
            record_error(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        ]
    errors: list[dict[str, object]] = []
    for fdef, value in values.items():
        errors.extend(_value_errors(store, fdef, value))
    if not errors:
        errors.extend(unique_errors(store, schema, values, None, claimed))
    return errors


def default_owner(store: RecordStore) -> str | None:
    """The running user stand-in: the first active User of the org (``None`` when none)."""
    with store.lock:
        for user in store.table("User").values():
            if user.get("IsActive"):
                return str(user["Id"])
    return None


def insert_checked(
    store: RecordStore,
    schema: SObjectSchema,
    values: Mapping[FieldDef, Any],
    history: list[tuple[str, dict[str, Any]]],
) -> str:
    """Insert an already validated record (OwnerId defaults to :func:`default_owner`)."""
    fields = {f.name: _normalize(f, v) for f, v in values.items()}
    if "OwnerId" in schema.fields and fields.get("OwnerId") is None:
        owner = default_owner(store)
        if owner is not None:
            fields["OwnerId"] = owner
    (record_id,) = store.insert(schema.name, [fields])
    history.append((record_id, dict(fields)))
    return record_id


def create_collection(
    store: RecordStore, payload: Any, history: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``POST /composite/sobjects``: one SaveResult per input record, in order."""
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with a 'records' array")
    records = payload.get("records")
    all_or_none = payload.get("allOrNone", False)
    if not isinstance(records, list) or not isinstance(all_or_none, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected 'records' array and boolean 'allOrNone'")
    if len(records) > MAX_COLLECTION:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    with store.lock:
        items: list[PendingWrite] = []
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            if not type_name:
                items.append(PendingWrite(None, None, {}))
                continue
            schema = store.schema(str(type_name))
            if schema is None:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
            raw_id, values = parse_values(schema, record)
            items.append(PendingWrite(schema, raw_id, values))
        claimed: dict[tuple[str, Any], str | None] = {}
        for item in items:
            if item.schema is None:
                message = "Must send a concrete entity type."
                item.errors = [record_error("INVALID_TYPE", message, [])]
            elif item.raw_id is not None:
                item.errors = [
                    record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                ]
            else:
                item.errors = check_create(store, item.schema, item.values, claimed)
        failed = any(item.errors for item in items)
        results: list[dict[str, Any]] = []
        for item in items:
            if item.errors:
                results.append({"success": False, "errors": item.errors})
            elif all_or_none and failed:
                results.append({"success": False, "errors": [dict(_ROLLED_BACK)]})
            else:
                assert item.schema is not None
                new_id = insert_checked(store, item.schema, item.values, history)
                results.append({"id": new_id, "success": True, "errors": []})
        return results
