"""``POST /crm/v3/objects/{type}/search``: filter groups, one sort, offset paging, 10,000 cap.

Filters in a group are ANDed, groups are ORed.  ``after`` is a numeric offset; any ``after`` at
or beyond the result cap is answered 400 (HubSpot's 10,000-result limit), while the page that
reaches the cap still carries ``paging.next.after`` = the cap when more results exist -- the
trap a client has to handle by restarting with a narrower filter.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot_errors import validation_error
from sandbox.hubspot_schema import QUERY_PROPERTIES, comparable
from sandbox.hubspot_store import HubSpotStore, Record

OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_NEEDS_VALUE = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
)
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchLimits:
    max_limit: int = 200
    result_cap: int = 10_000
    max_groups: int = 5
    max_filters_per_group: int = 10
    max_filters_total: int = 25


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise validation_error(f"Invalid {name}: {value!r} is not a number") from None


class _Filter:
    def __init__(self, store: HubSpotStore, object_type: str, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            raise validation_error("Each filter must be an object")
        self.store = store
        self.name = str(raw.get("propertyName") or "")
        self.op = str(raw.get("operator") or "EQ").upper()
        if self.op not in OPERATORS:
            raise validation_error(f"Invalid operator: {self.op}. Allowed: {sorted(OPERATORS)}")
        self.defn = store.prop(object_type, self.name)
        if self.defn is None:
            raise validation_error(
                f"There was a problem with the request: property {self.name!r} does not exist "
                f"on {object_type}"
            )
        if self.op in _NEEDS_VALUE and raw.get("value") is None:
            raise validation_error(f"Filter on {self.name} with operator {self.op} needs a value")
        self.raw_value = "" if raw.get("value") is None else str(raw["value"])
        self.value = comparable(self.defn, self.raw_value)
        self.high = comparable(self.defn, str(raw.get("highValue") or ""))
        if self.op == "BETWEEN" and self.high is None:
            raise validation_error(f"Filter on {self.name} with operator BETWEEN needs highValue")
        values = raw.get("values")
        if self.op in ("IN", "NOT_IN"):
            if not isinstance(values, list) or not values:
                raise validation_error(
                    f"Filter on {self.name} with operator {self.op} needs values"
                )
            self.values = {comparable(self.defn, str(v)) for v in values}

    def matches(self, record: Record) -> bool:
        op = self.op
        have = self.store.key(record, self.name)
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if op == "NEQ":
            return have != self.value
        if op == "NOT_IN":
            return have not in self.values
        if op == "NOT_CONTAINS_TOKEN":
            return not self._has_token(record)
        if have is None:
            return False
        if op == "EQ":
            return have == self.value
        if op == "IN":
            return have in self.values
        if op == "CONTAINS_TOKEN":
            return self._has_token(record)
        if self.value is None:
            return False
        try:
            if op == "GT":
                return bool(have > self.value)
            if op == "GTE":
                return bool(have >= self.value)
            if op == "LT":
                return bool(have < self.value)
            if op == "LTE":
                return bool(have <= self.value)
            return bool(self.value <= have <= self.high)  # BETWEEN
        except TypeError:
            return False

    def _has_token(self, record: Record) -> bool:
        text = record.props.get(self.name) or ""
        pattern = self.raw_value.lower()
        return any(fnmatch.fnmatchcase(token, pattern) for token in _TOKEN.findall(text.lower()))


def _sort_spec(raw: Any) -> tuple[str, bool] | None:
    """First sort only (HubSpot honours one): ``{"propertyName","direction"}`` or ``"-name"``."""
    if not raw:
        return None
    if not isinstance(raw, list):
        raise validation_error("sorts must be an array")
    first = raw[0]
    if isinstance(first, str):
        return first.lstrip("-+"), first.startswith("-")
    if isinstance(first, Mapping):
        direction = str(first.get("direction") or "ASCENDING").upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise validation_error(f"Invalid sort direction: {direction}")
        return str(first.get("propertyName") or ""), direction == "DESCENDING"
    raise validation_error("Each sort must be an object or a string")


def _query_matches(record: Record, names: tuple[str, ...], words: list[str]) -> bool:
    tokens = [t for n in names for t in _TOKEN.findall((record.props.get(n) or "").lower())]
    return all(any(t.startswith(w) for t in tokens) for w in words)


def search(
    store: HubSpotStore,
    object_type: str,
    body: Any,
    limits: SearchLimits,
) -> dict[str, Any]:
    """Run one search request body; raises ``HubSpotError`` for HubSpot's 400s."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise validation_error("Search request body must be an object")
    limit = _int(body.get("limit"), "limit", 10)
    if not 0 <= limit <= limits.max_limit:
        raise validation_error(f"limit must be between 0 and {limits.max_limit}; got {limit}")
    after = _int(body.get("after"), "after", 0)
    if after < 0:
        raise validation_error(f"after must be >= 0; got {after}")
    if after >= limits.result_cap:
        raise validation_error(
            f"There was a problem with the request: the search API returns at most "
            f"{limits.result_cap} results per query (after={after})"
        )
    groups_raw = body.get("filterGroups") or []
    if not isinstance(groups_raw, list):
        raise validation_error("filterGroups must be an array")
    if len(groups_raw) > limits.max_groups:
        raise validation_error(
            f"Too many filterGroups: {len(groups_raw)} (at most {limits.max_groups})"
        )
    groups: list[list[_Filter]] = []
    total_filters = 0
    for group in groups_raw:
        filters_raw = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters_raw, list):
            raise validation_error("Each filterGroup needs a filters array")
        if len(filters_raw) > limits.max_filters_per_group:
            raise validation_error(
                f"Too many filters in a filterGroup: {len(filters_raw)} "
                f"(at most {limits.max_filters_per_group})"
            )
        total_filters += len(filters_raw)
        groups.append([_Filter(store, object_type, f) for f in filters_raw])
    if total_filters > limits.max_filters_total:
        raise validation_error(
            f"Too many filters: {total_filters} (at most {limits.max_filters_total} in total)"
        )
    sort = _sort_spec(body.get("sorts"))
    if sort is not None and store.prop(object_type, sort[0]) is None:
        raise validation_error(f"Cannot sort by unknown property {sort[0]!r}")
    wanted = body.get("properties") or None
    if wanted is not None and not isinstance(wanted, list):
        raise validation_error("properties must be an array of property names")
    words = _TOKEN.findall(str(body.get("query") or "").lower())

    with store.lock:
        rows = [
            r
            for r in store.live(object_type)
            if (not groups or any(all(f.matches(r) for f in g) for g in groups))
            and (not words or _query_matches(r, QUERY_PROPERTIES[object_type], words))
        ]
        if sort is not None:
            name, descending = sort
            present = [r for r in rows if store.key(r, name) is not None]
            missing = [r for r in rows if store.key(r, name) is None]
            present.sort(key=lambda r: store.key(r, name), reverse=descending)  # stable: id asc
            rows = present + missing
        total = len(rows)
        end = min(after + limit, limits.result_cap, total)
        page = [store.render(r, [str(p) for p in wanted or []]) for r in rows[after:end]]
    out: dict[str, Any] = {"total": total, "results": page}
    if end < total and limit > 0:
        out["paging"] = {"next": {"after": str(end), "link": f"?after={end}"}}
    return out
