"""sObject Collections upsert on an external id for the Salesforce emulator (API v46.0+).

``PATCH /composite/sobjects/{SObject}/{ExternalIdField}`` with ``{"allOrNone", "records"}``:
each record carries its external-id value; no match inserts it, one match updates it. The
answer is 200 with one SaveResult per record, in order, each with ``created`` — a record that
fails (validation, an inactive owner, a duplicate key in the same request) fails alone unless
``allOrNone`` is true (then the others are rolled back). More than 200 records, an unknown
field or an external-id field that does not exist fail the whole request, like Salesforce
(/work/shared/api-specs/salesforce.md §4).

Faults armed with ``SalesforceEmulator.fail_records`` match a record's external-id value too,
so a test can make one task of a batch fail by its key.
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce_errors import ApiError, record_error
from sandbox.salesforce_schema import FieldDef, SObjectSchema, coerce
from sandbox.salesforce_store import RecordStore
from sandbox.salesforce_writes import (
    _ROLLED_BACK,
    MAX_COLLECTION,
    InjectedFailures,
    PendingWrite,
    _value_errors,
    apply_write,
    check_create,
    check_record,
    insert_checked,
    parse_values,
)

History = list[tuple[str, dict[str, Any]]]


def _external_field(schema: SObjectSchema | None, name: str, field_name: str) -> FieldDef:
    if schema is None:
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
    fdef = schema.field(field_name)
    if fdef is None or not fdef.external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {field_name}",
        )
    return fdef


def _records(payload: Any) -> tuple[list[Any], bool]:
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with a 'records' array")
    records, all_or_none = payload.get("records"), payload.get("allOrNone", False)
    if not isinstance(records, list) or not isinstance(all_or_none, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected 'records' array and boolean 'allOrNone'")
    if len(records) > MAX_COLLECTION:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    return records, all_or_none


class _Item:
    """One input record: its key, parsed values, the record it matched, its errors."""

    def __init__(self, key: Any, values: dict[FieldDef, Any]) -> None:
        self.key = key
        self.values = values
        self.match: str | None = None
        self.errors: list[dict[str, object]] = []


def upsert_collection(
    store: RecordStore,
    name: str,
    field_name: str,
    payload: Any,
    failures: InjectedFailures,
    history: History,
) -> list[dict[str, Any]]:
    """``PATCH /composite/sobjects/{name}/{field_name}``: a SaveResult per record, in order."""
    schema = store.schema(name)
    fdef = _external_field(schema, name, field_name)
    assert schema is not None
    records, all_or_none = _records(payload)
    with store.lock:
        items: list[_Item] = []
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            raw_id, values = parse_values(schema, record)  # unknown fields: the whole request
            item = _Item(values.pop(fdef, None), values)
            if not type_name or str(type_name).casefold() != schema.name.casefold():
                item.errors = [
                    record_error("INVALID_TYPE", "Must send a concrete entity type.", [])
                ]
            elif raw_id is not None:
                item.errors = [
                    record_error(
                        "INVALID_FIELD", "Id is not allowed in an upsert by external id", ["Id"]
                    )
                ]
            elif item.key is None or item.key == "":
                item.errors = [
                    record_error("MISSING_ARGUMENT", f"{fdef.name} not specified", [fdef.name])
                ]
            items.append(item)
        _match_and_check(store, schema, fdef, items, failures)
        failed = any(item.errors for item in items)
        results: list[dict[str, Any]] = []
        for item in items:
            if item.errors:
                results.append({"success": False, "errors": item.errors, "created": False})
            elif all_or_none and failed:
                results.append({"success": False, "errors": [dict(_ROLLED_BACK)], "created": False})
            elif item.match is not None:
                apply_write(
                    store, PendingWrite(schema, item.match, item.values, item.match), history
                )
                results.append({"id": item.match, "success": True, "errors": [], "created": False})
            else:
                values = {**item.values, fdef: coerce(fdef, item.key)}
                new_id = insert_checked(store, schema, values, history)
                results.append({"id": new_id, "success": True, "errors": [], "created": True})
        return results


def _match_and_check(
    store: RecordStore,
    schema: SObjectSchema,
    fdef: FieldDef,
    items: list[_Item],
    failures: InjectedFailures,
) -> None:
    """Match each key against the live records (one pass over the table) and validate."""
    index: dict[Any, list[str]] = {}
    for record in store.table(schema.name).values():
        value = record.get(fdef.name)
        if value is not None and not record.get("IsDeleted"):
            index.setdefault(_fold(value), []).append(str(record["Id"]))
    seen: set[Any] = set()
    claimed: dict[tuple[str, Any], str | None] = {}
    for item in items:
        if item.errors:
            continue
        folded = _fold(item.key)
        if folded in seen:
            item.errors = [
                record_error(
                    "DUPLICATE_EXTERNAL_ID",
                    f"Duplicate external id specified: {item.key}",
                    [fdef.name],
                )
            ]
            continue
        seen.add(folded)
        injected = failures.take(str(item.key))
        if injected is not None:
            item.errors = [record_error(injected[0], injected[1], [])]
            continue
        matches = index.get(folded, [])
        if len(matches) > 1:
            item.errors = [
                record_error(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{fdef.name}: more than one record found for external id field: "
                    f"{', '.join(matches)}",
                    [fdef.name],
                )
            ]
            continue
        key_errors = _value_errors(store, fdef, item.key)
        if key_errors:
            item.errors = key_errors
        elif matches:
            item.match = matches[0]
            pending = PendingWrite(schema, item.match, item.values)
            item.errors = check_record(store, pending, None)
        else:  # the key's uniqueness is settled above; the other fields' here
            item.errors = check_create(store, schema, item.values, claimed)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value
