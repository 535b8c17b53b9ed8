"""HubSpot companies, pulled incrementally through the search API.

The cursor is the newest ``hs_lastmodifieddate`` seen, never later than the moment the sync
started (a record modified during the sync is read next time, not skipped). Search pages stop
at 10,000 results, so a long window is walked in slices: when a slice reaches the cap, a new
search starts at the last timestamp seen (``GTE``, with already-seen ids skipped); if a single
timestamp holds more than a slice, those records are walked by ``hs_object_id`` instead —
restarting from the same timestamp would loop forever. The first sync lists every company
through the list API (no cap).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import HubSpotSource
from healthscore.core.errors import SkippableRecord
from scoring.churn_model import CHURN_ROLES

log = logging.getLogger(__name__)

SEARCH_CAP = 10_000
LIST_PAGE = 100
MODIFIED = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"
BASE_PROPERTIES = (
    "name",
    "domain",
    MODIFIED,
    OBJECT_ID,
    "hubspot_owner_id",
    "hs_merged_object_ids",
)


@dataclass(frozen=True)
class CompanyRecord:
    id: str
    properties: dict[str, str | None]
    modified: datetime
    merged_ids: tuple[str, ...] = ()

    @property
    def domain(self) -> str | None:
        return self.properties.get("domain")


@dataclass
class CompanySync:
    cursor: datetime | None = None
    records: int = 0
    requests: int = 0
    seen: set[str] = field(default_factory=set)


def parse_hubspot_time(value: str | None) -> datetime | None:
    """HubSpot datetimes are ISO with millis and Z (or epoch ms in some properties)."""
    if not value:
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch_ms(value: datetime) -> str:
    return str(int(value.timestamp() * 1000))


def wanted_properties(source: HubSpotSource) -> list[str]:
    # every health property, the churn ones too: HubSpot leaves out one it does not have
    extra = [*source.metrics.values(), *source.write_back.roles(CHURN_ROLES).values()]
    if source.account_id_property:
        extra.append(source.account_id_property)
    if source.override_properties is not None:
        extra += source.override_properties.roles().values()
    return list(dict.fromkeys([*BASE_PROPERTIES, *extra]))


def to_company(obj: Any) -> CompanyRecord:
    """An SDK company object, or its JSON as a dict, as a record."""
    if isinstance(obj, dict):
        company_id = str(obj.get("id") or "")
        props = obj.get("properties")
        props = dict(props) if isinstance(props, dict) else {}
        updated = obj.get("updatedAt")
    else:
        company_id = str(getattr(obj, "id", "") or "")
        props = dict(getattr(obj, "properties", None) or {})
        updated = getattr(obj, "updated_at", None)
    if not company_id:
        raise SkippableRecord("<no id>", "company has no id")
    try:
        modified = parse_hubspot_time(props.get(MODIFIED)) or (
            parse_hubspot_time(updated) if isinstance(updated, str) else updated
        )
    except ValueError as exc:
        raise SkippableRecord(company_id, f"{MODIFIED} is not a date: {exc}") from None
    if not isinstance(modified, datetime):
        raise SkippableRecord(company_id, f"company has no {MODIFIED}")
    merged = tuple(x for x in str(props.get("hs_merged_object_ids") or "").split(";") if x)
    return CompanyRecord(company_id, props, modified.astimezone(UTC), merged)


def _page(records: list[Any], state: CompanySync) -> list[CompanyRecord]:
    out = []
    for obj in records:
        try:
            company = to_company(obj)
        except SkippableRecord as exc:
            log.warning("HubSpot company %s skipped: %s", exc.record_id, exc.reason)
            continue
        if company.id in state.seen:  # re-read at a slice boundary
            continue
        state.seen.add(company.id)
        state.records += 1
        out.append(company)
    return out


def pull_companies(
    client: HubSpotClient,
    source: HubSpotSource,
    since: datetime | None,
    state: CompanySync,
    *,
    started: datetime,
) -> Iterator[list[CompanyRecord]]:
    """Pages of companies modified since ``since`` (all of them when None)."""
    properties = wanted_properties(source)
    if since is None:
        yield from _list_all(client, properties, state, started)
    else:
        yield from _search_since(client, source, properties, since - source.overlap, state, started)


def _advance(state: CompanySync, page: list[CompanyRecord], started: datetime) -> None:
    for company in page:
        if company.modified <= started and (
            state.cursor is None or company.modified > state.cursor
        ):
            state.cursor = company.modified


def _list_all(
    client: HubSpotClient, properties: list[str], state: CompanySync, started: datetime
) -> Iterator[list[CompanyRecord]]:
    api = client.sdk.crm.companies.basic_api
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": LIST_PAGE, "properties": properties, "archived": False}
        if after:
            kwargs["after"] = after
        body = client.call_json("list companies", api.get_page, **kwargs)
        state.requests += 1
        page = _page(list(body.get("results") or []), state)
        _advance(state, page, started)
        yield page
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


@dataclass(frozen=True)
class SearchPage:
    """One search response (each page is exactly one request): the rows not yielded before,
    and the query's total (the size of the current slice, not of the whole window)."""

    results: list[Any]
    total: int


