"""The support signals of many accounts at once, computed by the database.

:func:`connectors.zendesk.signals.aggregate` reads one account's tickets and ratings in
Python; it stays the reference (tests/test_zendesk_sql_recompute.py holds this module to it
on SQLite and PostgreSQL). Here a chunk of accounts is two grouped statements over the kept
records (``source_records``), and a few numbers per account come back — no ticket leaves the
database:

- **tickets**, read once into a materialized CTE (reading a kept row costs more than picking
  its JSON apart, so each is read once, each field extracted once): per account, tickets
  created in the last 30 days, urgent and open, reopened and changed in the last 90 days; and
  repeated topics — each ticket's topics over the last 180 days (its kept subject topic, its
  tags starting with the prefix, lower-cased) and, per account and topic, the gap to the
  ticket before it (``LAG``): a ticket of the last 90 days repeats when one gap is at most 90
  days;
- **ratings**: good and bad ones given in the last 90 days (CSAT, good / (good + bad), is the
  one division done here).

Times are kept as UTC ISO 8601 text (``datetime.isoformat()``, ``…+00:00``), which sorts in
time order: a window is a text comparison with bounds written the same way, exact to the
microsecond. Gaps between tickets are whole seconds (Zendesk's times have no fraction), and
tickets created in the same second are taken in id order. Tags are lower-cased by the
database (SQLite's ``lower`` folds ASCII only; Zendesk tags are lower case already).

Tickets kept before their subject topic was (no ``topic`` field: it is derived from the
subject by a regular expression, which the two databases do not share) are the exception:
the accounts holding any get their repeated-topic count from the reference, in Python, from
their own tickets, streamed one account at a time. Every ticket read since carries its topic.

JSON fields are read through SQLAlchemy's JSON operators (``json_extract`` on SQLite, ``->>``
on PostgreSQL); the few spellings that differ more — tags as rows, seconds since the epoch,
whether a key is present, byte-wise text order — are chosen per dialect in :class:`_Dialect`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    TIMESTAMP,
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    true,
    union_all,
)

from connectors.zendesk.signals import MONTH, QUARTER, repeated_topics
from connectors.zendesk.tickets import OPEN_STATUSES
from healthscore.core.prefetch import mapped_ahead
from store import Store
from store.models import SourceRecord

SOURCE, TICKETS, RATINGS = "zendesk", "tickets", "satisfaction_ratings"
Values = list[tuple[str, str, float | None]]  # (account, metric, value)

_RECORDS = SourceRecord.__table__
_FIELDS = _RECORDS.c.fields
_QUARTER_SECONDS = int(QUARTER.total_seconds())
_OPEN = sorted(OPEN_STATUSES)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _kept(obj: str) -> ColumnElement[bool]:
    """The live records of ``obj`` of the chunk's accounts (``:accounts``)."""
    return and_(
        _RECORDS.c.source == SOURCE,
        _RECORDS.c.object == obj,
        _RECORDS.c.deleted.is_(False),
        _RECORDS.c.account_id.in_(bindparam("accounts", expanding=True)),
    )


