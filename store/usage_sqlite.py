"""Writing usage values into SQLite's ``usage_daily`` fast.

A usage file comes ordered by day, the table's key by account: each chunk of new days adds a
row to every (account, metric) run of the primary-key index, so every chunk touches every
leaf page of that index, and its commit writes them all to the WAL. Hence:

- the chunk is sorted by key before the inserts: they walk the index once, leaf after leaf,
  instead of jumping around it (a fifth less CPU);
- the loader hands SQLite large chunks (1,000,000 rows, ``connectors.usage.load.CHUNK_ROWS``):
  fewer commits, so each index page is written fewer times (a fifth less CPU at 5M rows than
  250,000-row chunks, and less slowing down as the table grows);
- the writing connection's page cache is raised for the load (grown only as used), so the
  index pages a chunk dirties stay in memory until its commit;
- a load into an empty table (the first, historical one: the big one) drops the (metric, day)
  index and builds it once at the end, sorted, instead of inserting into it row by row (a
  third of the database's work per row; the build takes a fraction of that). The writer's
  close builds it whatever happened: every writer makes sure it exists when it closes.

Each chunk is its own transaction: one that fails (a NULL key) is rolled back alone, the
others stay, and a re-run completes an interrupted load without duplicates (the upsert).
The rows are plain tuples zipped from Arrow columns: no per-row conversion in Python
(~0.7 s of CPU per million rows; the rest is SQLite's). bench_usage_load.py measures it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, DropIndex

from .models import UsageDaily
from .usage_keys import KEY, last_per_key

UPSERT = """
INSERT INTO usage_daily (account_id, metric, day, value, source) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (account_id, metric, day) DO UPDATE
SET value = excluded.value, source = excluded.source
WHERE usage_daily.value IS NOT excluded.value OR usage_daily.source IS NOT excluded.source
"""
CACHE_KIB = 256 * 1024  # page cache of the writing connection during a load (grown as used)
_INDEXES = list(UsageDaily.__table__.indexes)  # the secondary ones (the key stays)
_DIALECT = sqlite.dialect()


class SqliteUsageWriter:
    """Upserts chunks on one sqlite3 connection, each in its own transaction."""

    def __init__(self, raw: Any, source: str) -> None:
        self.raw = raw  # the sqlite3.Connection under SQLAlchemy's
        self.source = source
        self._cache = raw.execute("PRAGMA cache_size").fetchone()[0]
        raw.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self._first = True

    def write(self, table: pa.Table) -> int:
        """Upsert one chunk (rows sharing a key: the last wins); returns the rows changed."""
        raw = self.raw
        if raw.in_transaction:  # left open by someone else: not ours to commit
            raise RuntimeError("usage writer: the connection is inside a transaction")
        before = raw.total_changes
        raw.execute("BEGIN")
        if self._first:
            self._first = False
            if raw.execute("SELECT 1 FROM usage_daily LIMIT 1").fetchone() is None:
                for index in _INDEXES:  # built once, by close()
                    raw.execute(str(DropIndex(index, if_exists=True).compile(dialect=_DIALECT)))
        try:
            raw.executemany(UPSERT, rows_of(table, self.source))
        except BaseException:
            raw.rollback()
            raise
        raw.commit()
        return int(raw.total_changes - before)

    def close(self) -> None:
        """Build the indexes a first load dropped; give the page cache back (the connection
        returns to the pool)."""
        raw = self.raw
        if raw.in_transaction:
            raw.rollback()
        raw.execute("BEGIN")
        for index in _INDEXES:
            raw.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=_DIALECT)))
        raw.commit()
        raw.execute(f"PRAGMA cache_size = {int(self._cache)}")


def rows_of(table: pa.Table, source: str) -> zip[tuple[Any, ...]]:
    """The chunk as (account_id, metric, day, value, source) tuples, in key order.

    Of rows sharing a key only the last is kept (the sort is stable), as on PostgreSQL: a
    re-load changes nothing. Days and metrics repeat: each distinct one is made a ``str``
    once and shared."""
    table = last_per_key(table.sort_by(KEY))
    return zip(
        table.column("account_id").to_pylist(),
        _shared(table.column("metric"), pa.string()),
        _shared(table.column("day"), pa.string()),
        _values(table.column("value")),
        itertools.repeat(source),
    )


def _shared(col: pa.ChunkedArray, as_type: pa.DataType) -> list[Any]:
    """A column of few distinct values as a list of (shared) Python values, None for null."""
    encoded = pc.dictionary_encode(col.combine_chunks())
    names = [*encoded.dictionary.cast(as_type).to_pylist(), None]
    codes = encoded.indices.fill_null(len(names) - 1).to_numpy()
    return [names[i] for i in codes.tolist()]


def _values(col: pa.ChunkedArray) -> list[float | None]:
    values = col.combine_chunks()
    if values.null_count:
        return values.to_pylist()  # type: ignore[no-any-return]
    return values.to_numpy().astype(np.float64, copy=False).tolist()  # type: ignore[no-any-return]
