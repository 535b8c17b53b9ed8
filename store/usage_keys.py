"""The key of ``usage_daily`` rows in a chunk, and the one row per key a chunk means."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

KEY = [("account_id", "ascending"), ("metric", "ascending"), ("day", "ascending")]


def last_per_key(table: pa.Table) -> pa.Table:
    """``table`` (sorted by key, stably) without the rows a later row of the same key replaces.

    PostgreSQL's merge cannot update one row twice in a statement, a direct COPY would stop
    at the second one, and SQLite would write (and count) the key twice: the last row of a
    key is the one a file means.
    """
    if table.num_rows < 2:
        return table
    same = None
    for name in ("day", "metric", "account_id"):  # the cheapest comparison first
        col = table.column(name)
        eq = pc.equal(col.slice(0, len(col) - 1), col.slice(1))
        same = eq if same is None else pc.and_kleene(same, eq)
        if not pc.any(same).as_py():
            return table
    assert same is not None
    keep = pc.invert(pc.fill_null(same, False))  # row i is replaced when row i+1 has its key
    return table.filter(pa.chunked_array([*keep.chunks, pa.array([True])]))
