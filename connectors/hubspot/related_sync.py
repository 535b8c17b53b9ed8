"""HubSpot deals, tickets and contacts → per-account signals (source ``hubspot``).

Each object is pulled incrementally (``connectors/hubspot/related.py``) and every record is
kept in the store (``source_records``, object ``deals`` / ``tickets`` / ``contacts``) with the
account it belongs to, so an account's aggregates are recomputed from all of its records when
only some changed — the same design as the other CRM's related objects.

Matching a record to an account:

- through its companies: ``hubspot:company`` keys (company id → account, written by the company
  sync). The primary company wins; else the companies must all lead to one account (two
  accounts: *ambiguous*). Companies that lead to no account: *no_match*.
- a contact with no company at all: by its email domain (``IdentityIndex``: free-mail is no
  key, a domain of two accounts is *ambiguous*); deals and tickets without a company: *no_key*.

Unmatched records are kept too (without an account) and logged in the unmatched-records table
with the reason; every sync re-matches them from the kept copy (no API request), so a company
matched later brings its deals along. The periodic deleted-records check (``deleted_check_every``,
and every full sync) also marks archived records deleted, re-matches every kept record (keys
may have moved) and recomputes every account with a company key — time-window counts
(``*_30d``, ``*_365d``) move with the clock even when no record changes, and accounts without
records get their zeros.

Signals (fixed names; map them in the scorecard like any other metric):

- deals: ``hubspot_renewal_next_at`` (close date of the earliest open renewal deal),
  ``hubspot_renewal_lost_at`` (close date of the last closed-lost renewal deal: a churn),
  ``hubspot_deals_won_365d`` (deals won with a close date in the last 365 days),
  ``hubspot_open_deal_amount`` (sum of the open deals' amounts).
  A deal is a *renewal* when its ``dealtype`` is one of ``RelatedRules.renewal_deal_types``
  (``renewal`` — a common custom option — or HubSpot's ``existingbusiness``), or it sits in one
  of ``renewal_pipelines``, or (no ``dealtype`` set) its name contains ``renewal``.
  Closed / won: HubSpot's calculated ``hs_is_closed`` / ``hs_is_closed_won`` when present, else
  the stage (``closedwon`` / ``closedlost`` of the default pipeline, configurable).
- tickets: ``hubspot_tickets_open``, ``hubspot_tickets_high_open`` (priority HIGH or URGENT),
  ``hubspot_tickets_30d`` (created in the last 30 days). A ticket is closed when it has a
  ``closed_date`` or its stage is one of ``closed_ticket_stages`` (``4``: the default
  pipeline's Closed).
- contacts: ``hubspot_contacts``, ``hubspot_email_opted_out`` (contacts unsubscribed from all
  email, ``hs_email_optout``).

Learned domains: a contact matched through its company whose email domain is not free-mail
and is no other account's (nor claimed by contacts of another account in the same run) adds
that domain to the account's ``domain`` keys, so other sources' records from that domain
match. What was learned is remembered under ``hubspot:contact_domain``: it is re-added when a
CRM sync replaced the account's domain keys, and withdrawn when the contacts are gone or the
domain turns out to be another account's.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connectors.hubspot import HubSpotClient
from connectors.hubspot.companies import archived_ids
from connectors.hubspot.config import HubSpotSource
from connectors.hubspot.related import (
    RELATED_OBJECTS,
    HubSpotRecord,
    RelatedPull,
    pull_owners,
    pull_related,
)
from connectors.hubspot.related_signals import (
    RelatedRules,
    check_record,
    contact_metrics,
    deal_metrics,
    ticket_metrics,
)
from connectors.hubspot.sync import COMPANY_KEY, SOURCE
from connectors.identity import DOMAIN, FREE_MAIL_DOMAINS, IdentityIndex, Match, domain_of
from store import SignalRow, Store
from store.models import SourceRecord

log = logging.getLogger(__name__)

OBJECTS = ("deals", "tickets", "contacts")
LEARNED_DOMAIN = "hubspot:contact_domain"
ARCHIVED_CHECK = "{}:archived-check"
# kept next to the HubSpot properties in each source record
COMPANIES, PRIMARY, VIA = "_companies", "_primary", "_via"


@dataclass
class ObjectReport:
    records: int = 0
    matched: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    skipped: int = 0
    archived: int = 0  # archived records seen by the deleted-records check
    unchanged: int = 0  # re-read in the overlap but already kept as they are
    rematched: int = 0  # kept records whose account changed without a HubSpot change
    accounts_recomputed: int = 0
    signals_changed: int = 0
    requests: int = 0
    association_requests: int = 0
    mode: str = ""
    skipped_ids: list[str] = field(default_factory=list)


@dataclass
class HubSpotRelatedReport:
    objects: dict[str, ObjectReport] = field(default_factory=dict)
    domains_learned: int = 0
    domains_withdrawn: int = 0

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.objects.values())


# -- values ------------------------------------------------------------------------------------
# -- aggregates --------------------------------------------------------------------------------
AGGREGATES: dict[
    str, Callable[[list[dict[str, Any]], datetime, RelatedRules], dict[str, float | None]]
] = {"deals": deal_metrics, "tickets": ticket_metrics, "contacts": contact_metrics}


# -- matching ----------------------------------------------------------------------------------
class Matcher:
    """Record → account, from the store's keys (built once per sync)."""

    def __init__(self, store: Store) -> None:
        self.company_accounts: dict[str, set[str]] = defaultdict(set)
        for _, company_id, account_id in store.account_keys(COMPANY_KEY):
            self.company_accounts[company_id].add(account_id)
        self.index = IdentityIndex(store.account_keys(DOMAIN))

    def keyed_accounts(self) -> set[str]:
        """Every account some company leads to."""
        return {a for accounts in self.company_accounts.values() for a in accounts}

    def resolve(
        self, obj: str, companies: Iterable[str], primary: Iterable[str], email: str | None
    ) -> tuple[Match, str]:
        """(match, how: company | domain | "")."""
        companies, primary = list(companies), list(primary)
        for group in (primary, companies):
            accounts = {a for c in group for a in self.company_accounts.get(c, ())}
            if len(accounts) == 1:
                return Match(next(iter(accounts)), "company"), "company"
            if len(accounts) > 1:
                return Match(
                    None,
                    "",
                    "ambiguous",
                    f"companies {', '.join(group)} belong to accounts "
                    + ", ".join(sorted(accounts)),
                ), ""
        if companies:
            return Match(
                None, "", "no_match", "company " + ", ".join(companies) + " matches no account"
            ), ""
        if obj != "contacts":
            return Match(None, "", "no_key", f"{obj[:-1]} has no associated company"), ""
        match = self.index.resolve(domains=[email])
        if match.reason == "no_key":
            match = Match(
                None,
                "",
                "no_key",
                f"no associated company and no company email domain ({email or 'no email'})",
            )
        return match, "domain" if match.matched else ""


