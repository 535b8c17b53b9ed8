"""Signals: each change of a value (``signal_history``) and the current values
(``signal_latest``) the scorer reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .base import StoreBase
from .engine import insert_many, upsert
from .models import Account, SignalHistory, SignalLatest, UsageDaily


class SignalRow(NamedTuple):
    """A normalized signal: what every connector emits (a named tuple: a sync makes millions)."""

    account_id: str
    metric: str
    value: float | None
    observed_at: datetime
    source: str


class SignalsMixin(StoreBase):
    """Signals stored only when a value changes, read as current values or as history."""

    def record_signals(self, signals: Iterable[SignalRow]) -> int:
        """Store the signals whose value differs from the current one; return how many changed.

        Re-reading an unchanged record therefore adds nothing to the history.
        """
        incoming: dict[tuple[str, str, str], SignalRow] = {}
        for sig in signals:
            key = (sig.account_id, sig.metric, sig.source)
            held = incoming.get(key)
            if held is None or sig.observed_at >= held.observed_at:
                incoming[key] = sig
        if not incoming:
            return 0
        with self.session() as s:
            current = _current_signals(s, {k[0] for k in incoming}, {k[2] for k in incoming})
            changed = [
                sig
                for key, sig in incoming.items()
                if _changes(current.get(key), sig.value, sig.observed_at)
            ]
            _write_signals(s, changed)
        return len(changed)

    def record_signal_values(
        self, source: str, observed_at: datetime, values: Iterable[tuple[str, str, float | None]]
    ) -> int:
        """:meth:`record_signals` for (account, metric, value) triples of one source observed
        at one moment — a recompute's — without an object per signal."""
        incoming = {(acct, metric): value for acct, metric, value in values}
        if not incoming:
            return 0
        with self.session() as s:
            current = _current_signals(s, {acct for acct, _ in incoming}, {source})
            changed = [
                (acct, metric, value, observed_at, source)
                for (acct, metric), value in incoming.items()
                if _changes(current.get((acct, metric, source)), value, observed_at)
            ]
            _write_signals(s, changed)
        return len(changed)

    def latest_signals(self) -> list[tuple[str, str, float | None, datetime]]:
        """(account_id, metric, value, observed_at) for every current value of live accounts."""
        stmt = (
            select(
                SignalLatest.account_id,
                SignalLatest.metric,
                SignalLatest.value,
                SignalLatest.observed_at,
            )
            .join(Account, Account.id == SignalLatest.account_id)
            .where(Account.deleted.is_(False))
        )
        with self.session() as s:
            return [tuple(r) for r in s.execute(stmt)]  # type: ignore[misc]

    def history_rows(
        self,
        metrics: Iterable[str],
        until: datetime | None = None,
        accounts: tuple[str, str] | None = None,
    ) -> list[tuple[str, str, float | None, datetime]]:
        """(account_id, metric, value, observed_at) history of some metrics, oldest first;
        ``accounts``: only the ids from the first to the second (a chunk of accounts)."""
        stmt = select(
            SignalHistory.account_id,
            SignalHistory.metric,
            SignalHistory.value,
            SignalHistory.observed_at,
        ).where(SignalHistory.metric.in_(list(metrics)))
        if until is not None:
            stmt = stmt.where(SignalHistory.observed_at <= until)
        if accounts is not None:
            stmt = stmt.where(SignalHistory.account_id.between(*accounts))
        with self.session() as s:
            return [
                tuple(r)
                for r in s.execute(  # type: ignore[misc]
                    stmt.order_by(SignalHistory.observed_at, SignalHistory.id)
                )
            ]

    def signal_history(self, account_id: str) -> list[SignalHistory]:
        stmt = (
            select(SignalHistory)
            .where(SignalHistory.account_id == account_id)
            .order_by(SignalHistory.observed_at, SignalHistory.id)
        )
        with self.session() as s:
            return list(s.scalars(stmt))

    def signal_counts(self) -> dict[str, int]:
        """Current values held per source (live accounts only)."""
        stmt = (
            select(SignalLatest.source, func.count())
            .join(Account, Account.id == SignalLatest.account_id)
            .where(Account.deleted.is_(False), SignalLatest.value.is_not(None))
            .group_by(SignalLatest.source)
        )
        usage = (
            select(UsageDaily.source, func.count())
            .where(UsageDaily.value.is_not(None))
            .group_by(UsageDaily.source)
        )
        with self.session() as s:
            counts = {src: int(n) for src, n in s.execute(stmt)}
            for src, n in s.execute(usage):  # usage values per day (usage_file, warehouse)
                counts[src] = counts.get(src, 0) + int(n)
            return counts

    def accounts_without(self, metric: str, source: str) -> list[str]:
        """Live accounts holding no value of ``metric`` from ``source`` yet."""
        held = select(SignalLatest.account_id).where(
            SignalLatest.metric == metric, SignalLatest.source == source
        )
        stmt = select(Account.id).where(Account.deleted.is_(False), Account.id.not_in(held))
        with self.session() as s:
            return list(s.scalars(stmt.order_by(Account.id)))


def _current_signals(
    s: Session, account_ids: Iterable[str], sources: Iterable[str]
) -> dict[tuple[str, str, str], tuple[float | None, datetime]]:
    """(account, metric, source) → (value, observed_at) held for these accounts and sources."""
    ids, wanted = sorted(account_ids), sorted(sources)
    current: dict[tuple[str, str, str], tuple[float | None, datetime]] = {}
    conn = s.connection()  # plain rows: no ORM loading for a read this size
    for start in range(0, len(ids), 5000):
        for acct, metric, source, value, observed in conn.execute(
            select(
                SignalLatest.account_id,
                SignalLatest.metric,
                SignalLatest.source,
                SignalLatest.value,
                SignalLatest.observed_at,
            ).where(
                SignalLatest.account_id.in_(ids[start : start + 5000]),
                SignalLatest.source.in_(wanted),
            )
        ):
            current[(acct, metric, source)] = (value, observed)
    return current


def _changes(
    held: tuple[float | None, datetime] | None, value: float | None, observed_at: datetime
) -> bool:
    """Whether a value observed at ``observed_at`` changes what is held (value, observed_at):
    nothing held yet, or another value observed no earlier."""
    return held is None or (held[0] != value and observed_at >= held[1])


def _write_signals(s: Session, rows: list[tuple[Any, ...]]) -> None:
    """Append ``rows`` (SignalRow's fields, in its order) to the history and make them the
    latest values."""
    if rows:
        insert_many(s, SignalHistory.__table__, rows, columns=SignalRow._fields)
        upsert(
            s,
            SignalLatest.__table__,
            rows,
            ["account_id", "metric", "source"],
            ["value", "observed_at"],
            columns=SignalRow._fields,
        )
