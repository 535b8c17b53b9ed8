"""Which segment each account falls in: the first segment whose rules all hold, else default."""

from __future__ import annotations

import numpy as np

from .scorecard import Condition, Scorecard, Segment
from .table import SignalTable


def condition_holds(cond: Condition, table: SignalTable) -> np.ndarray:
    """A boolean per account; a missing value never matches."""
    ok = np.ones(len(table), dtype=bool)
    if cond.is_ is not None or cond.in_ is not None:
        wanted = [cond.is_] if cond.is_ is not None else list(cond.in_ or [])
        numbers = table.column(cond.field)
        texts = [w for w in wanted if isinstance(w, str)]
        match = table.label(cond.field).matches(texts) if texts else np.zeros(len(table), bool)
        for w in wanted:
            if isinstance(w, bool):
                match |= numbers == (1.0 if w else 0.0)
            elif isinstance(w, (int, float)):
                match |= numbers == float(w)
        ok &= match
    if cond.below is not None or cond.at_least is not None:
        numbers = table.column(cond.field)
        with np.errstate(invalid="ignore"):
            if cond.below is not None:
                ok &= numbers < cond.below
            if cond.at_least is not None:
                ok &= numbers >= cond.at_least
    return ok


def segment_matches(segment: Segment, table: SignalTable) -> np.ndarray:
    held = condition_holds(segment.when[0], table)
    for cond in segment.when[1:]:
        held &= condition_holds(cond, table)
    return held


def assign_segments(card: Scorecard, table: SignalTable) -> np.ndarray:
    """Index into ``card.segment_names`` per account (the last index is the default).

    ``table`` must already hold the derived metrics the rules name.
    """
    chosen = np.full(len(table), len(card.segments), dtype=np.int16)
    undecided = np.ones(len(table), dtype=bool)
    for k, segment in enumerate(card.segments):
        hit = undecided & segment_matches(segment, table)
        chosen[hit] = k
        undecided &= ~hit
    return chosen
