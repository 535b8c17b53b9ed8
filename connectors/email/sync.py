"""Email platforms → per-account email engagement signals: what every platform shares.

Every recipient-level fact is kept in the store (``source_records``) with the account its
recipient's email domain belongs to, so a re-sync reads only what changed and the touched
accounts' signals are recomputed from all their facts (``connectors.email.engagement``).
Each platform's module says which objects hold its facts (``FACT_OBJECTS``).

A recipient is matched by its email domain (``IdentityIndex``: free-mail never matches; a
domain of two accounts is ambiguous). Unmatched recipients are kept without an account, listed
under object ``recipients`` of ``healthscore sources --unmatched``, counted in the report, and
matched again on every sync (a domain added to the CRM later brings their history along).
Malformed records are logged with their id, counted and skipped. Cursors move only after a
complete pull; the 90-day window moves once a day (at 00:00 UTC, ``window_start``), so every
account holding facts is recomputed by the first sync of each UTC day even when nothing
changed, and facts older than the window (plus a day) are deleted then, so the store does not
grow without bound.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from connectors.email.engagement import WINDOW, engagement, merge_facts, window_start
from connectors.identity import DOMAIN, IdentityIndex, Match, domain_of
from store import SignalRow, Store
from store.models import SourceRecord

log = logging.getLogger(__name__)

# source → the objects whose kept records are its facts (each platform's module adds its own)
FACT_OBJECTS: dict[str, tuple[str, ...]] = {}
RECIPIENTS = "recipients"  # the unmatched-records object
RECOMPUTE = "recompute"  # cursor object: when every account holding facts was last recomputed
RETENTION = WINDOW + timedelta(days=1)  # older facts can no longer count: pruned daily
Progress = Callable[[int], None] | None


@dataclass
class EmailSyncReport:
    source: str
    records: int = 0
    matched: int = 0
    unmatched: int = 0  # distinct recipients with no account (free-mail, unknown domain)
    ambiguous: int = 0
    skipped: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    rematched: int = 0
    campaigns: int = 0
    accounts_recomputed: int = 0
    signals_changed: int = 0
    requests: int = 0
    rate_limited: int = 0
    pruned: int = 0  # facts past the window, deleted by the daily pass
    baseline: dict[str, float | None] = field(default_factory=dict)  # org-wide rates
    cursor: str | None = None

    def skip(self, record_id: str, reason: str) -> None:
        log.warning("%s record %s skipped: %s", self.source, record_id, reason)
        self.skipped += 1
        self.skipped_ids.append(record_id)


class RecipientMatcher:
    """Recipient email → account, by domain; built once per sync (or webhook key cache)."""

    def __init__(self, store: Store) -> None:
        self.index = IdentityIndex(store.account_keys(DOMAIN))
        self._cache: dict[str, Match] = {}

    def resolve(self, email: str) -> Match:
        domain = domain_of(email) or email
        match = self._cache.get(domain)
        if match is None:
            match = self.index.resolve(domains=[email])
            if match.reason == "no_key":
                match = Match(None, "", "no_key", f"{domain} is a free-mail or invalid domain")
            self._cache[domain] = match
        return match


Row = tuple[str, str | None, dict[str, Any], bool, datetime]
ID_MAX = 64  # source_records.id; vendor ids can be longer (some message ids are)


def record_key(vendor_id: str) -> str:
    """A vendor id as a record id: itself when short enough, else a stable digest."""
    if len(vendor_id) <= ID_MAX:
        return vendor_id
    return "sha256:" + hashlib.sha256(vendor_id.encode()).hexdigest()[: ID_MAX - 7]


class _Keeper:
    """Matches facts to accounts and stores them, page by page, noting who is unmatched."""

    def __init__(
        self, store: Store, source: str, matcher: RecipientMatcher, report: EmailSyncReport
    ) -> None:
        self.store, self.source, self.matcher, self.report = store, source, matcher, report
        self.touched: set[str] = set()
        self._unmatched: dict[str, tuple[str, str]] = {}
        self._matched: set[str] = set()

    def row(self, record_id: str, facts: dict[str, Any], modified: datetime) -> Row:
        email = facts["email"]
        match = self.matcher.resolve(email)
        if match.matched:
            self.report.matched += 1
            self._matched.add(email[:128])
        else:
            self._unmatched[email[:128]] = (match.reason, match.detail)
        return record_key(record_id), match.account_id, facts, False, modified

    def keep_page(
        self,
        obj: str,
        page: list[Any],
        parse: Callable[[Any], tuple[str, dict[str, Any], datetime]],
        skip_id: Callable[[Any], str],
        *,
        merge: bool = False,
        progress: Progress = None,
    ) -> None:
        """Parse each record of a page (a ValueError skips it, reported under ``skip_id``),
        match and keep the rest, and count the page."""
        rows = []
        for record in page:
            try:
                record_id, facts, at = parse(record)
            except ValueError as exc:
                self.report.skip(skip_id(record), str(exc))
                continue
            rows.append(self.row(record_id, facts, at))
        self.keep(obj, rows, merge=merge)
        self.report.records += len(page)
        if progress is not None:
            progress(len(page))

    def keep(self, obj: str, rows: list[Row], *, merge: bool = False) -> None:
        if merge and rows:
            held = existing(self.store, self.source, obj, [r[0] for r in rows])
            rows = [(rid, acct, merge_facts(held.get(rid), f), d, m) for rid, acct, f, d, m in rows]
        self.touched |= keep_records(self.store, self.source, obj, rows)

    def finish(self) -> None:
        unmatched = {e: v for e, v in self._unmatched.items() if e not in self._matched}
        self.report.unmatched += sum(1 for r, _ in unmatched.values() if r != "ambiguous")
        self.report.ambiguous += sum(1 for r, _ in unmatched.values() if r == "ambiguous")
        self.store.record_unmatched(self.source, RECIPIENTS, unmatched, matched=self._matched)


def _insert(store_session: Any) -> Any:
    dialect = store_session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SourceRecord.__table__)


def keep_records(store: Store, source: str, obj: str, rows: list[Row]) -> set[str]:
    """``Store.upsert_source_records`` as one executemany statement (the facts come in pages
    of a thousand: a multi-VALUES statement that size costs more to compile than to run).
    Returns the accounts touched: the records' new ones and, when a record moved, the old."""
    rows = list({r[0]: r for r in rows}.values())  # one row per id (the last wins)
    if not rows:
        return set()
    touched = {r[1] for r in rows if r[1]}
    ids = [r[0] for r in rows]
    with store.session() as s:
        for start in range(0, len(ids), 5000):
            touched.update(
                a
                for a in s.scalars(
                    select(SourceRecord.account_id).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        SourceRecord.id.in_(ids[start : start + 5000]),
                    )
                )
                if a
            )
        insert = _insert(s)
        stmt = insert.on_conflict_do_update(
            index_elements=["source", "object", "id"],
            set_={c: insert.excluded[c] for c in ("account_id", "fields", "deleted", "modified")},
        )
        s.execute(
            stmt,
            [
                {
                    "source": source,
                    "object": obj,
                    "id": rid,
                    "account_id": acct,
                    "fields": fields,
                    "deleted": deleted,
                    "modified": modified,
                }
                for rid, acct, fields, deleted, modified in rows
            ],
        )
    return touched


