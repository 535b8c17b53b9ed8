"""HubSpot deals, tickets and contacts with their companies, and the portal's owners.

Pulled incrementally like companies (``companies.py``): the search API on the object's
last-modified property — ``hs_lastmodifieddate`` for deals and tickets, but
``lastmodifieddate`` for contacts (contacts have no searchable ``hs_lastmodifieddate``) — from
``since - overlap`` up to the moment the sync started, the 10,000-result cap walked in slices
by :func:`search_window` (the slicing of ``companies._search_since``, generalized). A first or
full sync lists every live record through the list API instead (no cap).

Companies: the list API returns each record's associated company ids inline
(``associations=companies``, 100 records a request). The search API returns no associations,
and the v4 *batch* association read is not available everywhere (the sandbox lacks it), so
after a search each changed record's companies are read through the v4 per-record endpoint
(``GET /crm/v4/objects/{type}/{id}/associations/companies``): one request per changed record.
When a window holds more changes than a list walk of the whole object would cost
(``ceil(live records / 100)`` requests, the live count from one extra search request), the
window is read through the list API instead — every live record, with its companies inline.

Primary companies: v4 association type ids 5 (deal → company), 26 (ticket → company) and 1
(contact → company) mark the primary company; the list API names them ``deal_to_company``
against ``deal_to_company_unlabeled`` for the others.

The search API never returns archived (deleted or merged-away) records: :func:`archived_ids`
lists them for the caller's periodic deleted-records check.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.companies import (
    LIST_PAGE,
    OBJECT_ID,
    parse_hubspot_time,
    search_window,
)
from healthscore.core.errors import SkippableRecord

log = logging.getLogger(__name__)

ASSOCIATION_PAGE = 500  # v4 association reads: at most 500 a request
OWNER_PAGE = 500


@dataclass(frozen=True)
class RelatedObject:
    name: str  # the API's object type: deals | tickets | contacts
    modified: str  # its searchable last-modified property
    properties: tuple[str, ...]
    primary_type_ids: frozenset[int]  # v4 association type ids of the primary company


RELATED_OBJECTS: dict[str, RelatedObject] = {
    "deals": RelatedObject(
        "deals",
        "hs_lastmodifieddate",
        (
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "dealtype",
            "createdate",
            "hs_is_closed",
            "hs_is_closed_won",
            "hubspot_owner_id",
        ),
        frozenset({5}),
    ),
    "tickets": RelatedObject(
        "tickets",
        "hs_lastmodifieddate",
        (
            "subject",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_priority",
            "createdate",
            "closed_date",
            "hubspot_owner_id",
        ),
        frozenset({26}),
    ),
    "contacts": RelatedObject(
        "contacts",
        "lastmodifieddate",
        (
            "email",
            "firstname",
            "lastname",
            "hs_email_optout",
            "associatedcompanyid",
            "createdate",
            "hubspot_owner_id",
            "jobtitle",
        ),  # jobtitle: the email action's role
        frozenset({1}),
    ),
}


@dataclass(frozen=True)
class HubSpotRecord:
    """A deal, ticket or contact and the companies it is associated with."""

    id: str
    object: str
    properties: dict[str, str | None]
    modified: datetime
    companies: tuple[str, ...] = ()  # every associated company id
    primary: tuple[str, ...] = ()  # those associated as the primary company
    archived: bool = False  # gone between the search and the association read


@dataclass
class RelatedPull:
    """What one pull of one object did (``requests`` includes the association reads)."""

    records: int = 0
    requests: int = 0
    association_requests: int = 0
    mode: str = ""  # list | search | search→list
    skipped_ids: list[str] = field(default_factory=list)
    unchanged: int = 0  # re-read in the overlap, already kept as they are: not yielded
    seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Owner:
    id: str
    email: str | None
    name: str


def related_object(obj: RelatedObject | str) -> RelatedObject:
    if isinstance(obj, RelatedObject):
        return obj
    try:
        return RELATED_OBJECTS[obj]
    except KeyError:
        raise ValueError(
            f"unknown HubSpot related object {obj!r}; one of {sorted(RELATED_OBJECTS)}"
        ) from None


def live_total(client: HubSpotClient, object_type: str) -> int:
    """How many live records the object has (one search request)."""
    api = getattr(client.sdk.crm, object_type).search_api
    client.search_quota.acquire()
    resp = client.call(
        f"count {object_type}",
        api.do_search,
        {"filterGroups": [], "properties": [OBJECT_ID], "limit": 1},
    )
    return int(resp.total or 0)


def _ids(raw: Any) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Inline list-API associations → (company ids, primary ids, more pages to read)."""
    if raw is None:
        return (), (), False
    results = getattr(raw, "results", None) or []
    ids: dict[str, bool] = {}
    for row in results:
        cid = str(getattr(row, "id", "") or "")
        if not cid:
            continue
        primary = not str(getattr(row, "type", "") or "").endswith("_unlabeled")
        ids[cid] = ids.get(cid, False) or primary
    paging = getattr(raw, "paging", None)
    more = bool(paging is not None and paging.next is not None and paging.next.after)
    return tuple(ids), tuple(c for c, p in ids.items() if p), more


