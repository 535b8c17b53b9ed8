"""Single-record sObject REST resources of the Salesforce emulator.

``POST /sobjects/{Name}/``, ``GET|PATCH|DELETE /sobjects/{Name}/{id}`` and
``GET|PATCH /sobjects/{Name}/{ExtIdField}/{value}`` (upsert by external id), and the sObject
Collections upsert by external id (``PATCH /composite/sobjects/{Name}/{ExtIdField}``,
:mod:`sandbox.salesforce_upserts`).  Routes live in the
:class:`RecordRoutes` mixin of :class:`sandbox.salesforce.SalesforceEmulator`; validation is
shared with sObject Collections (:mod:`sandbox.salesforce_writes`).

Missing records answer 404 like Salesforce: ``NOT_FOUND`` for an id that never existed,
``ENTITY_IS_DELETED`` ("entity is deleted", ``fields: []``) for one in the Recycle Bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.salesforce_errors import (
    ApiError,
    entity_is_deleted_error,
    error_response,
    not_found,
    not_found_error,
)
from sandbox.salesforce_schema import SObjectSchema, coerce, to_json
from sandbox.salesforce_store import RecordStore
from sandbox.salesforce_upserts import upsert_collection
from sandbox.salesforce_writes import (
    InjectedFailures,
    PendingWrite,
    apply_write,
    check_create,
    check_record,
    insert_checked,
    parse_values,
)
from sandbox.server import route
from sandbox.wire import Request, Response

#: the path prefixes of :mod:`sandbox.salesforce` (which imports this module)
_V = r"/services/data/v(?P<version>\d+\.\d)"
_ID = r"(?P<id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})"
#: per-record codes that mean "no such record" for a single-record PATCH (404 NOT_FOUND)
_MISSING_ID_CODES = ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")

History = list[tuple[str, dict[str, Any]]]


def create_one(
    store: RecordStore,
    schema: SObjectSchema,
    payload: Any,
    history: History,
) -> str:
    """``POST /sobjects/{Name}/``: the new id; raises ApiError (400) like Salesforce."""
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    with store.lock:
        raw_id, values = parse_values(schema, payload)
        if raw_id is not None:
            raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        errors = check_create(store, schema, values, {})
        if errors:
            raise first_error(errors)
        return insert_checked(store, schema, values, history)


def update_one(
    store: RecordStore,
    schema: SObjectSchema,
    record_id: str,
    payload: Any,
    history: History,
) -> None:
    """``PATCH /sobjects/{Name}/{id}``; raises ApiError (400/404) on failure."""
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    with store.lock:
        _, values = parse_values(schema, payload)
        item = PendingWrite(schema, record_id, values)
        errors = check_record(store, item, None)
        if errors:
            first = errors[0]
            code, message = str(first["statusCode"]), str(first["message"])
            if code == "ENTITY_IS_DELETED":
                raise entity_is_deleted_error()
            if code in _MISSING_ID_CODES and first["fields"] == ["Id"]:
                raise not_found_error()
            fields = first["fields"]
            raise ApiError(400, code, message, list(fields) if isinstance(fields, list) else None)
        apply_write(store, item, history)


@dataclass(frozen=True)
class UpsertResult:
    """Outcome of an upsert by external id: the HTTP status and JSON body to answer with."""

    status: int
    body: Any


def upsert_by_external_id(
    store: RecordStore,
    schema: SObjectSchema,
    field_name: str,
    value: str,
    payload: Any,
    history: History,
    *,
    version: str,
) -> UpsertResult:
    """``PATCH /sobjects/{Name}/{ExtIdField}/{value}``.

    No match: insert (201 ``{"id", "success", "errors", "created": true}``); one match: update
    (API v46.0+: 200 with ``"created": false``; older versions: 204 without a body); several:
    300 with the matching records' URLs.
    """
    fdef = schema.field(field_name)
    if fdef is None or not fdef.external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {field_name}",
        )
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    modern = float(version) >= 46.0
    with store.lock:
        raw_id, values = parse_values(schema, payload)
        if raw_id is not None:
            raise ApiError(400, "INVALID_FIELD", "Id is not allowed in an upsert body", ["Id"])
        in_body = values.pop(fdef, None)
        if in_body is not None and str(in_body).casefold() != value.casefold():
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"The value of {fdef.name} in the body does not match the value in the URL",
                [fdef.name],
            )
        matches = store.find_all_by(schema.name, fdef.name, value)
        if len(matches) > 1:
            base = f"/services/data/v{version}/sobjects/{schema.name}/"
            return UpsertResult(300, [base + r["Id"] for r in matches])
        if not matches:
            values[fdef] = coerce(fdef, value)
            errors = check_create(store, schema, values, {})
            if errors:
                raise first_error(errors)
            new_id = insert_checked(store, schema, values, history)
            body: dict[str, Any] = {"id": new_id, "success": True, "errors": []}
            if modern:
                body["created"] = True
            return UpsertResult(201, body)
        record_id = matches[0]["Id"]
        item = PendingWrite(schema, record_id, values)
        errors = check_record(store, item, None)
        if errors:
            raise first_error(errors)
        apply_write(store, item, history)
        if not modern:
            return UpsertResult(204, None)
        return UpsertResult(200, {"id": record_id, "success": True, "errors": [], "created": False})


def delete_one(store: RecordStore, schema: SObjectSchema, record_id: str) -> None:
    """``DELETE /sobjects/{Name}/{id}``: soft delete (recycle bin); 404 ``NOT_FOUND`` when
    unknown, 404 ``ENTITY_IS_DELETED`` when already in the recycle bin."""
    with store.lock:
        record = store.get(schema.name, record_id)
        if record is None or "IsDeleted" not in record:
            raise not_found_error()
        if record.get("IsDeleted"):
            raise entity_is_deleted_error()
        store.delete(schema.name, record_id)


def first_error(errors: list[dict[str, object]]) -> ApiError:
    """The first per-record error of a failed single-record write, as a request-level 400."""
    first = errors[0]
    fields = first.get("fields")
    return ApiError(
        400,
        str(first["statusCode"]),
        str(first["message"]),
        list(fields) if isinstance(fields, list) else None,
    )


class RecordRoutes:
    """Route handlers for single records and the collections upsert by external id (state
    lives on the emulator: ``_store``, ``write_history``, ``_failures``)."""

    _store: RecordStore
    write_history: History
    _failures: InjectedFailures

    @route("PATCH", _V + r"/composite/sobjects/(?P<name>\w+)/(?P<field>\w+)/?")
    def _collections_upsert(self, req: Request) -> Response:
        params = req.path_params
        results = upsert_collection(
            self._store,
            params["name"],
            params["field"],
            self._json(req),
            self._failures,
            self.write_history,
        )
        return Response(200, results)

    @route("POST", _V + r"/sobjects/(?P<name>\w+)/?")
    def _create_record(self, req: Request) -> Response:
        schema = self._store.schema(req.path_params["name"])
        if schema is None:
            return not_found()
        record_id = create_one(self._store, schema, self._json(req), self.write_history)
        return Response(201, {"id": record_id, "success": True, "errors": []})

    @route("DELETE", _V + r"/sobjects/(?P<name>\w+)/" + _ID + r"/?")
    def _delete_record(self, req: Request) -> Response:
        schema = self._store.schema(req.path_params["name"])
        if schema is None:
            return not_found()
        delete_one(self._store, schema, req.path_params["id"])
        return Response(204)

    @route("PATCH", _V + r"/sobjects/(?P<name>\w+)/(?P<field>\w+)/(?P<value>[^/]+)/?")
    def _upsert_record(self, req: Request) -> Response:
        params = req.path_params
        schema = self._store.schema(params["name"])
        if schema is None:
            return not_found()
        result = upsert_by_external_id(
            self._store,
            schema,
            params["field"],
            params["value"],
            self._json(req),
            self.write_history,
            version=params["version"],
        )
        return Response(result.status, result.body)

    @route("GET", _V + r"/sobjects/(?P<name>\w+)/(?P<field>\w+)/(?P<value>[^/]+)/?")
    def _get_by_external_id(self, req: Request) -> Response:
        params = req.path_params
        with self._store.lock:
            schema = self._store.schema(params["name"])
            fdef = schema.field(params["field"]) if schema is not None else None
            if schema is None or fdef is None or not fdef.external_id:
                return not_found()
            matches = self._store.find_all_by(schema.name, fdef.name, params["value"])
            base = f"/services/data/v{params['version']}/sobjects/{schema.name}/"
            if len(matches) > 1:
                return Response(300, [base + r["Id"] for r in matches])
            if not matches:
                return not_found()
            record = matches[0]
            body: dict[str, Any] = {"attributes": {"type": schema.name, "url": base + record["Id"]}}
            body.update({name: to_json(record.get(name)) for name in schema.fields})
        return Response(200, body)

    @route("GET", _V + r"/sobjects/(?P<name>\w+)/" + _ID + r"/?")
    def _get_record(self, req: Request) -> Response:
        version = req.path_params["version"]
        with self._store.lock:
            schema = self._store.schema(req.path_params["name"])
            record = self._store.get(schema.name, req.path_params["id"]) if schema else None
            if schema is None or record is None:
                return not_found()
            if record.get("IsDeleted"):
                return entity_is_deleted_error().response()
            wanted = [f.strip() for f in req.query.get("fields", "").split(",") if f.strip()]
            names = list(schema.fields)
            if wanted:
                unknown = [f for f in wanted if schema.field(f) is None]
                if unknown:
                    message = f"No such column '{unknown[0]}' on sobject of type {schema.name}"
                    return error_response(400, "INVALID_FIELD", message)
                names = [schema.field(f).name for f in wanted]  # type: ignore[union-attr]
            url = f"/services/data/v{version}/sobjects/{schema.name}/{record['Id']}"
            body: dict[str, Any] = {"attributes": {"type": schema.name, "url": url}}
            body.update({name: to_json(record.get(name)) for name in names})
        return Response(200, body)

    @route("PATCH", _V + r"/sobjects/(?P<name>\w+)/" + _ID + r"/?")
    def _patch_record(self, req: Request) -> Response:
        schema = self._store.schema(req.path_params["name"])
        if schema is None:
            return not_found()
        update_one(self._store, schema, req.path_params["id"], self._json(req), self.write_history)
        return Response(204)

    @staticmethod
    def _json(req: Request) -> Any:
        try:
            return req.json()
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