class _Dialect:
    """What differs between SQLite and PostgreSQL, everything else being shared."""

    def __init__(self, name: str) -> None:
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"support signals in SQL need SQLite or PostgreSQL, not {name!r}")
        self.name = name

    def text(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """Text ordered byte by byte, as Python orders str (PostgreSQL's collation may not)."""
        return column if self.name == "sqlite" else column.collate("C")

    def field(self, key: str) -> ColumnElement[str]:
        """A JSON field of the kept record as text (NULL when missing or null)."""
        return self.text(_FIELDS[key].as_string())

    def epoch(self, stamp: ColumnElement[Any]) -> ColumnElement[int]:
        """Whole seconds since 1970 of a kept time."""
        if self.name == "sqlite":
            return cast(func.strftime("%s", stamp), Integer)
        instant = cast(stamp, TIMESTAMP(timezone=True))
        return cast(func.floor(extract("epoch", instant)), BigInteger)

    def has_topic(self) -> ColumnElement[bool]:
        """Whether the ticket was kept with its subject topic (a null one included)."""
        if self.name == "sqlite":
            return func.json_type(_FIELDS, "$.topic").is_not(None)
        return _FIELDS["topic"].is_not(None)  # ->: SQL NULL only when the key is missing

    def tags(self) -> ColumnElement[Any]:
        """The ticket's tags, as a JSON array (to be made rows by :meth:`each_tag`)."""
        if self.name == "sqlite":
            return func.json_extract(_FIELDS, "$.tags")
        tags = _FIELDS["tags"]
        return case((func.json_typeof(tags) == "array", tags))

    def as_one_row(self, rows: Select[Any]) -> Select[Any]:
        """``rows`` as one JSON array of arrays: a statement answering one row instead of a
        thousand (SQLite hands the GIL back at every row fetched, and the thread writing the
        chunk before would then hold up each one)."""
        each = rows.subquery("each")
        pack, gather = (
            (func.json_array, func.json_group_array)
            if self.name == "sqlite"
            else (func.json_build_array, func.json_agg)
        )
        return select(gather(pack(*each.c), type_=JSON))

    def each_tag(self, tags: ColumnElement[Any]) -> Any:
        """One row (``value``) per tag, to join to the ticket's row."""
        if self.name == "sqlite":
            return func.json_each(tags).table_valued("value")
        return func.json_array_elements_text(tags).table_valued("value").lateral()


class _Statements(NamedTuple):
    tickets: Select[Any]
    ratings: Select[Any]
    legacy: Select[Any]


@lru_cache(maxsize=16)
def _statements(dialect: str, tag_prefix: str) -> _Statements:
    """A chunk's statements, built once per database and tag prefix."""
    sql = _Dialect(dialect)
    return _Statements(_tickets(sql, tag_prefix.lower()), _ratings(sql), _legacy(sql))


def _tickets(sql: _Dialect, prefix: str) -> Select[Any]:
    """Per account holding live tickets: created in 30 days, urgent and open, reopened in 90
    days, repeated topics, and tickets kept without a topic."""
    # each ticket read once; a field needed only sometimes is read only then
    priority, reopens = sql.field("priority"), _FIELDS["reopens"].as_integer()
    urgent_open = and_(priority == "urgent", sql.field("status").in_(_OPEN))
    reopened = and_(reopens > 0, sql.field("updated_at") >= bindparam("quarter_ago"))
    base = (
        select(
            _RECORDS.c.id,
            _RECORDS.c.account_id,
            sql.field("created_at").label("created"),
            sql.field("topic").label("topic"),
            sql.tags().label("tags"),
            _flag(urgent_open).label("urgent_open"),
            _flag(reopened).label("reopened"),
            _flag(~sql.has_topic()).label("untopical"),
        )
        .where(_kept(TICKETS))
        .cte("base")
        .prefix_with("MATERIALIZED")
    )
    created = sql.text(base.c.created)
    counts = (
        select(
            base.c.account_id,
            func.sum(
                _flag(and_(created >= bindparam("month_ago"), created <= bindparam("now")))
            ).label("recent"),
            func.sum(base.c.urgent_open).label("urgent_open"),
            func.sum(base.c.reopened).label("reopened"),
            func.sum(base.c.untopical).label("untopical"),
        )
        .group_by(base.c.account_id)
        .cte("counts")
    )
    repeated = _repeated(sql, base, prefix)
    return sql.as_one_row(
        select(
            counts.c.account_id,
            counts.c.recent,
            counts.c.urgent_open,
            counts.c.reopened,
            func.coalesce(repeated.c.repeated, 0),
            counts.c.untopical,
        ).select_from(counts.outerjoin(repeated, repeated.c.account_id == counts.c.account_id))
    )


def _repeated(sql: _Dialect, base: Any, prefix: str) -> Any:
    """Per account: tickets of the last 90 days repeating a topic of an earlier ticket (at
    most 90 days before). Only tickets of the last 180 days can be either."""
    created = sql.text(base.c.created)
    window = and_(created >= bindparam("half_year_ago"), created <= bindparam("now"))

    def keyed(kind: str, topic: ColumnElement[str]) -> Select[Any]:
        return select(
            base.c.id,
            base.c.account_id,
            created.label("created"),
            sql.epoch(created).label("seconds"),
            literal_column(f"'{kind}'").label("kind"),
            topic.label("topic"),
        )

    topic = sql.text(base.c.topic)
    topics = [keyed("s", topic).where(window, topic.is_not(None), topic != "")]
    if prefix:  # no prefix, no tag topics
        each = sql.each_tag(base.c.tags)
        tag = sql.text(func.lower(each.c.value))
        topics.append(  # each tag topic of a ticket once: a tag given in two cases is one
            keyed("t", tag)
            .select_from(base.join(each, true()))
            .where(window, func.substr(tag, 1, len(prefix)) == prefix)
            .distinct()
        )
    keys = union_all(*topics).subquery("topics")
    before = func.lag(keys.c.seconds).over(
        partition_by=(keys.c.account_id, keys.c.kind, keys.c.topic),
        order_by=(sql.text(keys.c.created), sql.text(keys.c.id)),
    )
    gaps = select(
        keys.c.id, keys.c.account_id, keys.c.created, (keys.c.seconds - before).label("gap")
    ).subquery("gaps")
    return (
        select(gaps.c.account_id, func.count(gaps.c.id.distinct()).label("repeated"))
        .where(gaps.c.gap <= _QUARTER_SECONDS, sql.text(gaps.c.created) >= bindparam("quarter_ago"))
        .group_by(gaps.c.account_id)
        .subquery("repeated")
    )


def _ratings(sql: _Dialect) -> Select[Any]:
    """Per account: good and bad ratings given in the last 90 days."""
    score, rated = sql.field("score"), sql.field("created_at")
    return sql.as_one_row(
        select(
            _RECORDS.c.account_id,
            func.sum(_flag(score == "good")),
            func.sum(_flag(score == "bad")),
        )
        .where(_kept(RATINGS), rated >= bindparam("quarter_ago"), rated <= bindparam("now"))
        .group_by(_RECORDS.c.account_id)
    )


def _legacy(sql: _Dialect) -> Select[Any]:
    """The live tickets of the chunk's accounts, per account in id order."""
    return (
        select(_RECORDS.c.account_id, _FIELDS)
        .where(_kept(TICKETS))
        .order_by(_RECORDS.c.account_id, sql.text(_RECORDS.c.id))
    )


def _iso(moment: datetime) -> str:
    """A bound written as kept times are (UTC ``isoformat``), so text compares as time."""
    return moment.astimezone(UTC).isoformat()


def support_signals(
    conn: Connection, accounts: Sequence[str], now: datetime, tag_prefix: str = "topic_"
) -> Values:
    """(account, metric, value) of the five support signals of each of ``accounts`` as of
    ``now``, from the tickets and ratings kept for them: an account without tickets gets 0
    for the counts and no CSAT, as :func:`~connectors.zendesk.signals.aggregate` gives."""
    if not accounts:
        return []
    sql = _statements(conn.dialect.name, tag_prefix)
    ids = list(accounts)
    window = {"accounts": ids, "now": _iso(now), "quarter_ago": _iso(now - QUARTER)}
    counts: dict[str, list[int]] = {}
    legacy: list[str] = []
    for acct, *numbers, untopical in (
        conn.execute(
            sql.tickets,
            {**window, "month_ago": _iso(now - MONTH), "half_year_ago": _iso(now - 2 * QUARTER)},
        ).scalar_one()
        or ()
    ):
        counts[acct] = [int(n) for n in numbers]
        if untopical:
            legacy.append(acct)
    if legacy:  # their repeated topics finished in Python, from their own tickets
        rows = conn.execute(sql.legacy, {"accounts": legacy})
        for acct, group in groupby(rows, key=itemgetter(0)):
            counts[acct][3] = repeated_topics([f for _, f in group], now, tag_prefix)
    rated = {
        acct: (int(good), int(bad))
        for acct, good, bad in conn.execute(sql.ratings, window).scalar_one() or ()
    }
    out: Values = []
    for acct in ids:
        recent, urgent, reopened, repeated = counts.get(acct, (0, 0, 0, 0))
        good, bad = rated.get(acct, (0, 0))
        out += [
            (acct, "zendesk_tickets_30d", float(recent)),
            (acct, "zendesk_urgent_open", float(urgent)),
            (acct, "zendesk_reopened_90d", float(reopened)),
            (acct, "zendesk_repeated_topic_90d", float(repeated)),
            (acct, "zendesk_csat_90d", good / (good + bad) if good + bad else None),
        ]
    return out


def computed_signals(
    store: Store,
    accounts: Sequence[str],
    now: datetime,
    tag_prefix: str,
    *,
    chunk: int = 1000,
    ahead: int = 2,
    workers: int = 2,
) -> Iterator[Values]:
    """:func:`support_signals` of ``accounts``, ``chunk`` accounts at a time, computed up to
    ``ahead`` chunks ahead of the caller by ``workers`` threads, each on a connection of its
    own: the statements run outside the interpreter (SQLite lets go of the GIL, PostgreSQL is
    another process), so they use the cores the caller's writing of the chunk before leaves.
    Each chunk is read in a transaction of its own, so a reader never holds back SQLite's
    checkpoints while the signals are written. Memory holds a few chunks' values, whatever
    the number of records."""
    chunks = [accounts[start : start + chunk] for start in range(0, len(accounts), chunk)]
    if len(chunks) <= 1 or not _shareable(store):
        return _in_this_thread(store, chunks, now, tag_prefix)
    return _in_threads(store, chunks, now, tag_prefix, workers=workers, ahead=ahead)


def _in_this_thread(
    store: Store, chunks: list[Sequence[str]], now: datetime, tag_prefix: str
) -> Iterator[Values]:
    """One chunk, or an in-memory database (each thread's connection would hold a database
    of its own)."""
    with store.engine.connect() as conn:
        for ids in chunks:
            yield support_signals(conn, ids, now, tag_prefix)


def _in_threads(
    store: Store,
    chunks: list[Sequence[str]],
    now: datetime,
    tag_prefix: str,
    *,
    workers: int,
    ahead: int,
) -> Iterator[Values]:
    local = threading.local()
    opened: list[Connection] = []
    lock = threading.Lock()

    def compute(ids: Sequence[str]) -> Values:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = store.engine.connect()
            with lock:
                opened.append(conn)
        try:
            return support_signals(conn, ids, now, tag_prefix)
        finally:
            conn.rollback()  # read only: ends the chunk's snapshot

    try:
        yield from mapped_ahead(
            compute, chunks, workers=workers, depth=ahead, name="zendesk-recompute"
        )
    finally:
        for conn in opened:
            conn.close()


def _shareable(store: Store) -> bool:
    """Whether a second connection sees the same database (not an in-memory SQLite, where
    each thread's connection holds a database of its own)."""
    url = store.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))
