"""CRM v3 object routes of the HubSpot emulator: list, get, create, update, archive, batch, search.

A mixin of :class:`sandbox.hubspot.HubSpotEmulator` (routes are collected through the MRO).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from sandbox.hubspot_errors import not_found, validation_error
from sandbox.hubspot_schema import association_target, iso_from_ms, resolve_object_type, type_label
from sandbox.hubspot_search import SearchLimits, search
from sandbox.hubspot_store import HubSpotStore, Record
from sandbox.server import route
from sandbox.wire import Request, Response

_OBJ = r"/crm/v3/objects/(?P<type>[^/]+)"
Link = tuple[str, str, str, int]  # to type, to id, category, type id


# ---------------------------------------------------------------------- request helpers
def object_type(raw: str) -> str:
    resolved = resolve_object_type(raw)
    if resolved is None:
        raise validation_error(f"Unable to infer object type from: {raw}")
    return resolved


def json_body(req: Request) -> Any:
    try:
        return req.json()
    except ValueError as exc:
        line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise validation_error(f"Invalid input JSON on line {line}, column {col}: {exc}") from None


def json_object(req: Request) -> dict[str, Any]:
    body = json_body(req)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: expected an object")
    return body


def query_list(req: Request, name: str) -> list[str] | None:
    """A list query parameter: repeated keys arrive comma-joined (see HubSpotEmulator)."""
    raw = req.query.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def query_bool(req: Request, name: str) -> bool:
    return (req.query.get(name) or "").strip().lower() == "true"


def query_int(req: Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(f"Invalid {name}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise validation_error(f"{name} must be between {low} and {high}; got {value}")
    return value


def encode_cursor(record_id: str) -> str:
    return base64.urlsafe_b64encode(record_id.encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.isdigit():
        raise validation_error(f"Invalid paging cursor: after={raw}")
    return int(text)


def batch_body(
    started_ms: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok: int
) -> Response:
    """BatchResponse JSON: ``ok`` status when no error, else 207 with ``numErrors``."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    stamp = iso_from_ms(started_ms)
    body.update({"requestedAt": stamp, "startedAt": stamp, "completedAt": stamp})
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return Response(207, body)
    return Response(ok, body)


def missing_error(object_type: str, ids: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {type_label(object_type)} objects, they may be deleted "
        "or not exist.",
        "context": {"ids": ids},
        "links": {},
    }


