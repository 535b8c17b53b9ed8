"""Engine creation and automatic, repeatable schema creation."""

from __future__ import annotations

import functools
import logging
import operator
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from healthscore.core.errors import ConfigError

from .models import Base, SchemaVersion, UTCDateTime

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6  # 2: account_keys, unmatched_records, source_records, rule_state;
#                    3: usage_daily; 4: usage_loads; 5: backfill_runs; 6: overrides
_PG_MIGRATION_LOCK = 0x6865616C  # "heal": one advisory lock id for every worker
# nullable columns added to existing tables after their first release: a store made by an
# older healthscore gets them at start-up (create_all only creates missing tables)
ADDED_COLUMNS = {"scores": ("churn_probability", "arr_at_risk")}


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so worker threads share it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL: not a database URL ({exc})") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # JSON columns through orjson: a sync decodes every kept record's fields (4x faster)
    json_options = {"json_serializer": _json_text, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, **json_options
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, **json_options)


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


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
            _add_columns(conn)
            with Session(bind=conn) as session:
                known = session.scalar(
                    select(SchemaVersion.version).order_by(SchemaVersion.version.desc())
                )
                if known is None or known < SCHEMA_VERSION:
                    session.add(SchemaVersion(version=SCHEMA_VERSION))
                    session.flush()
                elif known > SCHEMA_VERSION:
                    raise ConfigError(
                        f"DATABASE_URL: the database has schema version {known}, newer than this "
                        f"healthscore ({SCHEMA_VERSION}); upgrade healthscore"
                    )
    except OperationalError as exc:
        raise ConfigError(
            f"DATABASE_URL: cannot reach the database ({exc.orig.__class__.__name__}: "
            f"{str(exc.orig).strip().splitlines()[0]})"
        ) from None


def _add_columns(conn: Connection) -> None:
    """Add the ``ADDED_COLUMNS`` an existing table lacks (nullable, so old rows read NULL)."""
    inspector = inspect(conn)
    for table_name, names in ADDED_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table_name)}
        table = Base.metadata.tables[table_name]
        for name in names:
            if name in have:
                continue
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))
            log.info("store: added column %s.%s", table_name, name)


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]] | Sequence[Sequence[Any]],
    keys: Iterable[str],
    update: Iterable[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows``; on a key conflict update the ``update`` columns (or do nothing).
    Rows are dicts, or with ``columns`` tuples of those columns' values."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise ConfigError(
            f"DATABASE_URL: unsupported database {dialect!r} (use SQLite or PostgreSQL)"
        )
    keys, update = list(keys), list(update or ())
    # one statement executed with many parameter sets: compiled once (and cached), where a
    # multi-row VALUES clause would be compiled again for every batch, bind by bind
    stmt = insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    execute_many(
        session,
        stmt,
        rows,
        columns=columns,
        plan_key=(table.name, "upsert", tuple(keys), tuple(update)),
    )


def insert_many(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]] | Sequence[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (all with the same columns; dicts, or with ``columns`` tuples of those
    columns' values) into ``table``."""
    if rows:
        execute_many(
            session, table.insert(), rows, columns=columns, plan_key=(table.name, "insert")
        )


# -- executemany without SQLAlchemy's per-row work -------------------------------------------
@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order
    positional: bool
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, converter)
    values_of: Callable[[Any], tuple[Any, ...]]  # a row's values, in the statement's order


_plans: dict[tuple[Any, ...], _Plan | None] = {}  # None: let SQLAlchemy bind this one
_plans_lock = threading.Lock()
_MISSING: Any = object()


def execute_many(
    session: Session,
    stmt: Executable,
    rows: Sequence[dict[str, Any]] | Sequence[Sequence[Any]],
    *,
    plan_key: tuple[Any, ...],
    columns: Sequence[str] | None = None,
) -> None:
    """``session.execute(stmt, rows)``, in batches of 2,000 — but the statement is compiled
    once per process and each value is converted by one function per column, then the
    driver's ``executemany`` runs: SQLAlchemy's own per-row parameter handling costs more
    than the database's work for the narrow rows syncs write (a CRM sync of 100k
    accounts spent over half its time there).

    Rows are dicts, or — with ``columns`` — tuples of those columns' values (no dict per row).

    Falls back to ``session.execute`` for a statement whose compiled form needs more than the
    row's values (a Python-side column default, say)."""
    conn = session.connection()
    dialect = conn.dialect
    positions = columns is not None
    names_given = tuple(columns) if columns is not None else tuple(rows[0])
    key = (*plan_key, dialect.name, names_given, positions)
    plan = _plans.get(key, _MISSING)
    if plan is _MISSING:
        plan = _compile_plan(stmt, names_given, dialect, positions)
        with _plans_lock:
            _plans[key] = plan
    for start in range(0, len(rows), 2000):
        batch = rows[start : start + 2000]
        if positions and (plan is None or not plan.positional):
            batch = [dict(zip(names_given, row, strict=True)) for row in batch]
        if plan is None:
            session.execute(stmt, list(batch))
            continue
        params: list[Any]
        if plan.positional:
            values_of = plan.values_of
            if plan.converters:
                rows_values = [list(values_of(row)) for row in batch]
                for position, convert in plan.converters:
                    for values in rows_values:
                        values[position] = convert(values[position])
                params = [tuple(values) for values in rows_values]  # SQLAlchemy takes tuples
            else:
                params = [values_of(row) for row in batch]
        else:  # named parameters: dicts made from tuples above are ours to convert in place
            params = list(batch) if positions else [dict(row) for row in batch]
            for position, convert in plan.converters:
                name = plan.names[position]
                for values in params:
                    values[name] = convert(values[name])
        conn.exec_driver_sql(plan.sql, params)  # type: ignore[arg-type]


def _compile_plan(
    stmt: Executable, columns: tuple[str, ...], dialect: Any, positions: bool = False
) -> _Plan | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.binds)
    if set(names) != set(columns) or len(names) != len(columns):
        return None  # a default or an extra parameter: let SQLAlchemy fill it in
    table = stmt.table  # type: ignore[attr-defined]
    converters = []
    for position, name in enumerate(names):
        convert = _converter(table.c[name].type, dialect)
        if convert is not None:
            converters.append((position, convert))
    keys: tuple[Any, ...] = tuple(columns.index(n) for n in names) if positions else names
    return _Plan(
        str(compiled), names, bool(compiled.positional), tuple(converters), _values_of(keys)
    )


def _values_of(keys: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values in the statement's order — by name from a dict, by position from a
    tuple — in one C call (``operator.itemgetter``)."""
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


def _utc_naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")
    return value.astimezone(UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=8192)  # a sync stamps thousands of rows with the same moment
def _utc_text(value: datetime | None) -> str | None:
    """SQLite's DATETIME text, as SQLAlchemy writes it: ``2026-11-26 15:00:00.000000``."""
    naive = _utc_naive(value)
    return None if naive is None else naive.isoformat(" ", "microseconds")


def _converter(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """One column's bind conversion (of None too): SQLAlchemy's own, except for the aware UTC
    datetimes every table has, converted directly (the same values, in a tenth of the time)."""
    if isinstance(type_, UTCDateTime):
        return _utc_text if dialect.name == "sqlite" else _utc_naive
    processor = type_._cached_bind_processor(dialect)
    if processor is None:
        return None
    return processor  # type: ignore[no-any-return]
