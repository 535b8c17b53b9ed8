"""Writing usage values into ``usage_daily`` fast, one chunk per transaction.

PostgreSQL: each chunk is COPYed (psycopg 3 ``cursor.copy``, CSV written by Arrow) into a
temporary staging table, then merged with one ``INSERT … ON CONFLICT DO UPDATE`` — a value
that did not change is not rewritten. Most chunks bring days not loaded yet, so a plain
``INSERT`` from the staging table is tried first (inside a savepoint); when a key already
exists it is rolled back and the chunk is merged. SQLite: ``executemany`` upserts. Either way
a re-load of the same rows changes nothing, and a newer value for a day replaces the older.

A chunk that holds the same (account, metric, day) twice keeps its last row (PostgreSQL
refuses to update one row twice in a statement: that rare chunk is merged again with
``DISTINCT ON``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, text

_STAGE = "healthscore_usage_stage"
_PG_INSERT = """
INSERT INTO usage_daily (account_id, metric, day, value, source)
SELECT account_id, metric, day, value, %(source)s FROM {stage}
"""
_PG_MERGE = """
INSERT INTO usage_daily (account_id, metric, day, value, source)
SELECT {distinct} account_id, metric, day, value, %(source)s FROM {stage}
{order}
ON CONFLICT (account_id, metric, day) DO UPDATE
SET value = EXCLUDED.value, source = EXCLUDED.source
WHERE usage_daily.value IS DISTINCT FROM EXCLUDED.value
   OR usage_daily.source IS DISTINCT FROM EXCLUDED.source
"""
_SQLITE_UPSERT = """
INSERT INTO usage_daily (account_id, metric, day, value, source) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (account_id, metric, day) DO UPDATE
SET value = excluded.value, source = excluded.source
WHERE usage_daily.value IS NOT excluded.value OR usage_daily.source IS NOT excluded.source
"""
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


@dataclass
class WriteCounts:
    rows: int = 0  # rows sent
    changed: int = 0  # rows inserted or given a new value
    chunks: int = 0


class UsageWriter:
    """Writes chunks of (account_id, metric, day, value) rows for one source.

    Use as a context manager (``Store.usage_writer``); each :meth:`write` commits on its own,
    so an interrupted load keeps what it wrote and a re-run completes it without duplicates.
    """

    def __init__(self, conn: Connection, source: str) -> None:
        self.conn = conn
        self.source = source
        self.counts = WriteCounts()
        self.dialect = conn.dialect.name
        self._plain_next = True  # try a plain INSERT first (no key of the chunk exists yet)
        if self.dialect == "postgresql":
            self._pg_prepare()

    def write(self, table: pa.Table) -> int:
        """Upsert one chunk in its own transaction; returns the rows inserted or changed."""
        if table.num_rows == 0:
            return 0
        with self.conn.begin():
            if self.dialect == "postgresql":
                changed = self._pg_write(table)
            else:
                changed = self._sqlite_write(table)
        self.counts.rows += table.num_rows
        self.counts.changed += changed
        self.counts.chunks += 1
        return changed

    # -- PostgreSQL ----------------------------------------------------------------------------
    def _pg_prepare(self) -> None:
        with self.conn.begin():
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (account_id text, metric text, "
                "day date, value double precision) ON COMMIT DELETE ROWS")
            # a chunk is re-loadable: losing the last commits in a crash loses nothing
            self.conn.exec_driver_sql("SET synchronous_commit TO OFF")

    def _pg_write(self, table: pa.Table) -> int:
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, write_options=_CSV_OPTIONS)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            with cur.copy(f"COPY {_STAGE} (account_id, metric, day, value) FROM STDIN "
                          "(FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
            del buffer
            cur.execute("SAVEPOINT usage_merge")
            if self._plain_next:
                # new days (the usual drop) need no conflict handling: a plain INSERT is
                # about twice as fast as ON CONFLICT; a key that exists sends the chunk on
                try:
                    cur.execute(_PG_INSERT.format(stage=_STAGE), {"source": self.source})
                    return max(cur.rowcount, 0)
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != "23505":  # unique_violation
                        raise
                    cur.execute("ROLLBACK TO SAVEPOINT usage_merge")
                    self._plain_next = False  # the next chunk likely overlaps too: merge it
            else:
                self._plain_next = True  # …and try the fast way again after that
            try:
                cur.execute(_PG_MERGE.format(distinct="", stage=_STAGE, order=""),
                            {"source": self.source})
            except Exception as exc:  # the same key twice in this chunk: keep the last row
                if getattr(exc, "sqlstate", None) != "21000":  # cardinality_violation
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT usage_merge")
                cur.execute(_PG_MERGE.format(
                    distinct="DISTINCT ON (account_id, metric, day)", stage=_STAGE,
                    order="ORDER BY account_id, metric, day, ctid DESC"),
                    {"source": self.source})
            return max(cur.rowcount, 0)

    # -- SQLite --------------------------------------------------------------------------------
    def _sqlite_write(self, table: pa.Table) -> int:
        days = table.column("day").cast(pa.string()).to_pylist()
        rows = zip(table.column("account_id").to_pylist(), table.column("metric").to_pylist(),
                   days, table.column("value").to_pylist(), [self.source] * table.num_rows,
                   strict=True)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        before = raw.total_changes
        raw.executemany(_SQLITE_UPSERT, rows)
        return int(raw.total_changes - before)


@contextmanager
def usage_writer(engine: Engine, source: str) -> Iterator[UsageWriter]:
    """A writer on its own connection (the PostgreSQL staging table lives with it)."""
    with engine.connect() as conn:
        writer = UsageWriter(conn, source)
        try:
            yield writer
        finally:
            if writer.dialect == "postgresql" and not conn.closed:
                conn.rollback()
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_STAGE}")
                conn.exec_driver_sql("RESET synchronous_commit")
                conn.commit()


def usage_count(conn: Connection, source: str | None = None) -> int:
    """Rows held in usage_daily (of one source)."""
    if source is None:
        return int(conn.execute(text("SELECT count(*) FROM usage_daily")).scalar_one())
    return int(conn.execute(text("SELECT count(*) FROM usage_daily WHERE source = :s"),
                            {"s": source}).scalar_one())