def _fields(record: HubSpotRecord, via: str) -> dict[str, Any]:
    return {
        **record.properties,
        COMPANIES: list(record.companies),
        PRIMARY: list(record.primary),
        VIA: via,
    }


def _kept(
    store: Store, obj: str, *, unassigned_only: bool
) -> list[tuple[str, str | None, dict[str, Any], datetime]]:
    """Live kept records of an object (only those without an account, if asked).

    Reads the table directly: the Store has no such method yet.
    """
    stmt = select(
        SourceRecord.id, SourceRecord.account_id, SourceRecord.fields, SourceRecord.modified
    ).where(
        SourceRecord.source == SOURCE, SourceRecord.object == obj, SourceRecord.deleted.is_(False)
    )
    if unassigned_only:
        stmt = stmt.where(SourceRecord.account_id.is_(None))
    with store.session() as s:
        return [(r[0], r[1], dict(r[2] or {}), r[3]) for r in s.execute(stmt)]


def _held(store: Store, obj: str, found: Mapping[str, datetime]) -> set[str]:
    """The ids of ``found`` kept with that same last-modified time and with companies — an
    overlap re-read; one without companies is read again (it may have been associated
    since: that does not change the record's modified date)."""
    stmt = select(SourceRecord.id, SourceRecord.modified, SourceRecord.fields).where(
        SourceRecord.source == SOURCE,
        SourceRecord.object == obj,
        SourceRecord.deleted.is_(False),
        SourceRecord.id.in_(list(found)),
    )
    with store.session() as s:
        return {
            rid
            for rid, modified, fields in s.execute(stmt)
            if modified == found[rid] and (fields or {}).get(COMPANIES)
        }


def _check_due(store: Store, obj: str, every: timedelta, now: datetime) -> bool:
    last = store.cursor(SOURCE, ARCHIVED_CHECK.format(obj))
    return last is None or now - datetime.fromisoformat(last) >= every


