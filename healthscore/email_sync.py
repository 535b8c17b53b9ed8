"""SendGrid and Mailchimp → per-account email engagement signals (sources ``sendgrid`` and
``mailchimp``).

Every recipient-level fact is kept in the store (``source_records``) with the account its
recipient's email domain belongs to, so a re-sync reads only what changed and the touched
accounts' signals are recomputed from all their facts (``email_engagement.engagement``):

- SendGrid, object ``events``: one per signed webhook event (id ``sg_event_id``: a redelivered
  event is not kept twice); ``messages``: one per Email Activity message (``per_recipient:
  activity_api``); ``suppressions``: bounces and global unsubscribes, pulled every sync.
- HubSpot marketing email (source ``hubspot_email``), object ``events``: one per Email Events
  API event (id ``<created>:<id>``), pulled by time window from the cursor.
- Mailchimp, object ``activity``: one per campaign and member (``<campaign>:<subscriber
  hash>``), merged with what a later ``since`` read adds; ``unsubscribes``: per campaign;
  ``campaigns``: those read completely (later syncs read only activity since the cursor).

A recipient is matched by its email domain (``IdentityIndex``: free-mail never matches; a
domain of two accounts is ambiguous). Unmatched recipients are kept without an account, listed
under object ``recipients`` of ``healthscore sources --unmatched``, counted in the report, and
matched again on every sync (a domain added to the CRM later brings their history along).
Malformed records are logged with their id, counted and skipped. Cursors move only after a
complete pull; the 90-day window moves with the clock, so every account holding facts is
recomputed once a day even when nothing changed, and facts older than the window (plus a
day) are deleted then, so the store does not grow without bound.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from connectors.hubspot import HubSpotClient
from connectors.hubspot.email_events import event_fact as hubspot_event_fact
from connectors.hubspot.email_events import pull_email_events
from connectors.identity import DOMAIN, IdentityIndex, Match, domain_of
from connectors.mailchimp import (
    MailchimpClient,
    pull_email_activity,
    pull_reports,
    pull_unsubscribed,
)
from connectors.sendgrid import (
    SendGridClient,
    category_totals,
    event_fact,
    pull_activity,
    pull_suppressions,
)
from healthscore.config import HubSpotEmailSource, MailchimpSource, SendGridSource
from healthscore.email_engagement import WINDOW, engagement, fact, merge_facts, parse_time
from store import SignalRow, Store
from store.models import SourceRecord

log = logging.getLogger(__name__)

SENDGRID, MAILCHIMP, HUBSPOT_EMAIL = "sendgrid", "mailchimp", "hubspot_email"
FACT_OBJECTS = {
    SENDGRID: ("events", "messages", "suppressions"),
    MAILCHIMP: ("activity", "unsubscribes"),
    HUBSPOT_EMAIL: ("events",),
}
RECIPIENTS = "recipients"  # the unmatched-records object
RECOMPUTE = "recompute"  # cursor object: when every account holding facts was last recomputed
RECOMPUTE_EVERY = timedelta(days=1)
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
ID_MAX = 64  # source_records.id; vendor ids can be longer (SendGrid's message ids often are)


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
    last = store.cursor(source, RECOMPUTE)
    return last is None or now - datetime.fromisoformat(last) >= RECOMPUTE_EVERY


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


# -- SendGrid ----------------------------------------------------------------------------------
def activity_fact(message: Any) -> tuple[str, dict[str, Any], datetime]:
    """One Email Activity message → (msg_id, fact, time); ValueError when malformed."""
    if not isinstance(message, dict) or not message.get("msg_id"):
        raise ValueError("no msg_id")
    email = message.get("to_email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"to_email {email!r} is not an address")
    at = parse_time(message.get("last_event_time"))
    if at is None:
        raise ValueError(f"last_event_time {message.get('last_event_time')!r} is not a time")
    opens, clicks = message.get("opens_count", 0), message.get("clicks_count", 0)
    if not isinstance(opens, int) or not isinstance(clicks, int):
        raise ValueError("opens_count / clicks_count are not numbers")
    status = message.get("status")
    msg_id = str(message["msg_id"])
    return (
        msg_id,
        fact(
            msg_id,
            email,
            at,
            delivered=status == "delivered",
            dropped=status == "not_delivered",
            opened=opens > 0,
            clicked=clicks > 0,
        ),
        at,
    )


def suppression_fact(kind: str, entry: Any) -> tuple[str, dict[str, Any], datetime]:
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    email = entry.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"email {email!r} is not an address")
    created = entry.get("created")
    at = parse_time(created) if isinstance(created, int) else None
    if at is None:
        raise ValueError(f"created {created!r} is not epoch seconds")
    label = "bounce" if kind == "bounces" else "unsubscribe"
    return (
        record_key(f"{label}:{email.lower()}:{created}"),
        fact(None, email, at, suppression=label),
        at,
    )


def sync_sendgrid(
    client: SendGridClient,
    store: Store,
    source: SendGridSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Pull what changed since ``since`` (the last 90 days when None) up to ``started``."""
    report = EmailSyncReport(SENDGRID)
    keeper = _Keeper(store, SENDGRID, RecipientMatcher(store), report)
    window_start = started - WINDOW
    start = max(window_start, since - source.overlap) if since else window_start
    requests_before, limited_before = client.requests, client.rate_limited
    if source.per_recipient == "activity_api":
        for page in pull_activity(client, start, started):
            keeper.keep_page(
                "messages",
                page,
                activity_fact,
                lambda m: _id_of(m, "msg_id"),
                merge=True,
                progress=progress,
            )
    for kind in ("bounces", "unsubscribes"):
        for page in pull_suppressions(client, kind, start, started, page_size=source.page_size):
            keeper.keep_page(
                "suppressions",
                page,
                partial(suppression_fact, kind),
                lambda e, k=kind: f"{k}:{_id_of(e, 'email')}",
                progress=progress,
            )
    keeper.touched |= arrived_since(store, SENDGRID, "events", start)  # webhook events
    totals = category_totals(client, window_start.date(), started.date(), source.categories)
    report.baseline = {
        "delivered": float(totals.get("delivered", 0)),
        "open_rate_90d": _rate(totals, "unique_opens"),
        "click_rate_90d": _rate(totals, "unique_clicks"),
    }
    report.requests = client.requests - requests_before
    report.rate_limited = client.rate_limited - limited_before
    _finish(store, SENDGRID, keeper, report, now(), source.metric_prefix, source.categories)
    log.info(
        "SendGrid sync: %d records (%d skipped), %d unmatched recipients, %d accounts "
        "recomputed in %d requests; org-wide open rate %s",
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
        report.baseline.get("open_rate_90d"),
    )
    return report


