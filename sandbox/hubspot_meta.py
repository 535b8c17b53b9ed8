"""Properties, property groups, owners and v4 associations routes of the HubSpot emulator.

A mixin of :class:`sandbox.hubspot.HubSpotEmulator` (routes are collected through the MRO).
"""

from __future__ import annotations

from typing import Any

from sandbox.hubspot_errors import conflict, not_found, validation_error
from sandbox.hubspot_objects import (
    decode_cursor,
    encode_cursor,
    json_body,
    json_object,
    object_type,
    query_bool,
    query_int,
)
from sandbox.hubspot_schema import (
    ASSOCIATION_TYPES,
    FIELD_TYPES,
    OBJECT_TYPES,
    PROPERTY_NAME,
    PROPERTY_TYPES,
    PropertyDef,
    iso_from_ms,
)
from sandbox.hubspot_store import HubSpotStore
from sandbox.server import route
from sandbox.wire import Request, Response

_PROPS = r"/crm/v3/properties/(?P<type>[^/]+)"
_PROP_NAME = r"/(?P<name>(?!groups(?:/|$))[^/]+)/?"
_V4 = r"/crm/v4/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/associations"


def _options(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise validation_error("options must be an array")
    out = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("value") in (None, "") or not item.get("label"):
            raise validation_error("Each option needs a label and a value")
        out.append(
            {
                "label": str(item["label"]),
                "value": str(item["value"]),
                "description": str(item.get("description") or ""),
                "displayOrder": int(item.get("displayOrder", index)),
                "hidden": bool(item.get("hidden", False)),
            }
        )
    return out


class MetaRoutes:
    """Properties API, owners and v4 associations (state lives in ``self._store``)."""

    _store: HubSpotStore

    # ------------------------------------------------------------------ properties
    def create_property(self, t: str, body: dict[str, Any]) -> PropertyDef:
        """Validate a PropertyCreate body and define the property (409 if it exists)."""
        name = str(body.get("name") or "")
        if not PROPERTY_NAME.fullmatch(name):
            raise validation_error(
                f"Invalid property name {name!r}: use lower-case letters, digits and underscores, "
                "starting with a letter"
            )
        for key in ("label", "type", "fieldType", "groupName"):
            if not body.get(key):
                raise validation_error(f"Property create needs {key}")
        if body["type"] not in PROPERTY_TYPES:
            raise validation_error(
                f"Invalid type {body['type']!r}; one of {sorted(PROPERTY_TYPES)}"
            )
        if body["fieldType"] not in FIELD_TYPES:
            raise validation_error(
                f"Invalid fieldType {body['fieldType']!r}; one of {sorted(FIELD_TYPES)}"
            )
        with self._store.lock:
            if name in self._store.schemas[t]:
                raise conflict(f"Property named '{name}' already exists.")
            if body["groupName"] not in self._store.groups[t]:
                raise validation_error(f"Property group {body['groupName']!r} does not exist")
            defn = PropertyDef(
                name=name,
                label=str(body["label"]),
                type=str(body["type"]),
                field_type=str(body["fieldType"]),
                group_name=str(body["groupName"]),
                description=str(body.get("description") or ""),
                options=_options(body.get("options")),
                has_unique_value=bool(body.get("hasUniqueValue", False)),
                external_options=bool(body.get("externalOptions", False)),
                display_order=int(body.get("displayOrder", -1)),
                hidden=bool(body.get("hidden", False)),
                form_field=bool(body.get("formField", False)),
            )
            return self._store.define_property(t, defn)

    def _property(self, req: Request) -> tuple[str, PropertyDef]:
        t = object_type(req.path_params["type"])
        name = req.path_params["name"]
        defn = self._store.schemas[t].get(name)
        if defn is None or defn.archived != query_bool(req, "archived"):
            raise not_found(
                f"Unable to find property {name} for object type {OBJECT_TYPES[t][0]}",
                context={"name": [name]},
            )
        return t, defn

    @route("GET", _PROPS + r"/?")
    def _properties(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        archived = query_bool(req, "archived")
        with self._store.lock:
            rows = [d.to_json() for d in self._store.schemas[t].values() if d.archived == archived]
        return Response(200, {"results": rows})

    @route("POST", _PROPS + r"/?")
    def _create_property(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        return Response(201, self.create_property(t, json_object(req)).to_json())

    @route("GET", _PROPS + _PROP_NAME)
    def _get_property(self, req: Request) -> Response:
        with self._store.lock:
            return Response(200, self._property(req)[1].to_json())

    @route("PATCH", _PROPS + _PROP_NAME)
    def _update_property(self, req: Request) -> Response:
        body = json_object(req)
        with self._store.lock:
            t, defn = self._property(req)
            if "groupName" in body and body["groupName"] not in self._store.groups[t]:
                raise validation_error(f"Property group {body['groupName']!r} does not exist")
            if "fieldType" in body and body["fieldType"] not in FIELD_TYPES:
                raise validation_error(f"Invalid fieldType {body['fieldType']!r}")
            if "options" in body:
                defn.options = _options(body["options"])
            for key, attr in (
                ("label", "label"),
                ("description", "description"),
                ("groupName", "group_name"),
                ("fieldType", "field_type"),
            ):
                if key in body:
                    setattr(defn, attr, str(body[key]))
            for key, attr in (("hidden", "hidden"), ("formField", "form_field")):
                if key in body:
                    setattr(defn, attr, bool(body[key]))
            if "displayOrder" in body:
                defn.display_order = int(body["displayOrder"])
            defn.updated_at = iso_from_ms(self._store.now_ms())
            return Response(200, defn.to_json())

    @route("DELETE", _PROPS + _PROP_NAME)
    def _archive_property(self, req: Request) -> Response:
        with self._store.lock:
            _, defn = self._property(req)
            if defn.hubspot_defined:
                raise validation_error(
                    f"{defn.name} is a HubSpot-defined property and can't be archived"
                )
            defn.archived = True
        return Response(204)

    # ------------------------------------------------------------------ groups
    @route("GET", _PROPS + r"/groups/?")
    def _groups(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        with self._store.lock:
            return Response(200, {"results": [dict(g) for g in self._store.groups[t].values()]})

    @route("POST", _PROPS + r"/groups/?")
    def _create_group(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        body = json_object(req)
        name, label = str(body.get("name") or ""), str(body.get("label") or "")
        if not PROPERTY_NAME.fullmatch(name) or not label:
            raise validation_error("A property group needs a valid name and a label")
        with self._store.lock:
            if name in self._store.groups[t]:
                raise conflict(f"Property group named '{name}' already exists.")
            group = self._store.add_group(t, name, label, int(body.get("displayOrder", -1)))
        return Response(201, dict(group))

    @route("GET", _PROPS + r"/groups/(?P<name>[^/]+)/?")
    def _get_group(self, req: Request) -> Response:
        t = object_type(req.path_params["type"])
        group = self._store.groups[t].get(req.path_params["name"])
        if group is None:
            raise not_found(f"Unable to find property group {req.path_params['name']}")
        return Response(200, dict(group))

    # ------------------------------------------------------------------ owners
    @route("GET", r"/crm/v3/owners/?")
    def _owners(self, req: Request) -> Response:
        limit = query_int(req, "limit", 100, 1, 500)
        offset = query_int(req, "after", 0, 0, 10**9)
        email = (req.query.get("email") or "").strip().lower()
        archived = query_bool(req, "archived")
        with self._store.lock:
            rows = [
                dict(o)
                for o in self._store.owners.values()
                if o["archived"] == archived and (not email or o["email"].lower() == email)
            ]
        body: dict[str, Any] = {"results": rows[offset : offset + limit]}
        if offset + limit < len(rows):
            after = str(offset + limit)
            body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return Response(200, body)

    @route("GET", r"/crm/v3/owners/(?P<id>[^/]+)/?")
    def _owner(self, req: Request) -> Response:
        wanted = req.path_params["id"]
        by_user = req.query.get("idProperty") == "userId"
        archived = query_bool(req, "archived")
        with self._store.lock:
            for owner in self._store.owners.values():
                key = str(owner["userId"]) if by_user else owner["id"]
                if key == wanted and owner["archived"] == archived:
                    return Response(200, dict(owner))
        raise not_found(f"Owner {wanted} not found")

    # ------------------------------------------------------------------ v4 associations
    def _pair(self, req: Request) -> tuple[str, str, str, str]:
        params = req.path_params
        from_type, to_type = object_type(params["type"]), object_type(params["to"])
        from_id, to_id = params["id"], params["to_id"]
        if (from_type, to_type) not in ASSOCIATION_TYPES:
            raise validation_error(f"{from_type} can't be associated with {to_type}")
        for t, i in ((from_type, from_id), (to_type, to_id)):
            if self._store.get(t, i) is None:
                raise not_found(f"Object not found: {t} {i}", context={"id": [i]})
        return from_type, from_id, to_type, to_id

    @route("GET", _V4 + r"/(?P<to>[^/]+)/?")
    def _list_associations(self, req: Request) -> Response:
        from_type = object_type(req.path_params["type"])
        to_type = object_type(req.path_params["to"])
        limit = query_int(req, "limit", 500, 1, 500)
        after = req.query.get("after")
        start = decode_cursor(after) if after else None
        with self._store.lock:
            if self._store.get(from_type, req.path_params["id"]) is None:
                raise not_found(context={"id": [req.path_params["id"]]})
            rows = self._store.associated(from_type, req.path_params["id"], to_type)
        if start is not None:
            rows = [r for r in rows if int(r[0]) >= start]
        results = [
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": category, "typeId": type_id, "label": None}
                    for category, type_id in types
                ],
            }
            for to_id, types in rows[:limit]
        ]
        body: dict[str, Any] = {"results": results}
        if len(rows) > limit:
            cursor = encode_cursor(rows[limit][0])
            body["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
        return Response(200, body)

    @route("PUT", _V4 + r"/default/(?P<to>[^/]+)/(?P<to_id>[^/]+)/?")
    def _associate_default(self, req: Request) -> Response:
        with self._store.lock:
            from_type, from_id, to_type, to_id = self._pair(req)
            type_id = ASSOCIATION_TYPES[(from_type, to_type)][0]
            self._store.associate(from_type, from_id, to_type, to_id, type_id)
            back = ASSOCIATION_TYPES[(to_type, from_type)][0]
            stamp = iso_from_ms(self._store.now_ms())
        results = [
            {
                "from": {"id": a},
                "to": {"id": b},
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": n,
                },
            }
            for a, b, n in ((from_id, to_id, type_id), (to_id, from_id, back))
        ]
        return Response(
            200,
            {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp},
        )

    @route("PUT", _V4 + r"/(?P<to>[^/]+)/(?P<to_id>[^/]+)/?")
    def _associate(self, req: Request) -> Response:
        specs = json_body(req)
        if not isinstance(specs, list) or not specs:
            raise validation_error("The body must be a non-empty array of association specs")
        with self._store.lock:
            from_type, from_id, to_type, to_id = self._pair(req)
            default, others = ASSOCIATION_TYPES[(from_type, to_type)]
            for spec in specs:
                category = str((spec or {}).get("associationCategory") or "")
                type_id = (spec or {}).get("associationTypeId")
                if category != "HUBSPOT_DEFINED" or type_id not in (default, *others):
                    raise validation_error(
                        f"{category} association type {type_id} is not valid between "
                        f"{from_type} and {to_type}"
                    )
            for spec in specs:
                self._store.associate(
                    from_type,
                    from_id,
                    to_type,
                    to_id,
                    int(spec["associationTypeId"]),
                    "HUBSPOT_DEFINED",
                )
        return Response(
            201,
            {
                "fromObjectTypeId": OBJECT_TYPES[from_type][0],
                "fromObjectId": int(from_id),
                "toObjectTypeId": OBJECT_TYPES[to_type][0],
                "toObjectId": int(to_id),
                "labels": [],
            },
        )

    @route("DELETE", _V4 + r"/(?P<to>[^/]+)/(?P<to_id>[^/]+)/?")
    def _unassociate(self, req: Request) -> Response:
        params = req.path_params
        from_type, to_type = object_type(params["type"]), object_type(params["to"])
        self._store.unassociate(from_type, params["id"], to_type, params["to_id"])
        return Response(204)