def archived_ids(
    client: HubSpotClient, object_type: str
) -> Iterator[list[tuple[str, datetime | None]]]:
    """Pages of (id, archived at) of archived records (HubSpot keeps them 90 days).

    The search API never returns archived records, so an incremental sync cannot see a
    deletion; this list is read on full syncs and every ``deleted_check_every``.
    """
    api = getattr(client.sdk.crm, object_type).basic_api
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": LIST_PAGE, "properties": [OBJECT_ID], "archived": True}
        if after:
            kwargs["after"] = after
        resp = client.call(f"list archived {object_type}", api.get_page, **kwargs)
        page = []
        for obj in resp.results or []:
            when = getattr(obj, "archived_at", None)
            page.append((str(obj.id), when.astimezone(UTC) if isinstance(when, datetime) else None))
        yield page
        nxt = resp.paging.next if resp.paging else None
        if nxt is None or not nxt.after:
            return
        after = nxt.after


def search_window(
    client: HubSpotClient,
    object_type: str,
    properties: Sequence[str],
    *,
    modified: str,
    lower: datetime,
    started: datetime,
    limit: int = 200,
    seen: set[str] | None = None,
    cap: int = SEARCH_CAP,
) -> Iterator[SearchPage]:
    """Every live record of ``object_type`` with ``lower <= modified < started + 1 ms``.

    The 10,000-result cap is walked in slices: when a query reaches it, a new one starts at
    the newest timestamp seen (``GTE``: rows at that instant come again and are dropped as
    seen); when a whole slice shares one timestamp, that instant is walked by
    ``hs_object_id``. ``seen`` (ids already yielded) may be shared with the caller; ``cap``
    is HubSpot's result cap.
    """
    api = getattr(client.sdk.crm, object_type).search_api
    seen = set() if seen is None else seen
    upper = _epoch_ms(started + timedelta(milliseconds=1))  # LT: up to the sync start
    low = lower
    tie: tuple[datetime, str] | None = None  # walking one timestamp by object id
    while True:
        if tie is None:
            filters = [
                {"propertyName": modified, "operator": "GTE", "value": _epoch_ms(low)},
                {"propertyName": modified, "operator": "LT", "value": upper},
            ]
            sorts = [{"propertyName": modified, "direction": "ASCENDING"}]
        else:
            filters = [
                {"propertyName": modified, "operator": "EQ", "value": _epoch_ms(tie[0])},
                {"propertyName": OBJECT_ID, "operator": "GT", "value": tie[1]},
            ]
            sorts = [{"propertyName": OBJECT_ID, "direction": "ASCENDING"}]
        after = 0
        newest: datetime | None = None
        last_id = tie[1] if tie else "0"
        capped = False
        while True:
            body = {
                "filterGroups": [{"filters": filters}],
                "sorts": sorts,
                "properties": list(properties),
                "limit": limit,
                "after": str(after),
            }
            client.search_quota.acquire()  # search has its own per-second limit
            resp = client.call(f"search {object_type}", api.do_search, body)
            results = list(resp.results or [])
            for obj in results:  # the slice bookkeeping reads every row, seen or not
                props = getattr(obj, "properties", None) or {}
                try:
                    stamp = parse_hubspot_time(props.get(modified))
                except ValueError:
                    stamp = None
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
                if str(obj.id).isdigit() and int(obj.id) > int(last_id):
                    last_id = str(obj.id)
            fresh = [obj for obj in results if str(getattr(obj, "id", "")) not in seen]
            seen.update(str(getattr(obj, "id", "")) for obj in fresh)
            yield SearchPage(fresh, int(resp.total or 0))
            nxt = resp.paging.next if resp.paging else None
            if nxt is None or not nxt.after:
                break
            after = int(nxt.after)
            if after + limit > cap:
                capped = True
                break
        if not capped:
            if tie is None:
                return
            low, tie = tie[0] + timedelta(milliseconds=1), None  # past the crowded instant
            continue
        if tie is not None:
            tie = (tie[0], last_id)
        elif newest is not None and newest > low:
            low = newest
        else:  # a whole slice shares one timestamp
            tie = (low, "0")
        log.info(
            "HubSpot %s search reached %d results; continuing from %s", object_type, cap, tie or low
        )


def _search_since(
    client: HubSpotClient,
    source: HubSpotSource,
    properties: list[str],
    lower: datetime,
    state: CompanySync,
    started: datetime,
) -> Iterator[list[CompanyRecord]]:
    for found in search_window(
        client,
        "companies",
        properties,
        modified=MODIFIED,
        lower=lower,
        started=started,
        limit=source.search_page_size,
    ):
        state.requests += 1
        page = _page(found.results, state)
        _advance(state, page, started)
        yield page