def _id_of(record: Any, key: str) -> str:
    return str(record.get(key) or "<none>") if isinstance(record, dict) else "<not an object>"


@dataclass
class WebhookResult:
    received: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    unmatched: int = 0
    accounts_recomputed: int = 0
    touched: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "new": self.new,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "skipped_ids": self.skipped_ids[:50],
            "unmatched": self.unmatched,
            "accounts_recomputed": self.accounts_recomputed,
        }


def apply_sendgrid_events(
    store: Store,
    events: list[Any],
    matcher: RecipientMatcher,
    *,
    now: datetime,
    prefix: str,
    categories: Iterable[str] = (),
    recompute_now: bool = True,
) -> WebhookResult:
    """Keep a webhook batch's events (each ``sg_event_id`` once, in one transaction) and
    recompute the accounts that got new ones (or, with ``recompute_now=False``, leave that to
    the caller: ``result.touched``). A redelivered batch adds nothing.

    A kept event's ``modified`` is when it *arrived*, so the next sync finds the accounts that
    got events since its cursor, however late SendGrid delivered them."""
    result = WebhookResult(received=len(events))
    rows: dict[str, dict[str, Any]] = {}
    recipients: dict[str, Match] = {}
    for event in events:
        try:
            parsed = event_fact(event)
        except ValueError as exc:
            rid = _id_of(event, "sg_event_id")
            log.warning("sendgrid webhook event %s skipped: %s", rid, exc)
            result.skipped += 1
            result.skipped_ids.append(rid)
            continue
        if parsed.event_id in rows:
            result.duplicates += 1
            continue
        email = parsed.fact["email"]
        match = recipients.setdefault(email, matcher.resolve(email))
        rows[parsed.event_id] = {
            "source": SENDGRID,
            "object": "events",
            "id": record_key(parsed.event_id),
            "account_id": match.account_id,
            "fields": parsed.fact,
            "deleted": False,
            "modified": now,
        }
    by_key = {row["id"]: row for row in rows.values()}
    new = [by_key[k] for k in _insert_new(store, list(by_key.values()))]
    result.new = len(new)
    result.duplicates += len(rows) - len(new)
    fresh = {row["fields"]["email"] for row in new}
    unmatched = {
        e[:128]: (m.reason, m.detail) for e, m in recipients.items() if e in fresh and not m.matched
    }
    result.unmatched = len(unmatched)
    if fresh:
        store.record_unmatched(
            SENDGRID,
            RECIPIENTS,
            unmatched,
            matched=[e[:128] for e in fresh if recipients[e].matched],
        )
    result.touched = {row["account_id"] for row in new if row["account_id"]}
    if recompute_now:
        result.accounts_recomputed, _ = recompute(
            store, SENDGRID, result.touched, now, prefix, categories
        )
    return result


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


# -- Mailchimp ---------------------------------------------------------------------------------
def activity_facts(member: Any, send_time: datetime) -> tuple[str, dict[str, Any]]:
    """One member's email activity in a campaign → (record id, fact); ValueError if bad."""
    if not isinstance(member, dict) or not member.get("email_id"):
        raise ValueError("no email_id")
    email = member.get("email_address")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"email_address {email!r} is not an address")
    actions = member.get("activity") or []
    if not isinstance(actions, list):
        raise ValueError("activity is not a list")
    flags = {"delivered": True}
    for action in actions:
        if not isinstance(action, dict) or parse_time(action.get("timestamp")) is None:
            raise ValueError(f"activity {action!r} has no valid timestamp")
        kind = action.get("action")
        if kind == "open":
            flags["opened"] = True
        elif kind == "click":
            flags["clicked"] = True
        elif kind == "bounce":
            flags["bounced"] = True
    rid = f"{member.get('campaign_id')}:{member['email_id']}"
    return rid, fact(rid, email, send_time, **flags)