def to_record(
    obj: Any, spec: RelatedObject, companies: tuple[str, ...] = (), primary: tuple[str, ...] = ()
) -> HubSpotRecord:
    record_id = str(getattr(obj, "id", "") or "")
    if not record_id:
        raise SkippableRecord("<no id>", f"{spec.name} record has no id")
    props = dict(getattr(obj, "properties", None) or {})
    try:
        modified = parse_hubspot_time(props.get(spec.modified)) or getattr(obj, "updated_at", None)
    except ValueError as exc:
        raise SkippableRecord(record_id, f"{spec.modified} is not a date: {exc}") from None
    if not isinstance(modified, datetime):
        raise SkippableRecord(record_id, f"{spec.name} record has no {spec.modified}")
    return HubSpotRecord(record_id, spec.name, props, modified.astimezone(UTC), companies, primary)


def read_companies(
    client: HubSpotClient, spec: RelatedObject, record_id: str, state: RelatedPull
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A record's company ids and primary company ids through v4 (None: the record is gone)."""
    api = client.sdk.crm.associations.v4.basic_api
    companies: dict[str, bool] = {}
    after: str | None = None

    def page(cursor: str | None) -> Any:
        kwargs: dict[str, Any] = {"limit": ASSOCIATION_PAGE}
        if cursor:
            kwargs["after"] = cursor
        try:
            return api.get_page(spec.name, record_id, "companies", **kwargs)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:  # archived since the search
                return None
            raise

    while True:
        resp = client.call(f"read {spec.name} {record_id} companies", page, after)
        state.requests += 1
        state.association_requests += 1
        if resp is None:
            return None
        for row in resp.results or []:
            cid = str(getattr(row, "to_object_id", "") or "")
            if not cid:
                continue
            types = {
                int(t.type_id)
                for t in getattr(row, "association_types", None) or []
                if getattr(t, "type_id", None) is not None
            }
            companies[cid] = companies.get(cid, False) or bool(types & spec.primary_type_ids)
        nxt = resp.paging.next if resp.paging else None
        if nxt is None or not nxt.after:
            break
        after = nxt.after
    return tuple(companies), tuple(c for c, p in companies.items() if p)


def _convert(
    obj: Any,
    spec: RelatedObject,
    state: RelatedPull,
    companies: tuple[str, ...] = (),
    primary: tuple[str, ...] = (),
) -> HubSpotRecord | None:
    try:
        return to_record(obj, spec, companies, primary)
    except SkippableRecord as exc:
        log.warning("HubSpot %s %s skipped: %s", spec.name, exc.record_id, exc.reason)
        state.skipped_ids.append(exc.record_id)
        return None


def _list_all(
    client: HubSpotClient, spec: RelatedObject, properties: list[str], state: RelatedPull
) -> Iterator[list[HubSpotRecord]]:
    api = getattr(client.sdk.crm, spec.name).basic_api
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {
            "limit": LIST_PAGE,
            "properties": properties,
            "associations": ["companies"],
            "archived": False,
        }
        if after:
            kwargs["after"] = after
        resp = client.call(f"list {spec.name}", api.get_page, **kwargs)
        state.requests += 1
        page = []
        for obj in resp.results or []:
            oid = str(getattr(obj, "id", "") or "")
            if oid in state.seen:
                continue
            state.seen.add(oid)
            linked = (getattr(obj, "associations", None) or {}).get("companies")
            companies, primary, more = _ids(linked)
            if more and oid:  # more companies than the inline page: read them all
                read = read_companies(client, spec, oid, state)
                if read is not None:
                    companies, primary = read
            record = _convert(obj, spec, state, companies, primary)
            if record is not None:
                page.append(record)
        state.records += len(page)
        yield page
        nxt = resp.paging.next if resp.paging else None
        if nxt is None or not nxt.after:
            return
        after = nxt.after


def pull_related(
    client: HubSpotClient,
    obj: RelatedObject | str,
    since: datetime | None,
    state: RelatedPull,
    *,
    started: datetime,
    overlap: timedelta = timedelta(0),
    search_limit: int = 200,
    extra_properties: Sequence[str] = (),
    list_above: int = 10,
    unchanged: Callable[[Mapping[str, datetime]], set[str]] | None = None,
) -> Iterator[list[HubSpotRecord]]:
    """Pages of records (with their companies) modified since ``since - overlap``; every
    live record when ``since`` is None.

    A window whose changes need more than ``list_above`` association reads is compared
    against the cost of a list walk and read through the list API when that is cheaper
    (``state.mode`` says which).
    ``unchanged`` gets the searched ids with their last-modified time and names those the
    caller already holds as they are (re-read in the overlap): they are left out, and their
    companies are not read again.
    """
    spec = related_object(obj)
    properties = list(
        dict.fromkeys([*spec.properties, spec.modified, OBJECT_ID, *extra_properties])
    )
    if since is None:
        state.mode = "list"
        yield from _list_all(client, spec, properties, state)
        return
    state.mode = "search"
    pages = search_window(
        client,
        spec.name,
        properties,
        modified=spec.modified,
        lower=since - overlap,
        started=started,
        limit=search_limit,
        seen=state.seen,
    )
    first = True
    for found in pages:
        state.requests += 1
        converted = [r for raw in found.results if (r := _convert(raw, spec, state)) is not None]
        known = (
            unchanged({r.id: r.modified for r in converted})
            if unchanged is not None and converted
            else set()
        )
        if first and converted:
            first = False
            # association reads this window needs (extrapolated from its first page)
            reads = math.ceil(
                (len(converted) - len(known)) * max(found.total, len(converted)) / len(converted)
            )
            if reads > list_above:
                live = live_total(client, spec.name)
                state.requests += 1
                if math.ceil(live / LIST_PAGE) < reads:
                    log.info(
                        "HubSpot %s: about %d changed records, more than a list walk "
                        "of %d records costs; listing them all",
                        spec.name,
                        reads,
                        live,
                    )
                    pages.close()
                    state.mode = "search→list"
                    state.seen.clear()
                    yield from _list_all(client, spec, properties, state)
                    return
        state.unchanged += len(known)
        page = []
        for record in converted:
            if record.id in known:
                continue
            read = read_companies(client, spec, record.id, state)
            if read is None:  # archived between the search and the association read
                page.append(replace(record, archived=True))
            else:
                page.append(replace(record, companies=read[0], primary=read[1]))
        state.records += len(page)
        yield page


def pull_owners(client: HubSpotClient, *, archived: bool = False) -> dict[str, Owner]:
    """Owner id → owner (``/crm/v3/owners/``, 500 a request); deactivated users' owners are
    archived and only listed with ``archived=True``."""
    api = client.sdk.crm.owners.owners_api
    out: dict[str, Owner] = {}
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": OWNER_PAGE, "archived": archived}
        if after:
            kwargs["after"] = after
        resp = client.call("list owners", api.get_page, **kwargs)
        for row in resp.results or []:
            name = " ".join(
                p for p in (getattr(row, "first_name", None), getattr(row, "last_name", None)) if p
            )
            email = getattr(row, "email", None) or None
            out[str(row.id)] = Owner(str(row.id), email, name or (email or str(row.id)))
        nxt = resp.paging.next if resp.paging else None
        if nxt is None or not nxt.after:
            return out
        after = nxt.after
