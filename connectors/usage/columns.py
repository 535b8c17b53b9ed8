"""Arrow column helpers of the usage checks: text, empty cells, masks, dates and numbers.

Each works on a whole column at once (a batch is tens of thousands of rows), so the row
checks in :mod:`connectors.usage.rows` stay array operations, not per-row Python.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def text(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as trimmed text (nulls stay null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return pc.utf8_trim_whitespace(col)


def blank(col: pa.Array) -> np.ndarray:
    """True where a text column is null or empty."""
    return empty(pc.utf8_length(col))


def empty(lengths: pa.Array) -> np.ndarray:
    """True where a text column's length is null or 0."""
    return pc.fill_null(pc.equal(lengths, 0), True).to_numpy(zero_copy_only=False)


def mask(condition: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask; null is False."""
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False)


def any_negative(values: pa.Array) -> bool:
    """Whether any value is below 0 (null and NaN are not)."""
    return bool(pc.any(pc.less(values, 0.0)).as_py())


def strict_dates(raw: pa.Array, fmt: str) -> pa.Array:
    """Text → date32 by ``fmt``; null where it is no date.

    A batch holds few distinct days: each distinct text is parsed once (formatting back, the
    costly part, is then done for a handful of values, not for every row).
    """
    if len(raw) == 0:
        return pa.array([], type=pa.date32())
    encoded = pc.dictionary_encode(raw)
    return pc.take(_parse_dates(encoded.dictionary, fmt), encoded.indices)


def _parse_dates(raw: pa.Array, fmt: str) -> pa.Array:
    """:func:`strict_dates` for every value of ``raw``.

    Arrow's strptime rolls impossible days over (2026-02-30 → 2026-03-02): each parsed value
    is formatted back, and the few that do not read the same (also valid unpadded ones such
    as 2026-3-1) are checked by Python's strptime.
    """
    parsed = pc.strptime(raw, format=fmt, unit="s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, format=fmt), raw)
    suspect = np.flatnonzero(~pc.fill_null(same, True).to_numpy(zero_copy_only=False))
    if len(suspect):
        invalid = np.zeros(len(raw), dtype=bool)
        for i in suspect:
            try:
                datetime.strptime(raw[int(i)].as_py(), fmt)
            except ValueError:
                invalid[i] = True
        if invalid.any():
            parsed = pc.if_else(pa.array(invalid), pa.scalar(None, parsed.type), parsed)
    return pc.cast(parsed, pa.date32())


def floats(texts: list[str | None]) -> list[float | None]:
    out: list[float | None] = []
    for text in texts:
        try:
            value = float(text) if text else None
        except ValueError:
            value = None
        out.append(value if value is None or math.isfinite(value) else math.nan)
    return out