def existing(store: Store, source: str, obj: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The kept fields of these records (those that exist)."""
    out: dict[str, dict[str, Any]] = {}
    with store.session() as s:
        for start in range(0, len(ids), 5000):
            for rid, fields in s.execute(
                select(SourceRecord.id, SourceRecord.fields).where(
                    SourceRecord.source == source,
                    SourceRecord.object == obj,
                    SourceRecord.id.in_(ids[start : start + 5000]),
                )
            ):
                out[rid] = dict(fields or {})
    return out


def arrived_since(store: Store, source: str, obj: str, since: datetime) -> set[str]:
    """Accounts with records of ``obj`` kept (or changed) at or after ``since``."""
    with store.session() as s:
        return {
            a
            for a in s.scalars(
                select(SourceRecord.account_id)
                .distinct()
                .where(
                    SourceRecord.source == source,
                    SourceRecord.object == obj,
                    SourceRecord.modified >= since,
                    SourceRecord.account_id.is_not(None),
                )
            )
        }


def _holding_accounts(store: Store, source: str) -> set[str]:
    with store.session() as s:
        return {
            a
            for a in s.scalars(
                select(SourceRecord.account_id)
                .distinct()
                .where(SourceRecord.source == source, SourceRecord.account_id.is_not(None))
            )
        }


def rematch(store: Store, source: str, matcher: RecipientMatcher) -> tuple[int, set[str]]:
    """Match again the kept facts that have no account (their domain may be known now)."""
    moved: dict[str, list[Row]] = {}
    matched: set[str] = set()
    with store.session() as s:
        for obj, rid, fields, modified in s.execute(
            select(
                SourceRecord.object, SourceRecord.id, SourceRecord.fields, SourceRecord.modified
            ).where(
                SourceRecord.source == source,
                SourceRecord.account_id.is_(None),
                SourceRecord.object.in_(FACT_OBJECTS[source]),
                SourceRecord.deleted.is_(False),
            )
        ):
            match = matcher.resolve(str((fields or {}).get("email") or ""))
            if match.matched:
                moved.setdefault(obj, []).append((rid, match.account_id, fields, False, modified))
                matched.add(fields["email"][:128])
    touched: set[str] = set()
    for obj, rows in moved.items():
        touched |= keep_records(store, source, obj, rows)
    if matched:
        store.record_unmatched(source, RECIPIENTS, {}, matched=matched)
    return sum(len(r) for r in moved.values()), touched


def recompute(
    store: Store,
    source: str,
    accounts: Iterable[str],
    now: datetime,
    prefix: str,
    categories: Iterable[str] = (),
) -> tuple[int, int]:
    """Recompute the signals of ``accounts`` from all their facts; (accounts, changes)."""
    ids = sorted(set(accounts))
    if not ids:
        return 0, 0
    facts: dict[str, list[dict[str, Any]]] = {a: [] for a in ids}
    for obj in FACT_OBJECTS[source]:
        for account, rows in store.source_records(source, obj, ids).items():
            facts[account].extend(rows)
    cats = list(categories)
    changed = store.record_signals(
        SignalRow(account, metric, value, now, source)
        for account, rows in facts.items()
        for metric, value in engagement(rows, now, prefix, categories=cats).items()
    )
    return len(ids), changed


def prune(store: Store, source: str, before: datetime) -> int:
    """Delete a source's kept records last modified before ``before``; how many."""
    with store.session() as s:
        result = s.execute(
            delete(SourceRecord).where(
                SourceRecord.source == source, SourceRecord.modified < before
            )
        )
        return int(result.rowcount or 0)


def _recompute_all_due(store: Store, source: str, now: datetime) -> bool:
    """Whether the window moved since every account was last recomputed (a new UTC day)."""
    last = store.cursor(source, RECOMPUTE)
    return last is None or window_start(datetime.fromisoformat(last)) != window_start(now)


def _finish(
    store: Store,
    source: str,
    keeper: _Keeper,
    report: EmailSyncReport,
    now: datetime,
    prefix: str,
    categories: Iterable[str] = (),
) -> None:
    keeper.finish()
    report.rematched, moved = rematch(store, source, keeper.matcher)
    touched = keeper.touched | moved
    recompute_all = _recompute_all_due(store, source, now)
    if recompute_all:
        touched |= _holding_accounts(store, source)
        report.pruned = prune(store, source, now - RETENTION)
    report.accounts_recomputed, report.signals_changed = recompute(
        store, source, touched, now, prefix, categories
    )
    if recompute_all:
        store.set_cursor(source, RECOMPUTE, now.isoformat())


def _rate(totals: dict[str, int], metric: str) -> float | None:
    delivered = totals.get("delivered", 0)
    return round(totals.get(metric, 0) / delivered, 4) if delivered else None


def _id_of(record: Any, key: str) -> str:
    return str(record.get(key) or "<none>") if isinstance(record, dict) else "<not an object>"


def _insert_new(store: Store, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows whose id is not kept yet (one statement per chunk); the ids inserted."""
    if not rows:
        return set()
    with store.session() as s:
        stmt = (
            _insert(s)
            .on_conflict_do_nothing(index_elements=["source", "object", "id"])
            .returning(SourceRecord.__table__.c.id)
        )
        return set(s.scalars(stmt, rows))
