"""SOQL execution for the Salesforce emulator: filtering, projection and paged cursors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox import soql
from sandbox.salesforce_errors import ApiError
from sandbox.salesforce_schema import SObjectSchema, make_id, normalize_id, to_json
from sandbox.salesforce_store import RecordStore

_NO_COLUMN_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_NO_RELATION_HINT = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the "
    "custom relationship name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)

MIN_BATCH, MAX_BATCH = 200, 2000


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    batch: int
    endpoint: str


@dataclass(frozen=True)
class _Step:
    """Follow reference field ``fk`` into sObject ``target`` (or, for a polymorphic field such
    as ``Task.WhatId``, into whichever of ``targets`` holds the referenced id)."""

    fk: str
    target: str
    targets: tuple[str, ...] = ()


class _Plan:
    """Field paths of one query resolved against the schemas."""

    def __init__(self, store: RecordStore, root: SObjectSchema) -> None:
        self.store = store
        self.root = root
        self.paths: dict[str, tuple[list[_Step], str]] = {}
        self.relations: dict[tuple[str, str], _Step] = {}
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}

    def resolve(self, path: str) -> tuple[str, str]:
        parts = path.split(".")
        schema = self.root
        canon: list[str] = []
        steps: list[_Step] = []
        for rel in parts[:-1]:
            fdef = schema.relationship(rel)
            target = self.store.schema(fdef.reference_to[0]) if fdef is not None else None
            if fdef is None or target is None or fdef.relationship_name is None:
                raise soql.SoqlFieldError(
                    f"Didn't understand relationship '{rel}' in field path. {_NO_RELATION_HINT}"
                )
            targets = tuple(
                t.name
                for t in (self.store.schema(name) for name in fdef.reference_to)
                if t is not None
            )
            step = _Step(fdef.name, target.name, targets)
            self.relations[(schema.name, fdef.relationship_name)] = step
            canon.append(fdef.relationship_name)
            steps.append(step)
            schema = target
        fdef = schema.field(parts[-1])
        if fdef is None:
            raise soql.SoqlFieldError(
                f"No such column '{parts[-1]}' on entity '{schema.name}'. {_NO_COLUMN_HINT}"
            )
        canon.append(fdef.name)
        canonical = ".".join(canon)
        self.paths[canonical] = (steps, fdef.name)
        return canonical, fdef.type

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self.store.table(name)
        return table

    def follow(self, record: dict[str, Any], step: _Step) -> tuple[str, dict[str, Any]] | None:
        """The (type, record) a reference field points at, or ``None``."""
        ref = record.get(step.fk)
        if not ref:
            return None
        for name in step.targets or (step.target,):
            found = self.table(name).get(ref)
            if found is not None:
                return name, found
        return None

    def get(self, record: dict[str, Any], path: str) -> Any:
        steps, final = self.paths[path]
        current: dict[str, Any] | None = record
        for step in steps:
            hit = self.follow(current, step) if current is not None else None
            current = hit[1] if hit is not None else None
            if current is None:
                return None
        return current.get(final) if current is not None else None

    def projector(
        self, schema_name: str, fields: list[list[str]], version: str
    ) -> Callable[..., dict[str, Any]]:
        """Compile the SELECT list into a function rendering one record as Salesforce JSON."""
        plain: list[str] = []
        nested: list[tuple[str, _Step, Callable[..., dict[str, Any]]]] = []
        order: list[str] = []
        for parts in fields:
            head = parts[0]
            if head in order:
                continue
            order.append(head)
            if len(parts) == 1:
                plain.append(head)
                continue
            step = self.relations[(schema_name, head)]
            sub = [p[1:] for p in fields if len(p) > 1 and p[0] == head]
            nested.append((head, step, self.projector(step.target, sub, version)))
        base = f"/services/data/v{version}/sobjects/"
        url = f"{base}{schema_name}/"
        nested_by_name = {name: (step, render) for name, step, render in nested}

        def render(record: dict[str, Any], type_name: str = schema_name) -> dict[str, Any]:
            href = url if type_name == schema_name else f"{base}{type_name}/"
            out: dict[str, Any] = {"attributes": {"type": type_name, "url": href + record["Id"]}}
            for name in order:
                if name in nested_by_name:
                    step, sub_render = nested_by_name[name]
                    hit = self.follow(record, step)
                    out[name] = None if hit is None else sub_render(hit[1], hit[0])
                else:
                    out[name] = to_json(record.get(name))
            return out

        return render


class QueryEngine:
    """Runs SOQL against a :class:`RecordStore` and serves snapshotted pages by locator."""

    def __init__(self, store: RecordStore, max_cursors: int = 50) -> None:
        self.store = store
        self.max_cursors = max_cursors
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._counter = 0
        self._lock = threading.Lock()

    def run(self, text: str, *, include_deleted: bool, batch: int, version: str) -> dict[str, Any]:
        """Execute a query; the full result is snapshotted so later pages are stable."""
        endpoint = "queryAll" if include_deleted else "query"
        try:
            parsed = soql.parse(text)
            with self.store.lock:
                schema = self._require_schema(parsed.sobject)
                plan = _Plan(self.store, schema)
                query = soql.bind(parsed, plan.resolve, normalize_id)
                rows = self._select(plan, query, include_deleted)
                if query.count_only:
                    return {"totalSize": len(rows), "done": True, "records": []}
                render = plan.projector(schema.name, [f.split(".") for f in query.fields], version)
                projected = [render(r) for r in rows]
        except soql.SoqlError as exc:
            raise ApiError(400, exc.error_code, str(exc)) from exc
        cursor = _Cursor(projected, batch, endpoint)
        if len(projected) <= batch:
            return self._page(cursor, None, 0, version)
        with self._lock:
            self._counter += 1
            locator = make_id("01g", self._counter)
            self._cursors[locator] = cursor
            while len(self._cursors) > self.max_cursors:
                self._cursors.popitem(last=False)
        return self._page(cursor, locator, 0, version)

    def snapshot(
        self, text: str, *, include_deleted: bool
    ) -> tuple[str, list[str], list[list[Any]]]:
        """Run a query for Bulk API 2.0: (object, column paths, rows of stored values).

        Raises :class:`ApiError` like :meth:`run`, plus 400 for what Bulk API 2.0 query does
        not support (``COUNT()`` and other aggregates, ``OFFSET``).
        """
        try:
            parsed = soql.parse(text)
            if parsed.count_only:
                raise ApiError(
                    400,
                    "API_ERROR",
                    "Aggregate queries (COUNT() and other aggregate functions) are not "
                    "supported by Bulk API 2.0 query",
                )
            if parsed.offset is not None:
                raise ApiError(400, "API_ERROR", "OFFSET is not supported by Bulk API 2.0 query")
            with self.store.lock:
                schema = self._require_schema(parsed.sobject)
                plan = _Plan(self.store, schema)
                query = soql.bind(parsed, plan.resolve, normalize_id)
                rows = self._select(plan, query, include_deleted)
                values = [[plan.get(r, f) for f in query.fields] for r in rows]
        except soql.SoqlError as exc:
            raise ApiError(400, exc.error_code, str(exc)) from exc
        return schema.name, list(query.fields), values

    def _require_schema(self, name: str) -> SObjectSchema:
        schema = self.store.schema(name)
        if schema is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity "
                "name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        return schema

    def more(self, locator: str, offset: int, *, version: str) -> dict[str, Any]:
        """The page of a snapshotted result starting at ``offset``."""
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is not None:
                self._cursors.move_to_end(locator)
        if cursor is None or offset > len(cursor.rows):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, locator, offset, version)

    @staticmethod
    def _select(plan: _Plan, query: soql.Query, include_deleted: bool) -> list[dict[str, Any]]:
        table = plan.table(plan.root.name)
        rows = [
            r
            for r in table.values()
            if (include_deleted or not r.get("IsDeleted"))
            and soql.matches(query.where, lambda path, r=r: plan.get(r, path))  # type: ignore[misc]
        ]
        if query.order_by:
            rows = soql.sort_rows(rows, query.order_by, plan.get)
        start = query.offset or 0
        end = start + query.limit if query.limit is not None else None
        return rows[start:end]

    @staticmethod
    def _page(cursor: _Cursor, locator: str | None, offset: int, version: str) -> dict[str, Any]:
        records = cursor.rows[offset : offset + cursor.batch]
        next_offset = offset + len(records)
        done = next_offset >= len(cursor.rows)
        page: dict[str, Any] = {"totalSize": len(cursor.rows), "done": done}
        if not done and locator is not None:
            page["nextRecordsUrl"] = (
                f"/services/data/v{version}/{cursor.endpoint}/{locator}-{next_offset}"
            )
        page["records"] = records
        return page


def batch_size_hint(header: str | None, page_size: int) -> int:
    """Effective batch size from ``Sforce-Query-Options: batchSize=N`` (clamped 200..2000)."""
    if header:
        for part in header.split(","):
            key, _, value = part.partition("=")
            if key.strip().lower() == "batchsize" and value.strip().isdigit():
                return min(page_size, max(MIN_BATCH, min(MAX_BATCH, int(value))))
    return page_size