class ObjectRoutes:
    """``/crm/v3/objects/...`` handlers (state lives in ``self._store``)."""

    _store: HubSpotStore
    search_limits: SearchLimits
    batch_limit: int

    # ------------------------------------------------------------------ helpers
    def _inputs(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise validation_error("inputs must be an array of objects")
        if len(inputs) > self.batch_limit:
            raise validation_error(
                f"Batch input limit exceeded: {len(inputs)} inputs were given; the limit is "
                f"{self.batch_limit}",
                context={"limit": [str(self.batch_limit)]},
            )
        return inputs

    def _links(self, from_type: str, raw: Any) -> list[Link]:
        """Validate a create body's ``associations``: [{"to": {"id"}, "types": [...]}]."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise validation_error("associations must be an array")
        links: list[Link] = []
        for item in raw:
            to_id = str(((item or {}).get("to") or {}).get("id") or "")
            types = (item or {}).get("types") or []
            if not to_id or not isinstance(types, list) or not types:
                raise validation_error("Each association needs to.id and at least one type")
            for spec in types:
                category = str((spec or {}).get("associationCategory") or "HUBSPOT_DEFINED")
                try:
                    type_id = int((spec or {}).get("associationTypeId"))
                except (TypeError, ValueError):
                    raise validation_error("associationTypeId must be a number") from None
                to_type = association_target(from_type, type_id)
                if category != "HUBSPOT_DEFINED" or to_type is None:
                    raise validation_error(
                        f"{category} association type {type_id} is not valid for {from_type}"
                    )
                if self._store.get(to_type, to_id) is None:
                    raise validation_error(
                        f"One or more associations are invalid: {to_type} {to_id} does not exist"
                    )
                links.append((to_type, to_id, category, type_id))
        return links

    def _record_write(self, record: Record, values: Mapping[str, str | None]) -> None:
        self._store.write_history.append((record.object_type, record.id, dict(values)))

    def _create_one(self, t: str, item: Mapping[str, Any]) -> tuple[Record, dict[str, Any]]:
        values = self._store.check_properties(t, item.get("properties"), creating=True)
        links = self._links(t, item.get("associations"))
        return self._commit_create(t, values, links)

    def _commit_create(
        self, t: str, values: dict[str, str | None], links: list[Link]
    ) -> tuple[Record, dict[str, Any]]:
        record = self._store.create(t, values)
        for to_type, to_id, category, type_id in links:
            self._store.associate(t, record.id, to_type, to_id, type_id, category)
        self._record_write(record, values)
        return record, self._store.render(record, None, extra=values)

    def _find(
        self, t: str, raw_id: str, id_property: str | None, archived: bool = False
    ) -> Record | None:
        if id_property and id_property != "hs_object_id":
            defn = self._store.prop(t, id_property)
            if defn is None or not defn.has_unique_value:
                raise validation_error(f"{id_property} is not a unique identifier property")
            record = self._store.find_unique(t, id_property, raw_id)
            return record if record is not None and record.archived == archived else None
        return self._store.get(t, raw_id, archived=archived)

    # ------------------------------------------------------------------ basic
    @route("GET", _OBJ + r"/?")
    def _list(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        limit = query_int(req, "limit", 10, 1, 100)
        after = req.query.get("after")
        start = decode_cursor(after) if after else None
        wanted = query_list(req, "properties")
        linked = [x for x in map(resolve_object_type, query_list(req, "associations") or []) if x]
        with self._store.lock:
            rows = self._store.page(t, start, limit + 1, archived=query_bool(req, "archived"))
            body: dict[str, Any] = {
                "results": [
                    self._store.render(r, wanted, associations=linked) for r in rows[:limit]
                ]
            }
            if len(rows) > limit:
                cursor = encode_cursor(rows[limit].id)
                body["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
        return Response(200, body)

    @route("POST", _OBJ + r"/?")
    def _create(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        body = json_object(req)
        with self._store.lock:
            _, rendered = self._create_one(t, body)
        return Response(201, rendered)

    @route("GET", _OBJ + r"/(?P<id>[^/]+)/?")
    def _get(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        linked = [x for x in map(resolve_object_type, query_list(req, "associations") or []) if x]
        with self._store.lock:
            record = self._find(
                t, req.path_params["id"], req.query.get("idProperty"), query_bool(req, "archived")
            )
            if record is None:
                raise not_found("Object not found.", context={"id": [req.path_params["id"]]})
            body = self._store.render(record, query_list(req, "properties"), associations=linked)
        return Response(200, body)

    @route("PATCH", _OBJ + r"/(?P<id>[^/]+)/?")
    def _update(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        body = json_object(req)
        with self._store.lock:
            record = self._find(t, req.path_params["id"], req.query.get("idProperty"))
            if record is None:
                raise not_found(context={"id": [req.path_params["id"]]})
            values = self._store.check_properties(
                t, body.get("properties"), creating=False, record_id=record.id
            )
            self._store.update(record, values)
            self._record_write(record, values)
            rendered = self._store.render(record, None, extra=values)
        return Response(200, rendered)

    @route("DELETE", _OBJ + r"/(?P<id>[^/]+)/?")
    def _archive(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        with self._store.lock:
            record = self._store.get(t, req.path_params["id"])
            if record is not None:
                self._store.archive(record)
        return Response(204)

    # ------------------------------------------------------------------ batch
    @route("POST", _OBJ + r"/batch/(?P<op>read|create|update|upsert|archive)/?")
    def _batch(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        body = json_object(req)
        inputs = self._inputs(body)
        op = req.path_params["op"]
        with self._store.lock:
            started = self._store.now_ms()
            if op == "read":
                return self._batch_read(t, body, inputs, query_bool(req, "archived"), started)
            if op == "create":
                checked = [
                    (
                        self._store.check_properties(t, i.get("properties"), creating=True),
                        self._links(t, i.get("associations")),
                    )
                    for i in inputs
                ]
                results = [self._commit_create(t, v, links)[1] for v, links in checked]
                return batch_body(started, results, [], 201)
            if op == "update":
                return self._batch_update(t, inputs, started)
            if op == "upsert":
                return self._batch_upsert(t, inputs, started)
            for item in inputs:
                record = self._store.get(t, str(item.get("id") or ""))
                if record is not None:
                    self._store.archive(record)
            return Response(204)

    def _batch_read(
        self,
        t: str,
        body: Mapping[str, Any],
        inputs: list[dict[str, Any]],
        archived: bool,
        started: int,
    ) -> Response:
        wanted = body.get("properties") or None
        id_property = body.get("idProperty")
        results, missing = [], []
        for item in inputs:
            raw_id = str(item.get("id") or "")
            record = self._find(t, raw_id, id_property, archived)
            if record is None:
                missing.append(raw_id)
            elif all(r["id"] != record.id for r in results):
                results.append(self._store.render(record, wanted))
        errors = [missing_error(t, missing)] if missing else []
        return batch_body(started, results, errors, 200)

    def _batch_update(self, t: str, inputs: list[dict[str, Any]], started: int) -> Response:
        ids = [str(i.get("id") or "") for i in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise validation_error(
                f"Duplicate IDs found in batch input: {dupes}. IDs must be unique"
            )
        staged: list[tuple[Record, dict[str, str | None]]] = []
        missing = []
        for item, raw_id in zip(inputs, ids, strict=True):
            record = self._find(t, raw_id, item.get("idProperty"))
            if record is None:
                self._store.check_properties(t, item.get("properties"), creating=False)
                missing.append(raw_id)
                continue
            values = self._store.check_properties(
                t, item.get("properties"), creating=False, record_id=record.id
            )
            staged.append((record, values))
        results = []
        for record, values in staged:
            self._store.update(record, values)
            self._record_write(record, values)
            results.append(self._store.render(record, None, extra=values))
        errors = [missing_error(t, missing)] if missing else []
        return batch_body(started, results, errors, 200)

    def _batch_upsert(self, t: str, inputs: list[dict[str, Any]], started: int) -> Response:
        staged: list[tuple[Record | None, dict[str, str | None]]] = []
        for item in inputs:
            id_property = str(item.get("idProperty") or "")
            defn = self._store.prop(t, id_property)
            if defn is None or not defn.has_unique_value:
                raise validation_error(
                    f"idProperty {id_property!r} must be a property with unique values"
                )
            raw_id = str(item.get("id") or "")
            record = self._store.find_unique(t, id_property, raw_id)
            props = dict(item.get("properties") or {})
            if record is None:
                props[id_property] = raw_id
            values = self._store.check_properties(
                t, props, creating=record is None, record_id=record.id if record else None
            )
            staged.append((record, values))
        results = []
        for item, (record, values) in zip(inputs, staged, strict=True):
            if record is None:
                _, rendered = self._commit_create(t, values, [])
                result = {**rendered, "new": True}
            else:
                self._store.update(record, values)
                self._record_write(record, values)
                result = {**self._store.render(record, None, extra=values), "new": False}
            if item.get("objectWriteTraceId") is not None:  # echoed for correlation
                result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
            results.append(result)
        return batch_body(started, results, [], 200)

    # ------------------------------------------------------------------ search
    @route("POST", _OBJ + r"/search/?")
    def _search(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        return Response(200, search(self._store, t, json_body(req), self.search_limits))
