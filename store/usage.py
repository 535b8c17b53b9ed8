"""Writing usage values into ``usage_daily`` fast, one chunk per transaction.

PostgreSQL: each chunk is sorted by key (its primary-key inserts then land side by side, a
large gain once the index outgrows shared_buffers); of rows sharing a key only the last is
kept. The chunk is encoded once in COPY's binary format, vectorised with Arrow and NumPy (no
per-row Python, and no dates or numbers for the server to parse from text). Most chunks bring
days not loaded yet: they are COPYed straight into ``usage_daily`` inside a savepoint — no
staging table, no ``INSERT … SELECT``. When a key already exists (unique violation) that COPY
is rolled back and the same bytes go into a temporary staging table, merged with one
``INSERT … ON CONFLICT DO UPDATE`` — a value that did not change is not rewritten. The chunk
after a merged one is merged straight away (it likely overlaps too); the one after that tries
the direct COPY again. Where the role may, the session compresses its WAL's full-page images
(lz4). SQLite: ``executemany`` upserts of the chunk sorted by key (see
:mod:`store.usage_sqlite`). Either way a re-load of the same rows
changes nothing, a newer value for a day replaces the older, and a chunk holding the same
(account, metric, day) twice keeps its last row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from .usage_keys import KEY as _KEY
from .usage_keys import last_per_key
from .usage_sqlite import SqliteUsageWriter

if TYPE_CHECKING:
    from psycopg import Cursor

_STAGE = "healthscore_usage_stage"
# the binary rows carry the fixed-width fields first (see _binary_rows)
_COLUMNS = "day, value, account_id, metric, source"
_PG_MERGE = f"""
INSERT INTO usage_daily ({_COLUMNS})
SELECT {_COLUMNS} FROM {_STAGE}
ON CONFLICT (account_id, metric, day) DO UPDATE
SET value = EXCLUDED.value, source = EXCLUDED.source
WHERE usage_daily.value IS DISTINCT FROM EXCLUDED.value
   OR usage_daily.source IS DISTINCT FROM EXCLUDED.source
"""

# COPY binary format (PostgreSQL docs, "COPY … Binary Format")
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_NULL_FIELD = b"\xff\xff\xff\xff"  # field length -1
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 (PostgreSQL's date 0) in days since 1970-01-01
# per row: field count, then day and value with their lengths; the text fields follow
_FIXED = np.dtype(
    [("fields", ">i2"), ("day_len", ">i4"), ("day", ">i4"), ("value_len", ">i4"), ("value", ">f8")]
)
_EMPTY = pa.scalar(b"", pa.binary())  # binary_join_element_wise's separator: none
_ENCODE_ROWS = 1 << 16  # rows encoded at a time: bounds the bytes held beside the chunk


@dataclass
class WriteCounts:
    rows: int = 0  # rows sent
    changed: int = 0  # rows inserted or given a new value
    chunks: int = 0
    merged: int = 0  # chunks that met existing keys and went through the staging merge


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
        self._direct_next = True  # try a direct COPY first (no key of the chunk exists yet)
        self.wal_compression = False  # this session compresses its WAL (reset at the end)
        self._sqlite: SqliteUsageWriter | None = None
        if self.dialect == "postgresql":
            self._pg_prepare()
        else:
            raw = conn.connection.driver_connection
            assert raw is not None
            self._sqlite = SqliteUsageWriter(raw, source)

    def write(self, table: pa.Table) -> int:
        """Upsert one chunk in its own transaction; returns the rows inserted or changed."""
        if table.num_rows == 0:
            return 0
        if self._sqlite is not None:
            changed = self._sqlite.write(table)
        else:
            with self.conn.begin():
                changed = self._pg_write(table)
        self.counts.rows += table.num_rows
        self.counts.changed += changed
        self.counts.chunks += 1
        return changed

    # -- PostgreSQL ----------------------------------------------------------------------------
    def _pg_prepare(self) -> None:
        with self.conn.begin():
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (day date, "
                "value double precision, account_id text, metric text, source text) "
                "ON COMMIT DELETE ROWS"
            )
            # a chunk is re-loadable: losing the last commits in a crash loses nothing
            self.conn.exec_driver_sql("SET synchronous_commit TO OFF")
            self.wal_compression = self._compress_wal()

    def _compress_wal(self) -> bool:
        """Compress this session's full-page images in the WAL, where the role may.

        Each chunk touches every primary-key leaf page, so after a checkpoint most of a
        load's WAL is full-page images: lz4 makes them about half the bytes, hence fewer
        checkpoints and fewer images. ``wal_compression`` is a superuser setting (or one
        granted with ``GRANT SET ON PARAMETER``); without the right, or without lz4 in the
        server, the load goes on uncompressed. A setting the server already has is kept.
        """
        if self.conn.exec_driver_sql("SHOW wal_compression").scalar_one() != "off":
            return False
        try:
            with self.conn.begin_nested():
                self.conn.exec_driver_sql("SET wal_compression TO lz4")
        except DBAPIError as exc:
            # insufficient_privilege, or invalid_parameter_value (no lz4 support)
            if getattr(exc.orig, "sqlstate", None) not in ("42501", "22023"):
                raise
            return False
        return True

    def _pg_write(self, table: pa.Table) -> int:
        # in key order the index inserts of a chunk that spans many days land side by side
        # (the sort is stable: of one key's rows the last stays last)
        table = last_per_key(table.sort_by(_KEY))
        payload = _Payload(table, self.source)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            if self._direct_next:
                # new days (the usual drop) need no conflict handling: COPY them in place;
                # a key that exists already rolls the COPY back and sends the chunk on
                cur.execute("SAVEPOINT usage_direct")
                try:
                    _copy(cur, "usage_daily", payload)
                    cur.execute("RELEASE SAVEPOINT usage_direct")
                    return table.num_rows
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != "23505":  # unique_violation
                        raise
                    cur.execute("ROLLBACK TO SAVEPOINT usage_direct")
                    self._direct_next = False  # the next chunk likely overlaps too: merge it
            else:
                self._direct_next = True  # …and try the fast way again after that
            self.counts.merged += 1
            _copy(cur, _STAGE, payload)
            cur.execute(_PG_MERGE)
            return max(cur.rowcount, 0)


class _Payload:
    """A chunk's COPY data, encoded piece by piece as it is sent, kept for a second COPY."""

    def __init__(self, table: pa.Table, source: str) -> None:
        self.table = table
        self.source = source
        self.encoded: list[pa.Buffer] = []

    def __iter__(self) -> Iterator[pa.Buffer]:
        yield from self.encoded
        for start in range(len(self.encoded) * _ENCODE_ROWS, self.table.num_rows, _ENCODE_ROWS):
            self.encoded.append(_binary_rows(self.table.slice(start, _ENCODE_ROWS), self.source))
            yield self.encoded[-1]


