"""The ``Store`` facade: every read and write the pipeline makes, one method each."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .engine import insert_many, make_engine, migrate, upsert
from .models import (
    Account,
    AccountKey,
    ActionLog,
    BackfillRun,
    CrmFieldState,
    PendingWrite,
    RuleStateRow,
    Score,
    ScoreRun,
    SignalHistory,
    SignalLatest,
    SourceRecord,
    SyncCursor,
    UnmatchedRecord,
    UsageDaily,
    UsageLoad,
    utcnow,
)

if TYPE_CHECKING:
    from .usage import UsageWriter


class SignalRow(NamedTuple):
    """A normalized signal: what every connector emits (a named tuple: a sync makes millions)."""

    account_id: str
    metric: str
    value: float | None
    observed_at: datetime
    source: str


# where follow_parent_records keeps one run's moves (per connection; gone at its end)
_FOLLOW_MOVES = Table(
    "follow_moves",
    MetaData(),
    Column("id", String(64)),
    Column("old", String(64)),
    Column("new", String(64)),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    crm: str
    name: str
    owner_email: str | None = None
    owner_name: str | None = None
    attributes: Mapping[str, Any] | None = None
    deleted: bool = False


class Store:
    """SQLite by default, PostgreSQL when the URL says so; the schema is created on open."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._local_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._local_lock is None:
            with self._sessions.begin() as session:
                yield session
            return
        # SQLite takes one writer at a time and makes the others retry with growing sleeps
        # (tens of ms each): this process's threads (a sync's sources at once) queue here
        with self._local_lock, self._sessions.begin() as session:
            yield session

    # -- accounts ---------------------------------------------------------------------------
    def upsert_accounts(self, rows: Iterable[AccountRow]) -> int:
        now = utcnow()
        values = [
            {
                "id": r.id,
                "crm": r.crm,
                "name": r.name,
                "owner_email": r.owner_email,
                "owner_name": r.owner_name,
                "attributes": dict(r.attributes or {}),
                "deleted": r.deleted,
                "updated_at": now,
            }
            for r in rows
        ]
        with self.session() as s:
            upsert(
                s,
                Account.__table__,
                values,
                ["id"],
                ["crm", "name", "owner_email", "owner_name", "attributes", "deleted", "updated_at"],
            )
        return len(values)

    def mark_accounts_deleted(self, ids: Iterable[str]) -> None:
        gone = list(ids)
        with self.session() as s:
            for start in range(0, len(gone), 5000):
                s.execute(
                    update(Account)
                    .where(Account.id.in_(gone[start : start + 5000]))
                    .values(deleted=True, updated_at=utcnow())
                )

    def accounts(self, include_deleted: bool = False) -> list[Account]:
        stmt = select(Account).order_by(Account.id)
        if not include_deleted:
            stmt = stmt.where(Account.deleted.is_(False))
        with self.session() as s:
            return list(s.scalars(stmt))

    def account_ids(self) -> list[str]:
        """Ids of the live accounts (no ORM objects: cheap for 100k+ accounts)."""
        with self.session() as s:
            return list(
                s.scalars(select(Account.id).where(Account.deleted.is_(False)).order_by(Account.id))
            )

    def account_count(self) -> int:
        """How many live accounts the store holds."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(Account).where(Account.deleted.is_(False))
                )
                or 0
            )

    def account(self, account_id: str) -> Account | None:
        with self.session() as s:
            return s.get(Account, account_id)

    # -- signals ----------------------------------------------------------------------------
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
        self, metrics: Iterable[str], until: datetime | None = None
    ) -> list[tuple[str, str, float | None, datetime]]:
        """(account_id, metric, value, observed_at) history of some metrics, oldest first."""
        stmt = select(
            SignalHistory.account_id,
            SignalHistory.metric,
            SignalHistory.value,
            SignalHistory.observed_at,
        ).where(SignalHistory.metric.in_(list(metrics)))
        if until is not None:
            stmt = stmt.where(SignalHistory.observed_at <= until)
        with self.session() as s:
            return [
                tuple(r)
                for r in s.execute(  # type: ignore[misc]
                    stmt.order_by(SignalHistory.observed_at, SignalHistory.id)
                )
            ]

    def usage_series(
        self, metrics: Iterable[str], until: date | None = None, since: date | None = None
    ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
        """(account_id, metric, days, values) of the ``usage_daily`` rows of some metrics from
        ``since`` to ``until`` — one item per account and metric, days as ``datetime64[D]``,
        values float64.

        One query: each series comes back as two comma-joined lists (a row per account and
        metric instead of one per day); the whole history is scanned in primary-key order.
        """
        wanted = list(metrics)
        if not wanted:
            return
        last = (until or date(9999, 12, 31)).isoformat()
        first = (since or date(1, 1, 1)).isoformat()
        # days travel as whole days since 1970-01-01: numbers parse far faster than dates
        if self.engine.dialect.name == "sqlite":
            # '+' keeps SQLite off the (metric, day) index for a whole-history read: a
            # primary-key scan needs no sort; a short span reads through that index
            plus = "" if since is not None else "+"
            sql = (
                "SELECT account_id, metric, "
                "group_concat(CAST(julianday(day) - 2440587.5 AS INTEGER)), "
                "group_concat(value) "
                f"FROM usage_daily WHERE {plus}metric IN :metrics AND value IS NOT NULL "
                f"AND {plus}day <= :last AND day >= :first GROUP BY account_id, metric"
            )
        else:
            sql = (
                "SELECT account_id, metric, "
                "string_agg((day - DATE '1970-01-01')::text, ','), "
                "string_agg(value::text, ',') FROM usage_daily WHERE metric IN :metrics "
                "AND value IS NOT NULL AND day <= CAST(:last AS date) "
                "AND day >= CAST(:first AS date) GROUP BY account_id, metric"
            )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                stmt, {"metrics": wanted, "last": last, "first": first}
            )
            for account_id, metric, days, values in result:
                yield (
                    account_id,
                    metric,
                    np.fromstring(days, dtype=np.int64, sep=",").astype("datetime64[D]"),
                    np.fromstring(values, dtype=np.float64, sep=","),
                )

    def usage_summary(
        self, metrics: Iterable[str], until: date | None = None
    ) -> Iterator[tuple[str, str, date, date | None, date, float]]:
        """(account_id, metric, first day, last day with a value > 0, last day, its value) of
        each account and metric up to ``until``: what a windowed read of recent days alone
        cannot know (``healthscore.pipeline.point_in_time.load_usage``)."""
        wanted = list(metrics)
        if not wanted:
            return
        last = (until or date(9999, 12, 31)).isoformat()
        cast = "CAST(:last AS date)" if self.engine.dialect.name != "sqlite" else ":last"
        sql = (
            "SELECT g.account_id, g.metric, g.first_day, g.active_day, g.last_day, u.value "
            "FROM (SELECT account_id, metric, MIN(day) AS first_day, "
            "MAX(CASE WHEN value > 0 THEN day END) AS active_day, MAX(day) AS last_day "
            "FROM usage_daily WHERE metric IN :metrics AND value IS NOT NULL "
            f"AND day <= {cast} GROUP BY account_id, metric) g "
            "JOIN usage_daily u ON u.account_id = g.account_id AND u.metric = g.metric "
            "AND u.day = g.last_day"
        )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))

        def day(value: Any) -> date | None:
            return None if value is None else date.fromisoformat(str(value)[:10])

        with self.engine.connect() as conn:
            for account_id, metric, first, active, newest, value in conn.execute(
                stmt, {"metrics": wanted, "last": last}
            ):
                yield account_id, metric, day(first), day(active), day(newest), value

    def signal_history(self, account_id: str) -> list[SignalHistory]:
        stmt = (
            select(SignalHistory)
            .where(SignalHistory.account_id == account_id)
            .order_by(SignalHistory.observed_at, SignalHistory.id)
        )
        with self.session() as s:
            return list(s.scalars(stmt))

    # -- cursors ----------------------------------------------------------------------------
    def cursor(self, source: str, obj: str) -> str | None:
        with self.session() as s:
            row = s.get(SyncCursor, (source, obj))
            return row.value if row else None

    def cursors(self) -> list[SyncCursor]:
        with self.session() as s:
            return list(
                s.scalars(select(SyncCursor).order_by(SyncCursor.source, SyncCursor.object))
            )

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

    def set_cursor(self, source: str, obj: str, value: str) -> None:
        with self.session() as s:
            upsert(
                s,
                SyncCursor.__table__,
                [{"source": source, "object": obj, "value": value, "updated_at": utcnow()}],
                ["source", "object"],
                ["value", "updated_at"],
            )

    # -- product usage (usage_daily) ----------------------------------------------------------
    @contextmanager
    def usage_writer(self, source: str) -> Iterator[UsageWriter]:
        """Chunked upserts into usage_daily (COPY + merge on PostgreSQL); see store/usage.py."""
        from .usage import usage_writer  # pyarrow is loaded only by usage loads

        with usage_writer(self.engine, source) as writer:
            yield writer

    def usage_load(self, source: str, digest: str) -> UsageLoad | None:
        """The completed load of this content, if there was one."""
        with self.session() as s:
            return s.get(UsageLoad, (source, digest))

    def record_usage_load(self, source: str, digest: str, **fields: Any) -> None:
        with self.session() as s:
            upsert(
                s,
                UsageLoad.__table__,
                [{"source": source, "digest": digest, "loaded_at": utcnow(), **fields}],
                ["source", "digest"],
                [*fields, "loaded_at"],
            )

    def usage_loads(self, source: str | None = None) -> list[UsageLoad]:
        stmt = select(UsageLoad).order_by(UsageLoad.loaded_at.desc())
        if source is not None:
            stmt = stmt.where(UsageLoad.source == source)
        with self.session() as s:
            return list(s.scalars(stmt))

    # -- scores -----------------------------------------------------------------------------
    def start_run(self, scorecard_version: str, started_at: datetime | None = None) -> int:
        with self.session() as s:
            run = ScoreRun(scorecard_version=scorecard_version, started_at=started_at or utcnow())
            s.add(run)
            s.flush()
            return run.id

    def rule_states(self) -> dict[tuple[str, str], RuleStateRow]:
        with self.session() as s:
            return {(r.rule, r.account_id): r for r in s.scalars(select(RuleStateRow))}

    def save_scores(
        self,
        run_id: int,
        rows: list[dict[str, Any]],
        intents: Iterable[dict[str, Any]] = (),
        rule_states: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Save one run's scores, the action intents they caused, the rules' states, and close
        the run — in one transaction, so a retried run can neither lose nor double an intent."""
        now = utcnow()
        with self.session() as s:
            upsert(
                s,
                RuleStateRow.__table__,
                list(rule_states),
                ["rule", "account_id"],
                ["true_since", "active", "episode", "last_fired"],
            )
            if rows:
                s.execute(Score.__table__.insert(), [{**r, "run_id": run_id} for r in rows])
            upsert(
                s,
                ActionLog.__table__,
                [
                    {**i, "status": "pending", "attempts": 0, "created_at": now, "updated_at": now}
                    for i in intents
                ],
                ["key"],
            )
            s.execute(
                update(ScoreRun)
                .where(ScoreRun.id == run_id)
                .values(finished_at=utcnow(), accounts_scored=len(rows))
            )

    def scores_as_of(self, at: datetime, exclude_run: int | None = None) -> dict[str, Score]:
        """Each account's most recent score at or before ``at`` (optionally ignoring one run).

        Most recent by ``scored_at`` (then id): a backfilled past snapshot, saved after newer
        live runs, is not mistaken for the latest score.
        """
        cond = [Score.scored_at <= at]
        if exclude_run is not None:
            cond.append(Score.run_id != exclude_run)
        when = (
            select(Score.account_id, func.max(Score.scored_at).label("at"))
            .where(*cond)
            .group_by(Score.account_id)
            .subquery()
        )
        newest = (
            select(func.max(Score.id).label("sid"))
            .join(when, and_(Score.account_id == when.c.account_id, Score.scored_at == when.c.at))
            .where(*cond)
            .group_by(Score.account_id)
            .subquery()
        )
        stmt = select(Score).join(newest, and_(Score.id == newest.c.sid))
        with self.session() as s:
            return {row.account_id: row for row in s.scalars(stmt)}

    # -- backfilled snapshots -------------------------------------------------------------
    def backfilled(self) -> dict[datetime, tuple[int, str]]:
        """Backfilled moments → (run id, scorecard version)."""
        with self.session() as s:
            return {
                r.as_of: (r.run_id, r.scorecard_version) for r in s.scalars(select(BackfillRun))
            }

    def save_backfill(
        self, as_of: datetime, scorecard_version: str, rows: list[dict[str, Any]]
    ) -> int:
        """Replace the backfilled snapshot at ``as_of`` (if any) by these scores, in one
        transaction; returns the new run id."""
        now = utcnow()
        with self.session() as s:
            old = s.get(BackfillRun, as_of)
            if old is not None:
                run_id = old.run_id
                s.delete(old)
                s.flush()
                s.execute(delete(Score).where(Score.run_id == run_id))
                s.execute(delete(ScoreRun).where(ScoreRun.id == run_id))
            run = ScoreRun(
                scorecard_version=scorecard_version,
                started_at=as_of,
                finished_at=now,
                accounts_scored=len(rows),
            )
            s.add(run)
            s.flush()
            s.add(
                BackfillRun(
                    as_of=as_of, run_id=run.id, scorecard_version=scorecard_version, created_at=now
                )
            )
            if rows:
                s.execute(Score.__table__.insert(), [{**r, "run_id": run.id} for r in rows])
            return run.id

    def score_history(self, account_id: str) -> list[Score]:
        stmt = select(Score).where(Score.account_id == account_id).order_by(Score.scored_at)
        with self.session() as s:
            return list(s.scalars(stmt))

    def runs(self) -> list[ScoreRun]:
        with self.session() as s:
            return list(s.scalars(select(ScoreRun).order_by(ScoreRun.id)))

    # -- action log -------------------------------------------------------------------------
    def claim_action(
        self,
        key: str,
        *,
        rule: str,
        kind: str,
        account_id: str,
        target: str | None,
        payload: dict[str, Any],
        status: str = "pending",
        error: str | None = None,
    ) -> bool:
        """Record an intent under its idempotency key; False if the key was already there."""
        try:
            with self.session() as s:
                s.add(
                    ActionLog(
                        key=key,
                        rule=rule,
                        kind=kind,
                        account_id=account_id,
                        target=target,
                        payload=payload,
                        status=status,
                        error=error,
                    )
                )
        except IntegrityError:
            return False
        return True

    def action_keys(self, kind: str) -> set[str]:
        """Every idempotency key of one kind of action (any status)."""
        with self.session() as s:
            return set(s.scalars(select(ActionLog.key).where(ActionLog.kind == kind)))

    def target_counts(
        self,
        kind: str,
        since: datetime,
        statuses: tuple[str, ...] = ("pending", "sending", "sent", "unknown"),
    ) -> dict[str, int]:
        """Actions of one kind per target created since ``since`` (a frequency cap)."""
        stmt = (
            select(func.lower(ActionLog.target), func.count())
            .where(
                ActionLog.kind == kind,
                ActionLog.created_at >= since,
                ActionLog.status.in_(statuses),
                ActionLog.target.is_not(None),
            )
            .group_by(func.lower(ActionLog.target))
        )
        with self.session() as s:
            return {str(t): int(n) for t, n in s.execute(stmt)}

    def bundle_actions(
        self,
        key: str,
        *,
        rule: str,
        kind: str,
        target: str | None,
        payload: dict[str, Any],
        item_keys: list[str],
    ) -> bool:
        """Record one action made of several (a digest) and mark those ``bundled`` into it —
        in one transaction; False (and nothing changed) if ``key`` already exists."""
        try:
            with self.session() as s:
                s.add(
                    ActionLog(
                        key=key,
                        rule=rule,
                        kind=kind,
                        account_id="*",
                        target=target,
                        payload=payload,
                    )
                )
                s.flush()
                for start in range(0, len(item_keys), 5000):
                    s.execute(
                        update(ActionLog)
                        .where(
                            ActionLog.key.in_(item_keys[start : start + 5000]),
                            ActionLog.status == "pending",
                        )
                        .values(status="bundled", response_id=key, updated_at=utcnow())
                    )
        except IntegrityError:
            return False
        return True

    def actions(self, status: str | None = None, kind: str | None = None) -> list[ActionLog]:
        stmt = select(ActionLog).order_by(ActionLog.created_at, ActionLog.key)
        if status:
            stmt = stmt.where(ActionLog.status == status)
        if kind:
            stmt = stmt.where(ActionLog.kind == kind)
        with self.session() as s:
            return list(s.scalars(stmt))

    def begin_delivery(self, key: str) -> bool:
        """Move a pending intent to ``sending``; False if another worker got there first."""
        with self.session() as s:
            res = s.execute(
                update(ActionLog)
                .where(ActionLog.key == key, ActionLog.status == "pending")
                .values(status="sending", attempts=ActionLog.attempts + 1, updated_at=utcnow())
            )
            return res.rowcount == 1

    def finish_delivery(
        self, key: str, status: str, *, response_id: str | None = None, error: str | None = None
    ) -> None:
        with self.session() as s:
            s.execute(
                update(ActionLog)
                .where(ActionLog.key == key)
                .values(status=status, response_id=response_id, error=error, updated_at=utcnow())
            )

    # -- CRM write-back ---------------------------------------------------------------------
    def crm_state(self, crm: str) -> dict[str, dict[str, Any]]:
        with self.session() as s:
            return {
                r.account_id: r.fields
                for r in s.scalars(select(CrmFieldState).where(CrmFieldState.crm == crm))
            }

    # -- identity: keys that tie outside records to accounts, and what matched nothing ------
    def set_account_keys(self, kind: str, keys: Mapping[str, Iterable[str]]) -> None:
        """Replace the ``kind`` keys of each account in ``keys`` (account id → values)."""
        ids = list(keys)
        now = utcnow()
        rows = [
            {"kind": kind, "value": v, "account_id": a, "updated_at": now}
            for a, values in keys.items()
            for v in dict.fromkeys(values)
            if v
        ]
        with self.session() as s:
            for start in range(0, len(ids), 5000):
                s.execute(
                    delete(AccountKey).where(
                        AccountKey.kind == kind,
                        AccountKey.account_id.in_(ids[start : start + 5000]),
                    )
                )
            upsert(s, AccountKey.__table__, rows, ["kind", "value", "account_id"])

    def drop_account_keys(self, kind: str, values: Iterable[str]) -> None:
        """Forget keys that no longer exist (e.g. a HubSpot company merged into another)."""
        gone = list(values)
        with self.session() as s:
            for start in range(0, len(gone), 5000):
                s.execute(
                    delete(AccountKey).where(
                        AccountKey.kind == kind, AccountKey.value.in_(gone[start : start + 5000])
                    )
                )

    def account_keys(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """(kind, value, account_id) of live accounts."""
        stmt = (
            select(AccountKey.kind, AccountKey.value, AccountKey.account_id)
            .join(Account, Account.id == AccountKey.account_id)
            .where(Account.deleted.is_(False))
        )
        if kind is not None:
            stmt = stmt.where(AccountKey.kind == kind)
        with self.session() as s:
            return [tuple(r) for r in s.execute(stmt)]  # type: ignore[misc]

    def record_unmatched(
        self,
        source: str,
        obj: str,
        unmatched: Mapping[str, tuple[str, str]],
        matched: Iterable[str] = (),
    ) -> None:
        """Remember records that matched no account (id → (reason, detail)); forget the ids
        in ``matched`` (they found their account since)."""
        now = utcnow()
        rows = [
            {
                "source": source,
                "object": obj,
                "record_id": rid,
                "reason": reason,
                "detail": detail[:512],
                "seen_at": now,
            }
            for rid, (reason, detail) in unmatched.items()
        ]
        done = list(matched)
        with self.session() as s:
            for start in range(0, len(done), 5000):
                s.execute(
                    delete(UnmatchedRecord).where(
                        UnmatchedRecord.source == source,
                        UnmatchedRecord.object == obj,
                        UnmatchedRecord.record_id.in_(done[start : start + 5000]),
                    )
                )
            upsert(
                s,
                UnmatchedRecord.__table__,
                rows,
                ["source", "object", "record_id"],
                ["reason", "detail", "seen_at"],
            )

    def upsert_source_records(
        self,
        source: str,
        obj: str,
        rows: Iterable[tuple[str, str | None, dict[str, Any], bool, datetime]],
    ) -> set[str]:
        """Keep (id, account_id, fields, deleted, modified) rows; return the accounts touched
        (the new one and, when a record moved, the old one)."""
        rows = list(rows)
        touched: set[str] = set()
        with self.session() as s:
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 5000):
                touched.update(
                    acct
                    for acct in s.scalars(
                        select(SourceRecord.account_id).where(
                            SourceRecord.source == source,
                            SourceRecord.object == obj,
                            SourceRecord.id.in_(ids[start : start + 5000]),
                        )
                    )
                    if acct
                )
            upsert(
                s,
                SourceRecord.__table__,
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
                ["source", "object", "id"],
                ["account_id", "fields", "deleted", "modified"],
            )
        touched |= {r[1] for r in rows if r[1]}
        return touched

    def source_records(
        self, source: str, obj: str, account_ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Live (not deleted) records per account."""
        ids = list(account_ids)
        out: dict[str, list[dict[str, Any]]] = {a: [] for a in ids}
        with self.session() as s:
            conn = s.connection()  # plain rows: no ORM loading for a read this size
            for start in range(0, len(ids), 5000):
                for acct, fields in conn.execute(
                    select(SourceRecord.account_id, SourceRecord.fields).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        SourceRecord.deleted.is_(False),
                        SourceRecord.account_id.in_(ids[start : start + 5000]),
                    )
                ):
                    out[acct].append(fields)
        return out

    def source_records_by_id(
        self, source: str, obj: str, ids: Iterable[str]
    ) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """(account_id, fields) of the kept records with these ids (deleted ones too)."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, tuple[str | None, dict[str, Any]]] = {}
        with self.session() as s:
            for start in range(0, len(wanted), 5000):
                for rid, acct, fields in s.execute(
                    select(SourceRecord.id, SourceRecord.account_id, SourceRecord.fields).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        SourceRecord.id.in_(wanted[start : start + 5000]),
                    )
                ):
                    out[rid] = (acct, fields)
        return out

    def relink_source_records(
        self, source: str, obj: str, field: str, links: Mapping[str, str | None]
    ) -> set[str]:
        """Point the records whose string field ``field`` has a value in ``links`` at that
        value's account (e.g. the tickets of an organization matched since); return the
        accounts touched (old and new)."""
        key = SourceRecord.fields[field].as_string()
        values = list(links)
        moves: list[dict[str, Any]] = []
        touched: set[str] = set()
        with self.session() as s:
            for start in range(0, len(values), 5000):
                for rid, old, value in s.execute(
                    select(SourceRecord.id, SourceRecord.account_id, key).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        key.in_(values[start : start + 5000]),
                    )
                ):
                    new = links.get(value)
                    if new != old:
                        moves.append({"rid": rid, "acct": new})
                        touched.update(a for a in (old, new) if a)
            _move_records(s, source, obj, moves)
        return touched

    def link_unowned_records(
        self, source: str, obj: str, field: str, links: Mapping[str, str]
    ) -> set[str]:
        """Give the records *without an account* whose string field ``field`` has a value in
        ``links`` that value's account (tickets kept before their organization was matched);
        return the accounts touched. Reads only the records without an account (an index
        range), however many records the source keeps."""
        if not links:
            return set()
        table = SourceRecord.__table__
        key = table.c.fields[field].as_string()
        with self.session() as s:
            moves = [
                {"rid": rid, "acct": links[value]}
                for rid, value in s.connection().execute(
                    select(table.c.id, key).where(
                        table.c.source == source,
                        table.c.object == obj,
                        table.c.account_id.is_(None),
                    )
                )
                if value in links
            ]
            _move_records(s, source, obj, moves)
        return {m["acct"] for m in moves}

    def follow_parent_records(self, source: str, obj: str, parent: str, field: str) -> set[str]:
        """Give each ``obj`` record the account of the ``parent`` record named by its string
        field ``field`` (a CSAT rating its ticket's account; none when the ticket is not
        kept); return the accounts touched (old and new).

        Each parent is looked up once, into a temporary table the update then joins: the
        moves stay in the database, never in this process."""
        table = SourceRecord.__table__
        held = table.alias("parent")
        account_of_parent = (
            select(held.c.account_id)
            .where(
                held.c.source == source,
                held.c.object == parent,
                held.c.id == table.c.fields[field].as_string(),
            )
            .scalar_subquery()
        )
        touched: set[str] = set()
        with self.session() as s:
            conn = s.connection()
            _FOLLOW_MOVES.create(conn)
            conn.execute(
                _FOLLOW_MOVES.insert().from_select(
                    ["id", "old", "new"],
                    select(table.c.id, table.c.account_id, account_of_parent).where(
                        table.c.source == source, table.c.object == obj
                    ),
                )
            )
            moves = _FOLLOW_MOVES.c
            moving = moves.old.is_distinct_from(moves.new)
            for old, new in conn.execute(select(moves.old, moves.new).where(moving).distinct()):
                touched.update(a for a in (old, new) if a)
            if touched:
                conn.execute(
                    update(table)
                    .values(account_id=moves.new)
                    .where(
                        table.c.source == source,
                        table.c.object == obj,
                        table.c.id == moves.id,
                        moving,
                    )
                )
            _FOLLOW_MOVES.drop(conn)
        return touched

    def accounts_without(self, metric: str, source: str) -> list[str]:
        """Live accounts holding no value of ``metric`` from ``source`` yet."""
        held = select(SignalLatest.account_id).where(
            SignalLatest.metric == metric, SignalLatest.source == source
        )
        stmt = select(Account.id).where(Account.deleted.is_(False), Account.id.not_in(held))
        with self.session() as s:
            return list(s.scalars(stmt.order_by(Account.id)))

    def unmatched(self, source: str | None = None) -> list[UnmatchedRecord]:
        stmt = select(UnmatchedRecord).order_by(
            UnmatchedRecord.source, UnmatchedRecord.object, UnmatchedRecord.record_id
        )
        if source is not None:
            stmt = stmt.where(UnmatchedRecord.source == source)
        with self.session() as s:
            return list(s.scalars(stmt))

    def unmatched_counts(self) -> dict[str, int]:
        stmt = select(UnmatchedRecord.source, func.count()).group_by(UnmatchedRecord.source)
        with self.session() as s:
            return {src: int(n) for src, n in s.execute(stmt)}

    def remember_crm_values(self, crm: str, values: Mapping[str, dict[str, Any]]) -> None:
        """Record the health values the CRM was seen to hold (e.g. after a CSM edited one)."""
        with self.session() as s:
            _set_crm_state(s, crm, values)

    def queue_writes(self, crm: str, changes: Mapping[str, dict[str, Any]]) -> None:
        """Make ``changes`` the pending values (newest wins; attempts are kept)."""
        now = utcnow()
        rows = [
            {
                "crm": crm,
                "account_id": a,
                "fields": f,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for a, f in changes.items()
        ]
        with self.session() as s:
            upsert(s, PendingWrite.__table__, rows, ["crm", "account_id"], ["fields", "updated_at"])

    def drop_pending(self, crm: str, account_ids: Iterable[str]) -> None:
        with self.session() as s:
            _delete_pending(s, crm, list(account_ids))

    def pending_writes(self, crm: str) -> list[PendingWrite]:
        stmt = (
            select(PendingWrite)
            .where(PendingWrite.crm == crm)
            .order_by(PendingWrite.created_at, PendingWrite.account_id)
        )
        with self.session() as s:
            return list(s.scalars(stmt))

    def complete_writes(self, crm: str, written: Mapping[str, dict[str, Any]]) -> None:
        """The CRM accepted these values: remember them and clear them from pending."""
        if not written:
            return
        with self.session() as s:
            _set_crm_state(s, crm, written)
            _delete_pending(s, crm, list(written))

    def fail_writes(self, crm: str, errors: Mapping[str, str]) -> None:
        with self.session() as s:
            for account_id, error in errors.items():
                s.execute(
                    update(PendingWrite)
                    .where(PendingWrite.crm == crm, PendingWrite.account_id == account_id)
                    .values(
                        attempts=PendingWrite.attempts + 1,
                        last_error=error[:2000],
                        updated_at=utcnow(),
                    )
                )


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


def _move_records(s: Session, source: str, obj: str, moves: list[dict[str, Any]]) -> None:
    """Point kept records (``rid``) at accounts (``acct``): one statement, many parameter sets."""
    if moves:
        table = SourceRecord.__table__
        s.execute(
            update(table)
            .where(table.c.source == source, table.c.object == obj, table.c.id == bindparam("rid"))
            .values(account_id=bindparam("acct")),
            moves,
        )


def _set_crm_state(s: Session, crm: str, values: Mapping[str, dict[str, Any]]) -> None:
    now = utcnow()
    upsert(
        s,
        CrmFieldState.__table__,
        [{"crm": crm, "account_id": a, "fields": f, "written_at": now} for a, f in values.items()],
        ["crm", "account_id"],
        ["fields", "written_at"],
    )


def _delete_pending(s: Session, crm: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 5000):
        s.execute(
            delete(PendingWrite).where(
                PendingWrite.crm == crm, PendingWrite.account_id.in_(ids[start : start + 5000])
            )
        )