# -- the sync ----------------------------------------------------------------------------------
def sync_hubspot_related(
    client: HubSpotClient,
    store: Store,
    *,
    since_by_object: Mapping[str, datetime | None],
    started: datetime,
    source: HubSpotSource | None = None,
    rules: RelatedRules | None = None,
    now: Callable[[], datetime] | None = None,
    committed: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> HubSpotRelatedReport:
    """Pull each object of ``since_by_object`` (object → cursor; None: everything), keep its
    records, match them to accounts and recompute the touched accounts' signals.

    ``started`` is when the caller's sync started (records modified later are left for next
    time); ``committed(obj)`` is called once an object is completely stored — the moment to
    advance its cursor to ``started``. ``source`` gives ``overlap``, ``search_page_size`` and
    ``deleted_check_every``; ``now`` the clock for the time-window aggregates.
    """
    source = source or HubSpotSource()
    rules = rules or RelatedRules()
    clock = now or (lambda: datetime.now(UTC))
    unknown = set(since_by_object) - set(OBJECTS)
    if unknown:
        raise ValueError(f"unknown HubSpot objects {sorted(unknown)}; one of {OBJECTS}")
    report = HubSpotRelatedReport()
    for obj in [o for o in OBJECTS if o in since_by_object]:  # contacts last: learned domains
        matcher = Matcher(store)  # fresh keys: the previous object may have learned domains
        report.objects[obj] = _sync_object(
            client,
            store,
            obj,
            since_by_object[obj],
            started,
            source,
            rules,
            clock,
            matcher,
            report,
            progress,
        )
        if committed is not None:
            committed(obj)
    return report


def _sync_object(
    client: HubSpotClient,
    store: Store,
    obj: str,
    since: datetime | None,
    started: datetime,
    source: HubSpotSource,
    rules: RelatedRules,
    clock: Callable[[], datetime],
    matcher: Matcher,
    report: HubSpotRelatedReport,
    progress: Callable[[int], None] | None,
) -> ObjectReport:
    out = ObjectReport()
    state = RelatedPull()
    touched: set[str] = set()
    extra = [rules.amount_property] if obj == "deals" else []
    for page in pull_related(
        client,
        RELATED_OBJECTS[obj],
        since,
        state,
        started=started,
        overlap=source.overlap,
        search_limit=source.search_page_size,
        extra_properties=extra,
        list_above=rules.list_above,
        unchanged=lambda found: _held(store, obj, found),
    ):
        rows: list[tuple[str, str | None, dict[str, Any], bool, datetime]] = []
        unmatched: dict[str, tuple[str, str]] = {}
        matched: list[str] = []
        for record in page:
            if record.archived:
                rows.append((record.id, None, {}, True, record.modified))
                matched.append(record.id)  # gone: no longer an unmatched record either
                continue
            problem = check_record(record, rules)
            if problem is not None:
                log.warning("HubSpot %s %s skipped: %s", obj, record.id, problem)
                out.skipped += 1
                out.skipped_ids.append(record.id)
                continue
            match, via = matcher.resolve(
                obj, record.companies, record.primary, record.properties.get("email")
            )
            rows.append((record.id, match.account_id, _fields(record, via), False, record.modified))
            if match.matched:
                out.matched += 1
                matched.append(record.id)
            else:
                unmatched[record.id] = (match.reason, match.detail)
                if match.reason == "ambiguous":
                    out.ambiguous += 1
                else:
                    out.unmatched += 1
        touched |= store.upsert_source_records(SOURCE, obj, rows)
        store.record_unmatched(SOURCE, obj, unmatched, matched=matched)
        if progress is not None:
            progress(len(page))
    out.records, out.mode, out.unchanged = state.records, state.mode, state.unchanged
    out.requests, out.association_requests = state.requests, state.association_requests
    out.skipped_ids += state.skipped_ids
    out.skipped += len(state.skipped_ids)

    check = since is None or _check_due(store, obj, source.deleted_check_every, started)
    if check:
        for ids in archived_ids(client, obj):
            out.requests += 1
            out.archived += len(ids)
            touched |= store.upsert_source_records(
                SOURCE, obj, [(rid, None, {}, True, when or started) for rid, when in ids]
            )
            store.record_unmatched(SOURCE, obj, {}, matched=[rid for rid, _ in ids])
    out.rematched, moved = _rematch(store, obj, matcher, every=check)
    touched |= moved
    if check:  # time windows move, accounts without records get their zeros
        touched |= matcher.keyed_accounts()
    at = clock()
    by_account = store.source_records(SOURCE, obj, touched)
    aggregate = AGGREGATES[obj]
    out.signals_changed = store.record_signals(
        SignalRow(account_id, metric, value, at, SOURCE)
        for account_id, rows_ in by_account.items()
        for metric, value in aggregate(rows_, at, rules).items()
    )
    out.accounts_recomputed = len(by_account)
    if obj == "contacts" and rules.learn_contact_domains:
        learned, withdrawn = learn_domains(store, touched)
        report.domains_learned += learned
        report.domains_withdrawn += withdrawn
    if check:
        store.set_cursor(SOURCE, ARCHIVED_CHECK.format(obj), started.isoformat())
    log.info(
        "HubSpot %s: %d records (%s, %d requests), %d matched, %d unmatched, "
        "%d ambiguous, %d skipped, %d accounts recomputed",
        obj,
        out.records,
        out.mode,
        out.requests,
        out.matched,
        out.unmatched,
        out.ambiguous,
        out.skipped,
        out.accounts_recomputed,
    )
    return out


def _rematch(store: Store, obj: str, matcher: Matcher, *, every: bool) -> tuple[int, set[str]]:
    """Match kept records again from their kept companies / email (no API request): the
    unassigned ones every sync, all of them on the periodic check. Returns (records moved,
    accounts touched)."""
    rows: list[tuple[str, str | None, dict[str, Any], bool, datetime]] = []
    unmatched: dict[str, tuple[str, str]] = {}
    matched: list[str] = []
    for rid, account, fields, modified in _kept(store, obj, unassigned_only=not every):
        if not fields:
            continue
        match, via = matcher.resolve(
            obj, fields.get(COMPANIES) or [], fields.get(PRIMARY) or [], fields.get("email")
        )
        if match.account_id == account and fields.get(VIA, "") == via:
            continue
        rows.append((rid, match.account_id, {**fields, VIA: via}, False, modified))
        if match.matched:
            matched.append(rid)
        else:
            unmatched[rid] = (match.reason, match.detail)
    if not rows:
        return 0, set()
    touched = store.upsert_source_records(SOURCE, obj, rows)
    store.record_unmatched(SOURCE, obj, unmatched, matched=matched)
    return len(rows), touched


def learn_domains(store: Store, touched: Iterable[str]) -> tuple[int, int]:
    """Add (and withdraw) contact email domains as ``domain`` keys; returns (added,
    withdrawn). See the module docstring for the rules."""
    learned: dict[str, set[str]] = defaultdict(set)  # account → learned before
    for _, value, account in store.account_keys(LEARNED_DOMAIN):
        learned[account].add(value)
    current: dict[str, set[str]] = defaultdict(set)  # account → domain keys now
    for _, value, account in store.account_keys(DOMAIN):
        current[account].add(value)
    # the domains the CRMs gave (learned ones taken out), and who learned what
    crm = IdentityIndex(
        [(DOMAIN, d, a) for a, ds in current.items() for d in ds - learned.get(a, set())]
    )
    accounts = set(touched) | set(learned)
    contacts = store.source_records(SOURCE, "contacts", accounts)
    claims: dict[str, set[str]] = defaultdict(set)
    for account, rows in contacts.items():
        for row in rows:
            domain = domain_of(row.get("email")) if row.get(VIA) == "company" else None
            if domain and domain not in FREE_MAIL_DOMAINS:
                claims[domain].add(account)
    wanted: dict[str, set[str]] = defaultdict(set)
    for domain, claimants in claims.items():
        if len(claimants) != 1:
            continue  # contested in this run: nobody's
        account = next(iter(claimants))
        if crm.resolve(domains=[domain]).reason != "no_match":
            continue  # the CRM already ties it to this or another account (or to several)
        wanted[account].add(domain)
    added = withdrawn = 0
    domain_keys: dict[str, list[str]] = {}
    learned_keys: dict[str, list[str]] = {}
    for account in accounts:
        before, now_ = learned.get(account, set()), wanted.get(account, set())
        keys = current.get(account, set())
        if now_ != before or not now_ <= keys:
            domain_keys[account] = sorted((keys - before) | now_)
            learned_keys[account] = sorted(now_)
            added += len(now_ - before)
            withdrawn += len(before - now_)
    if domain_keys:
        store.set_account_keys(DOMAIN, domain_keys)
        store.set_account_keys(LEARNED_DOMAIN, learned_keys)
        log.info("HubSpot contacts: %d email domains learned, %d withdrawn", added, withdrawn)
    return added, withdrawn


def hubspot_owner_emails(client: HubSpotClient, *, archived: bool = False) -> dict[str, str]:
    """HubSpot owner id → email (owners without an email are left out)."""
    return {
        oid: owner.email
        for oid, owner in pull_owners(client, archived=archived).items()
        if owner.email
    }
