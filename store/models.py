"""The store's tables (SQLAlchemy 2 typed ORM).

Signals are kept twice on purpose: ``signal_history`` is the append-only record of every
*change* of a value (point-in-time scoring reads it), ``signal_latest`` is the current value
per (account, metric, source) that the live scorer reads in one pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A CRM account: the unit every signal, score and action is about."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    crm: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    owner_email: Mapped[str | None] = mapped_column(String(255))
    owner_name: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountKey(Base):
    """A key that identifies an account outside its CRM: a web domain, another system's id.

    ``kind`` is ``domain`` or ``<source>:<key>`` (e.g. ``crm:company``). One value may
    belong to two accounts — a shared domain — which identity resolution reports as ambiguous.
    """

    __tablename__ = "account_keys"
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_account_keys_account", "account_id", "kind"),)


class SourceRecord(Base):
    """A related record (an Opportunity, a Case …) kept so per-account aggregates can be
    recomputed when only some of an account's records changed."""

    __tablename__ = "source_records"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    object: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    modified: Mapped[datetime] = mapped_column()
    __table_args__ = (Index("ix_source_records_account", "source", "object", "account_id"),)


class UnmatchedRecord(Base):
    """A record from a non-CRM source that no account could be found for (yet)."""

    __tablename__ = "unmatched_records"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    object: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # no_match | ambiguous | no_key
    detail: Mapped[str] = mapped_column(String(512), default="")
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignalHistory(Base):
    """One observed change of one metric of one account."""

    __tablename__ = "signal_history"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column()
    __table_args__ = (Index("ix_signal_history_lookup", "account_id", "metric", "observed_at"),)


class UsageDaily(Base):
    """One product-usage value of one account on one day (logins, active users, minutes …).

    Daily values are kept as they come, not change-deduplicated like ``signal_history``: a
    windowed sum needs every day, and point-in-time scoring reads the days up to T. The key
    makes a re-load of the same day idempotent (the newer value wins).
    """

    __tablename__ = "usage_daily"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(64), default="usage")
    __table_args__ = (
        Index("ix_usage_daily_metric_day", "metric", "day"),
        # SQLite: the key is the table (WITHOUT ROWID), one B-tree written per row, not a
        # table and its key index: loads a fifth faster (benchmarks/bench_usage_load.py)
        {"sqlite_with_rowid": False},
    )


class UsageLoad(Base):
    """One usage file (or warehouse run) loaded into ``usage_daily``, by content hash.

    A file whose hash is here was loaded completely: a later run skips it without reading it.
    """

    __tablename__ = "usage_loads"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the content
    name: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    values_loaded: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignalLatest(Base):
    """The current value of one metric of one account from one source."""

    __tablename__ = "signal_latest"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column()
    # SQLite: the key is the table (WITHOUT ROWID): a recompute's upserts write one B-tree
    # per value, not a table and its key index
    __table_args__ = ({"sqlite_with_rowid": False},)


class ScoreRun(Base):
    __tablename__ = "score_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    scorecard_version: Mapped[str] = mapped_column(String(64))
    accounts_scored: Mapped[int] = mapped_column(Integer, default=0)


class BackfillRun(Base):
    """A score run made after the fact for a past moment (``healthscore backfill``).

    One per moment: a re-run replaces or skips it, so snapshots are never doubled.
    """

    __tablename__ = "backfill_runs"
    as_of: Mapped[datetime] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id"))
    scorecard_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Score(Base):
    """One account's score from one run, with its explanation."""

    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id"))
    account_id: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime] = mapped_column()
    score: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(32))
    coverage: Mapped[float] = mapped_column(Float)
    groups: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # with a churn model on the card (else NULL): P(churn within its horizon), and that
    # probability × the account's ARR (NULL without an ARR)
    churn_probability: Mapped[float | None] = mapped_column(Float)
    arr_at_risk: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_scores_account_time", "account_id", "scored_at"),)


class SyncCursor(Base):
    """The high-water mark of one source object, advanced only after a successful sync."""

    __tablename__ = "sync_cursors"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    object: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionLog(Base):
    """One action intent, keyed by its idempotency key; stored before it is delivered."""

    __tablename__ = "action_log"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    response_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_action_log_status", "status"),)


class RuleStateRow(Base):
    """Where one account stands with one alert rule (see ``actions.rules``)."""

    __tablename__ = "rule_state"
    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    true_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    episode: Mapped[int] = mapped_column(Integer, default=0)
    last_fired: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PendingWrite(Base):
    """CRM field values waiting to be written; removed only once the CRM accepted them."""

    __tablename__ = "pending_writes"
    crm: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fields: Mapped[dict[str, Any]] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrmFieldState(Base):
    """The health field values the CRM is known to hold, to write only what changed."""

    __tablename__ = "crm_field_state"
    crm: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fields: Mapped[dict[str, Any]] = mapped_column()
    written_at: Mapped[datetime] = mapped_column(default=utcnow)


class Override(Base):
    """A CSM's grade override for one account: who set it, why, until when (see
    ``healthscore.governance.overrides``). Kept after it ends, for the history; a refused one is
    kept too, so the refusal is reported and not re-read as new."""

    __tablename__ = "overrides"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    grade: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    set_by: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str] = mapped_column(String(32))  # cli, or the CRM source that held it
    set_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | refused |
    #                                                                     cleared | replaced
    note: Mapped[str | None] = mapped_column(Text)  # why refused / who cleared it
    ended_at: Mapped[datetime | None] = mapped_column()
    __table_args__ = (Index("ix_overrides_account", "account_id", "status"),)