def _campaign_id_of(campaign_id: str, key: str, record: Any) -> str:
    return f"{campaign_id}:{_id_of(record, key)}"


def _member_fact(
    campaign_id: str, sent: datetime, member: Any
) -> tuple[str, dict[str, Any], datetime]:
    """A campaign member's email activity, dated when the campaign was sent."""
    rid, facts = activity_facts(
        {"campaign_id": campaign_id, **member} if isinstance(member, dict) else member, sent
    )
    return rid, facts, sent


def _unsubscribe_fact(campaign_id: str, unsub: Any) -> tuple[str, dict[str, Any], datetime]:
    at = parse_time(unsub.get("timestamp")) if isinstance(unsub, dict) else None
    email = unsub.get("email_address") if isinstance(unsub, dict) else None
    if at is None or not isinstance(email, str) or "@" not in email:
        raise ValueError("unsubscribe without email_address or timestamp")
    rid = f"{campaign_id}:{unsub.get('email_id') or email.lower()}"
    return rid, fact(None, email, at, suppression="unsubscribe"), at


def sync_mailchimp(
    client: MailchimpClient,
    store: Store,
    source: MailchimpSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Campaigns sent in the last 90 days: new ones read whole, known ones since ``since``."""
    report = EmailSyncReport(MAILCHIMP)
    keeper = _Keeper(store, MAILCHIMP, RecipientMatcher(store), report)
    requests_before, limited_before = client.requests, client.rate_limited
    window_start = started - WINDOW
    campaigns: list[tuple[str, datetime, dict[str, Any]]] = []
    for page in pull_reports(client, window_start.isoformat(), count=source.page_size):
        for rep in page:
            sent = parse_time(rep.get("send_time")) if isinstance(rep, dict) else None
            if sent is None or not rep.get("id"):
                report.skip(f"campaign:{_id_of(rep, 'id')}", "no id or send_time")
                continue
            if sent <= started:
                campaigns.append((str(rep["id"]), sent, rep))
    known = existing(store, MAILCHIMP, "campaigns", [c for c, _, _ in campaigns])
    after = (since - source.overlap).isoformat() if since else None
    for campaign_id, sent, rep in campaigns:
        report.campaigns += 1
        read_since = after if campaign_id in known else None
        for page in pull_email_activity(client, campaign_id, read_since, count=source.page_size):
            keeper.keep_page(
                "activity",
                page,
                partial(_member_fact, campaign_id, sent),
                partial(_campaign_id_of, campaign_id, "email_id"),
                merge=True,
                progress=progress,
            )
        for page in pull_unsubscribed(client, campaign_id, count=source.page_size):
            keeper.keep_page(
                "unsubscribes",
                page,
                partial(_unsubscribe_fact, campaign_id),
                partial(_campaign_id_of, campaign_id, "email_id"),
            )
        # read completely: later syncs read only its activity since the cursor
        keep_records(
            store,
            MAILCHIMP,
            "campaigns",
            [
                (
                    campaign_id,
                    None,
                    {
                        "title": rep.get("campaign_title"),
                        "send_time": sent.isoformat(),
                        "emails_sent": rep.get("emails_sent"),
                    },
                    False,
                    sent,
                )
            ],
        )
    report.requests = client.requests - requests_before
    report.rate_limited = client.rate_limited - limited_before
    _finish(store, MAILCHIMP, keeper, report, now(), source.metric_prefix)
    log.info(
        "Mailchimp sync: %d campaigns, %d member records (%d skipped), %d unmatched "
        "recipients, %d accounts recomputed in %d requests (%d answered 429)",
        report.campaigns,
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
        report.rate_limited,
    )
    return report


# -- HubSpot marketing email -------------------------------------------------------------------
def sync_hubspot_email(
    client: HubSpotClient,
    store: Store,
    source: HubSpotEmailSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Marketing email events that occurred since ``since`` (the last 90 days when None)."""
    report = EmailSyncReport(HUBSPOT_EMAIL)
    keeper = _Keeper(store, HUBSPOT_EMAIL, RecipientMatcher(store), report)
    requests_before = client.requests
    window_start = started - WINDOW
    start = max(window_start, since - source.overlap) if since else window_start
    for page in pull_email_events(client, start, started, exclude_filtered=source.exclude_filtered):
        keeper.keep_page(
            "events", page, hubspot_event_fact, lambda e: _id_of(e, "id"), progress=progress
        )
    report.requests = client.requests - requests_before
    _finish(store, HUBSPOT_EMAIL, keeper, report, now(), source.metric_prefix)
    log.info(
        "HubSpot marketing email: %d events (%d skipped), %d unmatched recipients, "
        "%d accounts recomputed in %d requests",
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
    )
    return report
