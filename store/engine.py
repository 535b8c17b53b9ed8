"""Engine creation and automatic, repeatable schema creation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from healthscore.errors import ConfigError

from .models import Base, SchemaVersion

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6  # 2: account_keys, unmatched_records, source_records, rule_state;
#                    3: usage_daily; 4: usage_loads; 5: backfill_runs; 6: overrides
_PG_MIGRATION_LOCK = 0x6865616C  # "heal": one advisory lock id for every worker


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so worker threads share it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL: not a database URL ({exc})") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def migrate(engine: Engine) -> None:
    """Create missing tables and record the schema version; safe to run any number of times.

    On PostgreSQL an advisory lock serialises workers that start at the same moment.
    """
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            Base.metadata.create_all(conn, checkfirst=True)
            with Session(bind=conn) as session:
                known = session.scalar(select(SchemaVersion.version).order_by(
                    SchemaVersion.version.desc()))
                if known is None or known < SCHEMA_VERSION:
                    session.add(SchemaVersion(version=SCHEMA_VERSION))
                    session.flush()
                elif known > SCHEMA_VERSION:
                    raise ConfigError(
                        f"DATABASE_URL: the database has schema version {known}, newer than this "
                        f"healthscore ({SCHEMA_VERSION}); upgrade healthscore")
    except OperationalError as exc:
        raise ConfigError(
            f"DATABASE_URL: cannot reach the database ({exc.orig.__class__.__name__}: "
            f"{str(exc.orig).strip().splitlines()[0]})") from None


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Iterable[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert ``rows``; on a key conflict update the ``update`` columns (or do nothing)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise ConfigError(
            f"DATABASE_URL: unsupported database {dialect!r} (use SQLite or PostgreSQL)")
    keys = list(keys)
    # one statement executed with many parameter sets: compiled once (and cached), where a
    # multi-row VALUES clause would be compiled again for every batch, bind by bind
    stmt = insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    for start in range(0, len(rows), 2000):
        session.execute(stmt, list(rows[start:start + 2000]))
