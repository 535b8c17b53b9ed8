"""In-memory record store for the Salesforce emulator (thread-safe via one re-entrant lock)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.salesforce_schema import (
    SYSTEM_DATETIMES,
    FieldDef,
    SObjectSchema,
    coerce,
    default_schemas,
    make_id,
    normalize_id,
)

Clock = Callable[[], datetime]


def utc_now_ms() -> datetime:
    """Current UTC time truncated to milliseconds (Salesforce's datetime resolution)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class RecordStore:
    """Schemas plus records keyed by 18-character id, per sObject type, in insertion order.

    Records hold Python values: ``datetime.date`` for dates, aware UTC ``datetime`` for
    datetimes.  All public methods take ``self.lock``; callers may hold it across several calls.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.schemas: dict[str, SObjectSchema] = default_schemas()
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schemas}
        self._counters: dict[str, int] = {}
        self._clock = clock or utc_now_ms

    def now(self) -> datetime:
        return self._clock()

    def schema(self, name: str) -> SObjectSchema | None:
        """Case-insensitive schema lookup."""
        with self.lock:
            for key, schema in self.schemas.items():
                if key.lower() == name.lower():
                    return schema
        return None

    def require_schema(self, name: str) -> SObjectSchema:
        schema = self.schema(name)
        if schema is None:
            raise KeyError(f"sObject type '{name}' is not supported.")
        return schema

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        """The live id -> record mapping (hold ``lock`` while using it)."""
        return self._records[self.require_schema(name).name]

    def _coerce_fields(
        self,
        schema: SObjectSchema,
        fields: Mapping[str, Any],
        cache: dict[str, FieldDef] | None = None,
    ) -> dict[str, Any]:
        """Field names canonicalised and values coerced (``cache``: name -> FieldDef memo)."""
        out: dict[str, Any] = {}
        for name, value in fields.items():
            fdef = cache.get(name) if cache is not None else None
            if fdef is None:
                fdef = schema.field(name)
                if fdef is None:
                    raise KeyError(f"No such column '{name}' on sobject of type {schema.name}")
                if cache is not None:
                    cache[name] = fdef
            out[fdef.name] = coerce(fdef, value)
        return out

    def insert(self, sobject: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records (any explicit system timestamps are kept); returns their ids."""
        with self.lock:
            schema = self.require_schema(sobject)
            table = self._records[schema.name]
            blank: dict[str, Any] = {
                name: fdef.default
                if fdef.default is not None
                else (False if fdef.type == "boolean" else None)
                for name, fdef in schema.fields.items()
            }
            autonumbers = [f.name for f in schema.fields.values() if f.autonumber]
            if "IsActive" in schema.fields:
                blank["IsActive"] = True
            ids: list[str] = []
            cache: dict[str, FieldDef] = {}
            for fields in records:
                values = self._coerce_fields(schema, fields, cache)
                counter = self._counters.get(schema.name, 0) + 1
                self._counters[schema.name] = counter
                record_id = make_id(schema.key_prefix, counter)
                now = self.now()
                record = {**blank, **values, "Id": record_id}
                for stamp in SYSTEM_DATETIMES:
                    if stamp in schema.fields and record.get(stamp) is None:
                        record[stamp] = now
                for name in autonumbers:
                    if record.get(name) is None:
                        record[name] = f"{counter:08d}"
                self.derive(schema, record)
                table[record_id] = record
                ids.append(record_id)
            return ids

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The live record (or ``None``); accepts 15- or 18-character ids."""
        normalized = normalize_id(record_id)
        if normalized is None:
            return None
        with self.lock:
            return self.table(sobject).get(normalized)

    def _require(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self.get(sobject, record_id)
        if record is None:
            raise KeyError(f"no {sobject} with id {record_id!r}")
        return record

    def touch(self, record: dict[str, Any], user_write: bool = True) -> None:
        now = self.now()
        if "SystemModstamp" in record:
            record["SystemModstamp"] = now
        if user_write and "LastModifiedDate" in record:
            record["LastModifiedDate"] = now

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Set fields (no permission checks) and bump SystemModstamp unless it is given."""
        with self.lock:
            schema = self.require_schema(sobject)
            record = self._require(sobject, record_id)
            values = self._coerce_fields(schema, fields)
            values.pop("Id", None)
            self.touch(record)
            record.update(values)
            self.derive(schema, record)

    def derive(self, schema: SObjectSchema, record: dict[str, Any]) -> None:
        """Recompute the schema's derived fields (IsClosed, IsWon, ...) of a live record."""
        if schema.derive is not None:
            schema.derive(record, self.now())

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft-delete: IsDeleted=True and bump SystemModstamp."""
        with self.lock:
            record = self._require(sobject, record_id)
            if "IsDeleted" not in record:
                raise ValueError(f"{sobject} records cannot be deleted")
            record["IsDeleted"] = True
            self.touch(record)

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._require(sobject, record_id))

    def records(self, sobject: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.table(sobject).values()]

    def find_by(self, sobject: str, field: str, value: Any) -> dict[str, Any] | None:
        with self.lock:
            for record in self.table(sobject).values():
                if record.get(field) == value:
                    return record
        return None

    def find_all_by(
        self, sobject: str, field: str, value: Any, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Live records whose ``field`` equals ``value`` (strings compared case-insensitively)."""
        wanted = value.casefold() if isinstance(value, str) else value
        with self.lock:
            out = []
            for record in self.table(sobject).values():
                if record.get("IsDeleted") and not include_deleted:
                    continue
                got = record.get(field)
                if (got.casefold() if isinstance(got, str) else got) == wanted:
                    out.append(record)
            return out
