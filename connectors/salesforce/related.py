"""Objects related to Accounts — Opportunities, Cases, Tasks, Events, Contacts — turned into
signals (and, for Contacts, the recipients of tech-touch email).

Each object is pulled incrementally on ``SystemModstamp`` (``queryAll``, so deletes come
through), kept in the store, and every account whose records changed gets its aggregates
recomputed from all of its records: a renewal closing, a case closing or a meeting taking place
changes the account's signals even though the Account itself did not change.

A full sync of an object estimated above ``bulk_threshold`` rows goes through Bulk API 2.0;
everything else through REST.

Signals (metric names are fixed; map them in the scorecard like any other metric):

- Opportunity: ``renewal_next_at`` (close date of the next open renewal),
  ``renewals_won``, ``renewal_lost_at`` (last closed-lost renewal — the churn outcome),
  ``expansions_won_365d``, ``open_pipeline``.
- Case: ``cases_open``, ``cases_urgent_open`` (High/Urgent/Critical), ``cases_30d``.
- Task: ``last_task_at``; Event: ``last_event_at``, ``exec_sponsor_meetings_90d``.
- Contact: ``contacts``, ``contacts_email_opted_out``; the records (email, role, opt-out) are
  what email actions send to.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simple_salesforce.exceptions import SalesforceBulkV2ExtractError, SalesforceOperationError

from connectors.salesforce.accounts import parse_sf_datetime
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.settings import SOQL_DATETIME
from healthscore.core.errors import RetriableError

log = logging.getLogger(__name__)

Aggregate = Callable[[list[dict[str, Any]], datetime], dict[str, float | None]]


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _bool(v: Any) -> bool:
    return v is True or _text(v).lower() == "true"


def _number(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _when(v: Any) -> datetime | None:
    """A Salesforce date (``2026-11-30``) or datetime → an aware datetime."""
    text = _text(v)
    if not text:
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        return parse_sf_datetime(text)
    except ValueError:
        return None


def _stamp(v: datetime | None) -> float | None:
    return None if v is None else v.timestamp()


def _opportunities(rows: list[dict[str, Any]], now: datetime) -> dict[str, float | None]:
    renewals = [r for r in rows if "renewal" in _text(r.get("Type")).lower()]
    open_renewals = [_when(r.get("CloseDate")) for r in renewals if not _bool(r.get("IsClosed"))]
    lost = [
        _when(r.get("CloseDate"))
        for r in renewals
        if _bool(r.get("IsClosed")) and not _bool(r.get("IsWon"))
    ]
    year_ago = now - timedelta(days=365)
    expansions = [
        r
        for r in rows
        if _text(r.get("Type")).lower() in ("expansion", "upsell")
        and _bool(r.get("IsWon"))
        and (_when(r.get("CloseDate")) or now) >= year_ago
    ]
    pipeline = [_number(r.get("Amount")) or 0.0 for r in rows if not _bool(r.get("IsClosed"))]
    return {
        "renewal_next_at": _stamp(min((d for d in open_renewals if d), default=None)),
        "renewals_won": float(sum(1 for r in renewals if _bool(r.get("IsWon")))),
        "renewal_lost_at": _stamp(max((d for d in lost if d), default=None)),
        "expansions_won_365d": float(len(expansions)),
        "open_pipeline": float(sum(pipeline)),
    }


URGENT = ("high", "urgent", "critical")


def _cases(rows: list[dict[str, Any]], now: datetime) -> dict[str, float | None]:
    open_cases = [r for r in rows if not _bool(r.get("IsClosed"))]
    month_ago = now - timedelta(days=30)
    return {
        "cases_open": float(len(open_cases)),
        "cases_urgent_open": float(
            sum(1 for r in open_cases if _text(r.get("Priority")).lower() in URGENT)
        ),
        "cases_30d": float(
            sum(
                1
                for r in rows
                if (_when(r.get("CreatedDate")) or now - timedelta(days=999)) >= month_ago
            )
        ),
    }


def _last_activity(rows: list[dict[str, Any]], date_field: str, now: datetime) -> float | None:
    past = [d for r in rows if (d := _when(r.get(date_field))) is not None and d <= now]
    return _stamp(max(past, default=None))


def _tasks(rows: list[dict[str, Any]], now: datetime) -> dict[str, float | None]:
    return {"last_task_at": _last_activity(rows, "ActivityDate", now)}


def _events(rows: list[dict[str, Any]], now: datetime) -> dict[str, float | None]:
    quarter_ago = now - timedelta(days=90)
    meetings = [
        r
        for r in rows
        if "executive" in _text(r.get("Type")).lower()
        and quarter_ago <= (_when(r.get("StartDateTime")) or quarter_ago - timedelta(days=1)) <= now
    ]
    return {
        "last_event_at": _last_activity(rows, "StartDateTime", now),
        "exec_sponsor_meetings_90d": float(len(meetings)),
    }


def _contacts(rows: list[dict[str, Any]], now: datetime) -> dict[str, float | None]:
    return {
        "contacts": float(len(rows)),
        "contacts_email_opted_out": float(
            sum(1 for r in rows if _bool(r.get("HasOptedOutOfEmail")))
        ),
    }


@dataclass(frozen=True)
class RelatedObject:
    name: str
    account_field: str
    fields: tuple[str, ...]
    aggregate: Aggregate
    metrics: tuple[str, ...]


RELATED: dict[str, RelatedObject] = {
    "Opportunity": RelatedObject(
        "Opportunity",
        "AccountId",
        ("StageName", "CloseDate", "Amount", "Type", "IsClosed", "IsWon"),
        _opportunities,
        (
            "renewal_next_at",
            "renewals_won",
            "renewal_lost_at",
            "expansions_won_365d",
            "open_pipeline",
        ),
    ),
    "Case": RelatedObject(
        "Case",
        "AccountId",
        ("Status", "Priority", "CreatedDate", "ClosedDate", "IsClosed"),
        _cases,
        ("cases_open", "cases_urgent_open", "cases_30d"),
    ),
    "Task": RelatedObject(
        "Task", "WhatId", ("Subject", "ActivityDate", "Status", "Type"), _tasks, ("last_task_at",)
    ),
    "Event": RelatedObject(
        "Event",
        "WhatId",
        ("Subject", "StartDateTime", "Type"),
        _events,
        ("last_event_at", "exec_sponsor_meetings_90d"),
    ),
    "Contact": RelatedObject(
        "Contact",
        "AccountId",
        ("FirstName", "LastName", "Email", "Title", "Role__c", "HasOptedOutOfEmail"),
        _contacts,
        ("contacts", "contacts_email_opted_out"),
    ),
}


ACCOUNT_KEY_PREFIX = "001"  # every Account id starts so; a WhatId may point at any object


def account_of(obj: RelatedObject, raw: dict[str, Any]) -> str | None:
    """The Account a record counts for: its reference when that is an Account id (a Task or
    an Event on an Opportunity or a Case counts for no account)."""
    ref = _text(raw.get(obj.account_field))
    return ref if ref.startswith(ACCOUNT_KEY_PREFIX) else None


@dataclass
class RelatedSync:
    cursor: datetime | None = None
    records: int = 0
    bulk: bool = False
    requests: int = 0
    skipped_ids: list[str] = field(default_factory=list)


def related_soql(obj: RelatedObject, since: datetime | None, *, deleted: bool = True) -> str:
    fields = ", ".join(
        dict.fromkeys(
            [
                "Id",
                obj.account_field,
                "SystemModstamp",
                *(["IsDeleted"] if deleted else []),
                *obj.fields,
            ]
        )
    )
    soql = f"SELECT {fields} FROM {obj.name}"
    if since is not None:
        soql += f" WHERE SystemModstamp >= {since.astimezone(UTC).strftime(SOQL_DATETIME)}"
    return soql + " ORDER BY SystemModstamp, Id"


def _bulk_rows(
    client: SalesforceClient, obj: RelatedObject, page_size: int
) -> Iterator[list[dict[str, Any]]]:
    """A Bulk API 2.0 query job (queryAll), its CSV result pages parsed into dicts.

    simple-salesforce's bulk handler does not refresh an expired session by itself; the job
    runs inside ``client.call`` so an expiry logs in again and restarts the job.
    """
    soql = related_soql(obj, None, deleted=True)

    def run(sf: Any) -> list[str]:
        handler = getattr(sf.bulk2, obj.name)
        try:
            return list(handler.query_all(soql, max_records=page_size, wait=1))
        except (SalesforceOperationError, SalesforceBulkV2ExtractError) as exc:
            # the job ended Failed/Aborted on Salesforce's side: run it again later
            raise RetriableError(
                f"Salesforce Bulk 2.0 query job for {obj.name} failed: {exc}"
            ) from None

    for chunk in client.call(run, what=f"Bulk 2.0 query {obj.name}"):
        rows = list(csv.DictReader(io.StringIO(chunk)))
        yield [{k: (None if v == "" else v) for k, v in r.items()} for r in rows]


def pull_related(
    client: SalesforceClient,
    obj: RelatedObject,
    since: datetime | None,
    state: RelatedSync,
    *,
    overlap: timedelta,
    bulk_threshold: int,
    bulk_page: int = 50_000,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of raw records modified since ``since - overlap`` (all when None)."""
    if since is None and bulk_threshold > 0:
        count = client.call(
            lambda sf: sf.query(f"SELECT COUNT() FROM {obj.name}", include_deleted=True),
            what=f"count {obj.name}",
        )["totalSize"]
        state.requests += 1
        if count > bulk_threshold:
            state.bulk = True
            log.info(
                "Salesforce %s: %d rows, above %d: Bulk API 2.0", obj.name, count, bulk_threshold
            )
            pages: Iterator[list[dict[str, Any]]] = _bulk_rows(client, obj, bulk_page)
        else:
            pages = client.query_pages(related_soql(obj, None), include_deleted=True)
    else:
        start = since - overlap if since else None
        pages = client.query_pages(related_soql(obj, start), include_deleted=True)
    for page in pages:
        state.requests += 1
        for raw in page:
            stamp = _when(raw.get("SystemModstamp"))
            if stamp is not None and (state.cursor is None or stamp > state.cursor):
                state.cursor = stamp
        state.records += len(page)
        yield page
