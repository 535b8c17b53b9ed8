"""Zendesk as a support source: organizations matched to accounts, tickets and CSAT kept,
and the support signals of every touched account recomputed.

One sync:

1. **Organizations** (when ``organizations_every`` has passed, on ``--full``, or when a ticket
   names an organization never seen): each is matched to an account by ``external_id`` (the CRM
   account id), else by its ``domain_names``; a match is kept as the account key
   ``zendesk:organization``, a miss goes to the unmatched-records table with the reason. When
   an organization's account changes, its kept tickets and ratings follow it.
2. **Tickets** from the incremental export, from the stored cursor (the first time from
   ``now - backfill``), kept by id with their organization's account. A malformed ticket is
   logged with its id and skipped.
3. **CSAT ratings** received since the last sync, joined to their account through the ticket.
4. **Signals** (source ``zendesk``) recomputed, in chunks of accounts, for the accounts touched
   and for any live account holding none yet (no tickets: zero counts). The database computes
   them — grouped SQL over the kept tickets and ratings (connectors/zendesk/signals_sql.py) —
   a chunk or two ahead, on a connection of its own, while this thread writes the one before.

The export cursor is stored only after all of that succeeded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.identity import ACCOUNT, DOMAIN, IdentityIndex
from connectors.zendesk import (
    ExportState,
    ListState,
    ZendeskClient,
    export_start,
    pull_organizations,
    pull_ratings,
    pull_tickets,
    ticket_record,
)
from connectors.zendesk.config import ZendeskSource
from connectors.zendesk.signals import QUARTER
from connectors.zendesk.signals_sql import RATINGS, SOURCE, TICKETS, computed_signals
from connectors.zendesk.tickets import parse_time
from healthscore.core.errors import SkippableRecord
from healthscore.core.prefetch import prefetched
from store import Store

log = logging.getLogger(__name__)

ORG_KEY = "zendesk:organization"
ORGS = "organizations"
RECOMPUTE_CHUNK = 1000  # accounts whose signals one set of statements computes
RECOMPUTE_AHEAD = 2  # chunks computed ahead of the one being written
EXPORT_AHEAD = 4  # export pages read ahead of the one being stored (≤ 1,000 tickets each)
FLUSH_EVERY = 2000  # organizations or ratings read between two writes


@dataclass
class ZendeskSyncReport:
    organizations: int = 0
    matched: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    tickets: int = 0
    ratings: int = 0
    skipped: int = 0
    accounts_recomputed: int = 0
    signals_changed: int = 0
    requests: int = 0
    export_requests: int = 0
    rate_limited: int = 0
    start_time_too_recent: bool = False
    cursor: str | None = None
    skipped_ids: list[str] = field(default_factory=list)


_skip_lock = threading.Lock()


def _skip(report: ZendeskSyncReport, what: str, exc: SkippableRecord) -> None:
    log.warning("Zendesk %s %s skipped: %s", what, exc.record_id, exc.reason)
    with _skip_lock:  # the export and the organizations/CSAT thread both skip records
        report.skipped += 1
        if len(report.skipped_ids) < 1000:
            report.skipped_ids.append(exc.record_id)


class _Background:
    """``fn`` in a thread of its own; :meth:`join` hands back what it raised."""

    def __init__(self, fn: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised by join() in the sync's thread
            self.error = exc

    def join(self) -> BaseException | None:
        self._thread.join()
        return self.error


class ZendeskSync:
    """One sync run (the collaborators and what it has done so far).

    The ticket export, paced by its own 10 requests a minute, is the long part: organizations
    and CSAT ratings (the general 700 a minute) are read in a second thread meanwhile. A
    ticket is kept with the account its organization links to *when it is stored*; ``_links``
    (a lock) makes each page of tickets land either before the new organization links are
    applied — and is relinked with the rest — or after, with the new links. Ratings take their
    ticket's account at the end of the run (:meth:`Store.follow_parent_records`).
    """

    def __init__(
        self,
        client: ZendeskClient,
        store: Store,
        source: ZendeskSource,
        now: Callable[[], datetime],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client, self.store, self.source = client, store, source
        self.now, self.progress = now, progress
        self.report = ZendeskSyncReport()
        self.links: dict[str, str] = {org: acct for _, org, acct in store.account_keys(ORG_KEY)}
        self.known_orgs: set[str] = set(self.links) | {
            u.record_id for u in store.unmatched(SOURCE) if u.object == ORGS
        }
        self.touched: set[str] = set()
        self.orgs_listed = False
        self._pending_start: int | None = None
        self.orgs_named: set[str] = set()  # by tickets, and not known when they were read
        self._links = threading.Lock()  # self.links and the accounts of stored tickets
        self._touched = threading.Lock()

    def _touch(self, accounts: set[str]) -> None:
        with self._touched:
            self.touched |= accounts

    # -- organizations ---------------------------------------------------------------------
    def sync_organizations(self, started: datetime) -> None:
        source, store, report = self.source, self.store, self.report
        index = IdentityIndex(store.account_keys(DOMAIN), account_ids=store.account_ids())
        links: dict[str, str] = {}
        state = ListState()
        report.matched = report.unmatched = report.ambiguous = 0  # of the latest listing
        unmatched: dict[str, tuple[str, str]] = {}
        matched: list[str] = []
        for page in pull_organizations(self.client, state, page_size=source.page_size):
            for org in page:
                org_id = str(org.get("id") or "")
                if not org_id:
                    _skip(report, "organization", SkippableRecord("<no id>", "no id"))
                    continue
                self.known_orgs.add(org_id)
                external = (
                    [(ACCOUNT, str(org.get("external_id") or "") or None)]
                    if source.external_id_is_account_id
                    else []
                )
                domains = [d for d in org.get("domain_names") or [] if isinstance(d, str)]
                match = index.resolve(external=external, domains=domains)
                if match.account_id is not None:
                    links[org_id] = match.account_id
                    matched.append(org_id)
                    report.matched += 1
                    continue
                name = str(org.get("name") or "")[:80]
                unmatched[org_id] = (match.reason, f"{name}: {match.detail}")
                if match.reason == "ambiguous":
                    report.ambiguous += 1
                else:
                    report.unmatched += 1
            if len(unmatched) + len(matched) >= FLUSH_EVERY:  # pages hold only 100
                store.record_unmatched(SOURCE, ORGS, unmatched, matched=matched)
                unmatched, matched = {}, []
            if self.progress is not None:
                self.progress(len(page))
        store.record_unmatched(SOURCE, ORGS, unmatched, matched=matched)
        report.organizations = state.records
        keys: dict[str, list[str]] = {acct: [] for acct in self.links.values()}  # cleared
        for org_id, acct in links.items():
            keys.setdefault(acct, []).append(org_id)
        store.set_account_keys(ORG_KEY, keys)
        with self._links:
            before = self.links
            changed = {
                org: links.get(org)
                for org in before.keys() | links.keys()
                if before.get(org) != links.get(org)
            }
            # kept tickets follow their organization's account (ratings follow their
            # ticket's at the end of the run): tickets of a newly matched organization have
            # no account yet, and are found through the index; the others by organization
            moved = {org: acct for org, acct in changed.items() if before.get(org) is not None}
            found = {
                org: acct
                for org, acct in changed.items()
                if before.get(org) is None and acct is not None
            }
            self._touch(store.link_unowned_records(SOURCE, TICKETS, "org", found))
            if moved:
                self._touch(store.relink_source_records(SOURCE, TICKETS, "org", moved))
            self.links = links
        self.orgs_listed = True
        store.set_cursor(SOURCE, ORGS, started.isoformat())
        if report.unmatched or report.ambiguous:
            log.warning(
                "Zendesk: %d organizations matched no account, %d several "
                "(`healthscore sources --unmatched` lists them)",
                report.unmatched,
                report.ambiguous,
            )

    def organizations_due(self, started: datetime, full: bool) -> bool:
        last = self.store.cursor(SOURCE, ORGS)
        return (
            full
            or last is None
            or started - datetime.fromisoformat(last) >= self.source.organizations_every
        )

    # -- tickets ---------------------------------------------------------------------------
    def sync_tickets(self, started: datetime, full: bool) -> ExportState:
        stored = None if full else self.store.cursor(SOURCE, TICKETS)
        cursor = start = None
        if stored and stored.startswith("cursor:"):
            cursor = stored.removeprefix("cursor:")
        elif stored and stored.startswith("start:"):
            start = export_start(datetime.fromtimestamp(int(stored[6:]), started.tzinfo), started)
        else:
            start = export_start(started - self.source.backfill, started)
        state = ExportState()
        # the export leaves at its own pace while earlier pages are being stored
        for page in prefetched(
            pull_tickets(
                self.client,
                state,
                cursor=cursor,
                start_time=start,
                per_page=self.source.export_page_size,
            ),
            EXPORT_AHEAD,
            name="zendesk-export",
        ):
            records = []
            for raw in page:
                try:
                    records.append(ticket_record(raw))
                except SkippableRecord as exc:
                    _skip(self.report, "ticket", exc)
            with self._links:
                rows = [
                    (rid, self.links.get(org) if org else None, fields, deleted, modified)
                    for rid, org, fields, deleted, modified in records
                ]
                self._touch(self.store.upsert_source_records(SOURCE, TICKETS, rows))
            self.orgs_named.update(
                org for _, org, _, _, _ in records if org is not None and org not in self.known_orgs
            )
            if self.progress is not None:
                self.progress(len(page))
        self.report.tickets += state.records
        self.report.export_requests += state.requests
        self.report.start_time_too_recent = state.too_recent
        if state.too_recent:
            state.cursor = None
            self._pending_start = start
        return state

    # -- CSAT ------------------------------------------------------------------------------
    def sync_ratings(self, started: datetime, full: bool) -> None:
        stored = None if full else self.store.cursor(SOURCE, RATINGS)
        # CSAT looks back 90 days: a first pull reads no further
        since = (
            datetime.fromisoformat(stored) - self.source.overlap
            if stored
            else started - min(self.source.backfill, QUARTER)
        )
        state = ListState()
        rows: list[tuple[str, str | None, dict[str, Any], bool, datetime]] = []
        for page in pull_ratings(
            self.client, state, start_time=int(since.timestamp()), page_size=self.source.page_size
        ):
            for raw in page:
                rid = str(raw.get("id") or "")
                try:
                    if not rid:
                        raise SkippableRecord("<no id>", "the rating has no id")
                    created = parse_time(raw.get("created_at"))
                    updated = parse_time(raw.get("updated_at") or raw.get("created_at"))
                except ValueError as exc:
                    _skip(self.report, "rating", SkippableRecord(rid, f"bad timestamp ({exc})"))
                    continue
                except SkippableRecord as exc:
                    _skip(self.report, "rating", exc)
                    continue
                # the account is its ticket's, set at the end of the run (follow_parent_records)
                fields = {
                    "score": raw.get("score"),
                    "ticket_id": str(raw.get("ticket_id")),
                    "created_at": created.isoformat(),
                }
                rows.append((rid, None, fields, False, updated))
            if len(rows) >= FLUSH_EVERY:  # pages hold only 100
                self._touch(self.store.upsert_source_records(SOURCE, RATINGS, rows))
                rows = []
        self._touch(self.store.upsert_source_records(SOURCE, RATINGS, rows))
        self.report.ratings += state.records
        if not state.records and stored is None:
            log.info(
                "Zendesk: no satisfaction ratings received; accounts on the new CSAT "
                "surveys need the survey-responses API (not read): zendesk_csat_90d "
                "stays missing"
            )

    # -- signals ---------------------------------------------------------------------------
    def recompute(self, accounts: Iterable[str]) -> None:
        """The signals of ``accounts``: the database computes them a chunk at a time, a chunk
        or two ahead of this thread writing them (:func:`computed_signals`)."""
        now = self.now()
        ids = sorted(set(accounts))
        prefix = self.source.topic_tag_prefix
        for values in computed_signals(
            self.store, ids, now, prefix, chunk=RECOMPUTE_CHUNK, ahead=RECOMPUTE_AHEAD
        ):
            self.report.signals_changed += self.store.record_signal_values(SOURCE, now, values)
        self.report.accounts_recomputed += len(ids)

    def run(self, full: bool = False) -> ZendeskSyncReport:
        started = self.now()
        requests, limited = self.client.requests, self.client.rate_limited
        export = self._pull(started, full)
        self.recompute(self._to_recompute())
        if export.cursor:
            self.store.set_cursor(SOURCE, TICKETS, "cursor:" + export.cursor)
        elif self._pending_start is not None:
            self.store.set_cursor(SOURCE, TICKETS, f"start:{self._pending_start}")
        self.store.set_cursor(SOURCE, RATINGS, started.isoformat())
        report = self.report
        report.cursor = export.cursor
        report.requests = self.client.requests - requests
        report.rate_limited = self.client.rate_limited - limited
        return report

    def _pull(self, started: datetime, full: bool) -> ExportState:
        """Organizations and ratings (in a second thread) and the ticket export, kept; the
        ratings then take their tickets' accounts."""
        orgs_due = self.organizations_due(started, full)

        def organizations_and_ratings() -> None:
            if orgs_due:
                self.sync_organizations(started)
            self.sync_ratings(started, full)

        side = _Background(organizations_and_ratings, "zendesk-organizations-csat")
        try:
            export = self.sync_tickets(started, full)
        finally:
            error = side.join()
        if error is not None:
            raise error
        if self.orgs_named - self.known_orgs and not self.orgs_listed:
            log.info(
                "Zendesk: tickets name %d organizations not seen yet: re-reading organizations",
                len(self.orgs_named - self.known_orgs),
            )
            self.sync_organizations(started)
        # a rating belongs to its ticket's account (its ticket may have come after it)
        self._touch(self.store.follow_parent_records(SOURCE, RATINGS, TICKETS, "ticket_id"))
        return export

    def _to_recompute(self) -> set[str]:
        """The live accounts touched, and those holding no support signals yet."""
        fresh = self.store.accounts_without("zendesk_tickets_30d", SOURCE)
        known = set(self.store.account_ids()) if self.touched else set()
        return (self.touched & known) | set(fresh)


def sync_zendesk(
    client: ZendeskClient,
    store: Store,
    source: ZendeskSource,
    *,
    now: Callable[[], datetime],
    full: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ZendeskSyncReport:
    report = ZendeskSync(client, store, source, now, progress).run(full)
    log.info(
        "Zendesk sync: %d organizations (%d matched, %d unmatched, %d ambiguous), "
        "%d tickets, %d ratings, %d skipped, %d accounts recomputed, %d requests "
        "(%d export, %d rate-limited)",
        report.organizations,
        report.matched,
        report.unmatched,
        report.ambiguous,
        report.tickets,
        report.ratings,
        report.skipped,
        report.accounts_recomputed,
        report.requests,
        report.export_requests,
        report.rate_limited,
    )
    return report