def _copy(cur: Cursor[Any], target: str, payload: _Payload) -> None:
    """COPY the binary ``payload`` into ``target``."""
    # the queued writer sends from its own thread: the next piece is encoded meanwhile
    with cur.copy(
        f"COPY {target} ({_COLUMNS}) FROM STDIN (FORMAT binary)", writer=QueuedLibpqWriter(cur)
    ) as copy:
        copy.write(_COPY_HEADER)
        for rows in payload:
            copy.write(rows)
        copy.write(_COPY_TRAILER)


def _binary_rows(table: pa.Table, source: str) -> pa.Buffer:
    """The rows of ``table`` in COPY's binary format: day, value, account_id, metric, source.

    Fixed-width fields (field count, day, value and their lengths) are laid out by a NumPy
    structured array, then joined row by row with the length-prefixed texts by Arrow.
    """
    n = table.num_rows
    fixed = np.empty(n, dtype=_FIXED)
    fixed["fields"] = 5
    fixed["day_len"] = 4
    fixed["value_len"] = 8
    days = table.column("day").combine_chunks()
    values = table.column("value").combine_chunks()
    fixed["day"] = days.cast(pa.int32()).fill_null(0).to_numpy() - _PG_EPOCH_DAYS
    fixed["value"] = values.fill_null(0.0).to_numpy()
    head = _binary_array(fixed.view(np.uint8), _FIXED.itemsize, n)
    if days.null_count or values.null_count:  # a NULL is a field of length -1, no bytes
        head = pc.binary_join_element_wise(
            pa.scalar(b"\x00\x05", pa.binary()),
            _fixed_field(fixed["day"], days),
            _fixed_field(fixed["value"], values),
            _EMPTY,
        )
    encoded = source.encode()
    rows = pc.binary_join_element_wise(
        head,
        _text_field(table.column("account_id")),
        _text_field(table.column("metric")),
        pa.scalar(len(encoded).to_bytes(4, "big") + encoded, pa.binary()),
        _EMPTY,
    )  # the separator
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * rows.offset)
    return rows.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _fixed_field(data: np.ndarray, col: pa.Array) -> pa.Array:
    """Big-endian fixed-width ``data`` as binary fields, NULL where ``col`` is null."""
    width = data.dtype.itemsize
    framed = np.empty(len(data), dtype=[("length", ">i4"), ("data", data.dtype)])
    framed["length"] = width
    framed["data"] = data
    field = _binary_array(framed.view(np.uint8), 4 + width, len(data))
    return pc.if_else(col.is_valid(), field, pa.scalar(_NULL_FIELD, pa.binary()))


def _text_field(col: pa.ChunkedArray) -> pa.Array:
    """A text column as binary fields: 4-byte big-endian length, then the UTF-8 bytes."""
    data = col.combine_chunks().cast(pa.binary())
    lengths = pc.binary_length(data).fill_null(-1).to_numpy().astype(">i4")
    field = pc.binary_join_element_wise(
        _binary_array(lengths.view(np.uint8), 4, len(data)), data, _EMPTY
    )
    return field.fill_null(_NULL_FIELD) if data.null_count else field


def _binary_array(data: np.ndarray, width: int, n: int) -> pa.Array:
    """``n`` binary values of ``width`` bytes each, cut from the contiguous bytes ``data``."""
    offsets = np.arange(0, width * n + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    )


@contextmanager
def usage_writer(engine: Engine, source: str) -> Iterator[UsageWriter]:
    """A writer on its own connection (the PostgreSQL staging table lives with it)."""
    with engine.connect() as conn:
        writer = UsageWriter(conn, source)
        try:
            yield writer
        finally:
            if writer._sqlite is not None and not conn.closed:
                writer._sqlite.close()
            if writer.dialect == "postgresql" and not conn.closed:
                conn.rollback()
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_STAGE}")
                conn.exec_driver_sql("RESET synchronous_commit")
                if writer.wal_compression:
                    conn.exec_driver_sql("RESET wal_compression")
                conn.commit()


def usage_count(conn: Connection, source: str | None = None) -> int:
    """Rows held in usage_daily (of one source)."""
    if source is None:
        return int(conn.execute(text("SELECT count(*) FROM usage_daily")).scalar_one())
    return int(
        conn.execute(
            text("SELECT count(*) FROM usage_daily WHERE source = :s"), {"s": source}
        ).scalar_one()
    )
