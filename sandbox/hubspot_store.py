"""In-memory HubSpot portal: records, property schemas and groups, owners, associations.

Every record carries ``hs_object_id``, ``createdate`` and its type's last-modified property
(``hs_lastmodifieddate``; ``lastmodifieddate`` for contacts), maintained from the store's clock,
which can be frozen (:meth:`HubSpotStore.set_time`) so many writes share one timestamp.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sandbox.hubspot_errors import conflict, property_errors
from sandbox.hubspot_schema import (
    ASSOCIATION_TYPES,
    DEFAULT_GROUP,
    DEFAULT_PROPERTIES,
    MODIFIED_PROPERTY,
    OBJECT_TYPES,
    READ_ONLY,
    REQUIRED_ON_CREATE,
    PropertyDef,
    builtin_properties,
    comparable,
    invalid,
    inverse_type_id,
    iso_from_ms,
    ms_from_datetime,
    normalize_value,
    parse_time_ms,
)

FIRST_ID = 18_300_001
FIRST_OWNER_ID = 77_001
FIRST_USER_ID = 9_001
#: values HubSpot fills in when a create leaves them out (a deal lands in the default pipeline)
CREATE_DEFAULTS: dict[str, dict[str, str]] = {"deals": {"pipeline": "default"}}


@dataclass
class Record:
    id: str
    object_type: str
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    keys: dict[str, Any] = field(default_factory=dict, repr=False)  # comparable() cache


class HubSpotStore:
    """Thread-safe state of one portal; callers hold :attr:`lock` across multi-step work."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._frozen_ms: int | None = None
        self._next_id = FIRST_ID
        stamp = iso_from_ms(self.now_ms())
        self.schemas: dict[str, dict[str, PropertyDef]] = {
            t: builtin_properties(t, stamp) for t in OBJECT_TYPES
        }
        self.groups: dict[str, dict[str, dict[str, Any]]] = {
            t: {name: {"name": name, "label": label, "displayOrder": -1, "archived": False}}
            for t, (name, label) in DEFAULT_GROUP.items()
        }
        self.records: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
        self._ids: dict[str, list[int]] = {t: [] for t in OBJECT_TYPES}  # each type's, ascending
        self.owners: dict[str, dict[str, Any]] = {}
        # (type, id) → {(to_type, to_id): {(category, type_id)}}
        self._links: dict[tuple[str, str], dict[tuple[str, str], set[tuple[str, int]]]] = {}
        self.write_history: list[tuple[str, str, dict[str, str | None]]] = []

    # ------------------------------------------------------------------ clock
    def now_ms(self) -> int:
        if self._frozen_ms is not None:
            return self._frozen_ms
        return ms_from_datetime(self._clock())

    def set_time(self, moment: datetime | None) -> None:
        """Freeze the clock at ``moment`` (``None``: follow the injected/real clock again)."""
        with self.lock:
            self._frozen_ms = None if moment is None else ms_from_datetime(moment)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (freezing it at the new time)."""
        with self.lock:
            self._frozen_ms = self.now_ms() + round(seconds * 1000)

    # ------------------------------------------------------------------ schema
    def prop(self, object_type: str, name: str) -> PropertyDef | None:
        defn = self.schemas[object_type].get(name)
        return None if defn is None or defn.archived else defn

    def define_property(self, object_type: str, defn: PropertyDef) -> PropertyDef:
        with self.lock:
            stamp = iso_from_ms(self.now_ms())
            defn.created_at = defn.created_at or stamp
            defn.updated_at = stamp
            self.schemas[object_type][defn.name] = defn
            return defn

    def add_group(self, object_type: str, name: str, label: str, order: int = -1) -> dict[str, Any]:
        with self.lock:
            group = {"name": name, "label": label, "displayOrder": order, "archived": False}
            self.groups[object_type][name] = group
            return group

    # ------------------------------------------------------------------ validation
    def check_properties(
        self,
        object_type: str,
        values: Any,
        *,
        creating: bool,
        record_id: str | None = None,
    ) -> dict[str, str | None]:
        """Normalised values (with :data:`CREATE_DEFAULTS` filled in on create), or raise
        HubSpot's 400 ``Property values were not valid``."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise property_errors(
                [invalid("properties", "INVALID_TYPE", "properties must be an object")]
            )
        problems: list[dict[str, Any]] = []
        out: dict[str, str | None] = {}
        for name, raw in values.items():
            defn = self.prop(object_type, str(name))
            if defn is None:
                problems.append(
                    invalid(str(name), "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
                continue
            if defn.name in READ_ONLY:
                problems.append(
                    invalid(defn.name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
                )
                continue
            value, problem = normalize_value(defn, raw)
            if problem is not None:
                problems.append(problem)
            else:
                out[defn.name] = value
        if creating:
            for name in REQUIRED_ON_CREATE.get(object_type, ()):
                if out.get(name) is None and not any(p["name"] == name for p in problems):
                    problems.append(
                        invalid(name, "REQUIRED_PROPERTY", f'Property "{name}" is required')
                    )
        if problems:
            raise property_errors(problems)
        if creating:
            for name, value in CREATE_DEFAULTS.get(object_type, {}).items():
                if out.get(name) is None:
                    out[name] = value
        self._check_unique(object_type, out, record_id)
        return out

    def _check_unique(
        self, object_type: str, values: Mapping[str, str | None], record_id: str | None
    ) -> None:
        for name, value in values.items():
            defn = self.prop(object_type, name)
            if value is None or defn is None or not defn.has_unique_value:
                continue
            existing = self.find_unique(object_type, name, value)
            if existing is None or existing.id == record_id:
                continue
            if object_type == "contacts" and name == "email":
                raise conflict(f"Contact already exists. Existing ID: {existing.id}")
            raise conflict(
                f"A {OBJECT_TYPES[object_type][1]} with the value '{value}' for the unique "
                f"property '{name}' already exists. Existing ID: {existing.id}"
            )

    def find_unique(self, object_type: str, name: str, value: str) -> Record | None:
        """The live record whose ``name`` equals ``value`` (case-insensitive for text)."""
        if name == "hs_object_id":
            return self.get(object_type, value)
        wanted = value.lower()
        for record in self.records[object_type].values():
            current = record.props.get(name)
            if not record.archived and current is not None and current.lower() == wanted:
                return record
        return None

    # ------------------------------------------------------------------ records
    def get(self, object_type: str, record_id: str, *, archived: bool = False) -> Record | None:
        record = self.records[object_type].get(str(record_id))
        if record is None or record.archived != archived:
            return None
        return record

    def page(
        self, object_type: str, start: int | None, count: int, *, archived: bool = False
    ) -> list[Record]:
        """Up to ``count`` records in id order from id ``start`` on (a list page: found by
        bisection, not by reading every record before it)."""
        ids, records = self._ids[object_type], self.records[object_type]
        out: list[Record] = []
        for record_id in islice(ids, bisect_left(ids, start or 0), None):
            record = records[str(record_id)]
            if record.archived == archived:
                out.append(record)
                if len(out) == count:
                    break
        return out

    def live(self, object_type: str, *, archived: bool = False) -> list[Record]:
        """Records in id order (ids only grow, so insertion order is id order)."""
        return [r for r in self.records[object_type].values() if r.archived == archived]

    def create(self, object_type: str, values: Mapping[str, str | None]) -> Record:
        """Store already-normalised values as a new record."""
        with self.lock:
            record_id = str(self._next_id)
            self._next_id += 1
            now = self.now_ms()
            created = values.get("createdate")
            created_ms = parse_time_ms(created) if created else None
            record = Record(record_id, object_type, {}, created_ms or now, now)
            record.props.update({k: v for k, v in values.items() if v is not None})
            record.props["hs_object_id"] = record_id
            self._stamp(record, now)
            self.records[object_type][record_id] = record
            self._ids[object_type].append(int(record_id))
            return record

    def update(self, record: Record, values: Mapping[str, str | None]) -> Record:
        with self.lock:
            for name, value in values.items():
                if value is None:
                    record.props.pop(name, None)
                else:
                    record.props[name] = value
            if values.get("createdate"):
                record.created_ms = parse_time_ms(str(values["createdate"])) or record.created_ms
            self._stamp(record, self.now_ms())
            return record

    def archive(self, record: Record) -> None:
        with self.lock:
            now = self.now_ms()
            record.archived, record.archived_ms = True, now
            self._stamp(record, now)

    def _stamp(self, record: Record, now: int) -> None:
        record.updated_ms = now
        record.props["createdate"] = iso_from_ms(record.created_ms)
        record.props[MODIFIED_PROPERTY[record.object_type]] = iso_from_ms(now)
        record.keys.clear()

    def key(self, record: Record, name: str) -> Any:
        """Comparable value of a property (cached until the record changes)."""
        if name not in record.keys:
            record.keys[name] = comparable(
                self.schemas[record.object_type].get(name), record.props.get(name)
            )
        return record.keys[name]

    def render(
        self,
        record: Record,
        wanted: Iterable[str] | None = None,
        *,
        extra: Iterable[str] = (),
        associations: Iterable[str] = (),
    ) -> dict[str, Any]:
        """SimplePublicObject JSON with the wanted properties (defaults when none named)."""
        t = record.object_type
        names = list(wanted) if wanted else list(DEFAULT_PROPERTIES[t])
        always = ["createdate", MODIFIED_PROPERTY[t], "hs_object_id"]
        props: dict[str, str | None] = {}
        for name in dict.fromkeys([*always, *names, *extra]):
            if self.prop(t, name) is not None:  # unknown names are ignored, like HubSpot
                props[name] = record.props.get(name)
        body: dict[str, Any] = {
            "id": record.id,
            "properties": props,
            "createdAt": iso_from_ms(record.created_ms),
            "updatedAt": iso_from_ms(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms is not None:
            body["archivedAt"] = iso_from_ms(record.archived_ms)
        linked: dict[str, Any] = {}
        for to_type in associations:
            rows = [
                {"id": to_id, "type": f"{OBJECT_TYPES[t][1]}_to_{OBJECT_TYPES[to_type][1]}"}
                for to_id, _ in self.associated(t, record.id, to_type)
            ]
            if rows:
                linked[to_type] = {"results": rows}
        if linked:
            body["associations"] = linked
        return body

    # ------------------------------------------------------------------ owners
    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        owner_id: str | None = None,
        user_id: int | None = None,
        archived: bool = False,
        teams: list[dict[str, Any]] | None = None,
    ) -> str:
        with self.lock:
            owner_id = str(owner_id or FIRST_OWNER_ID + len(self.owners))
            user_id = int(user_id if user_id is not None else FIRST_USER_ID + len(self.owners))
            stamp = iso_from_ms(self.now_ms())
            self.owners[owner_id] = {
                "id": owner_id,
                "email": email,
                "firstName": first_name,
                "lastName": last_name,
                "userId": user_id,
                "userIdIncludingInactive": user_id,
                "type": "PERSON",
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": archived,
                "teams": [dict(t) for t in teams or []],
            }
            return owner_id

    # ------------------------------------------------------------------ associations
    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_id: int | None = None,
        category: str = "HUBSPOT_DEFINED",
    ) -> tuple[str, int]:
        """Link two records both ways; returns the (category, type id) used from ``from``."""
        with self.lock:
            if type_id is None:
                type_id = ASSOCIATION_TYPES[(from_type, to_type)][0]
            back = inverse_type_id(from_type, to_type, type_id)
            forward = self._links.setdefault((from_type, str(from_id)), {})
            forward.setdefault((to_type, str(to_id)), set()).add((category, int(type_id)))
            backward = self._links.setdefault((to_type, str(to_id)), {})
            backward.setdefault((from_type, str(from_id)), set()).add((category, back))
            return category, int(type_id)

    def unassociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        with self.lock:
            self._links.get((from_type, str(from_id)), {}).pop((to_type, str(to_id)), None)
            self._links.get((to_type, str(to_id)), {}).pop((from_type, str(from_id)), None)

    def associated(
        self, from_type: str, from_id: str, to_type: str
    ) -> list[tuple[str, list[tuple[str, int]]]]:
        """[(to id, [(category, type id)])] of live records, in id order."""
        links = self._links.get((from_type, str(from_id)), {})
        rows = [
            (to_id, sorted(types))
            for (kind, to_id), types in links.items()
            if kind == to_type and types and self.get(to_type, to_id) is not None
        ]
        return sorted(rows, key=lambda row: int(row[0]) if row[0].isdigit() else 0)
