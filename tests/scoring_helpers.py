"""Small builders for scorer tests: scorecards from dicts, tables from per-account dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from scoring import LabelColumn, ScoreBatch, Scorecard, SignalTable, score
from scoring.reference import plain_reference, row_of, score_account

AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def card(
    measures: Mapping[str, Mapping[str, Any]],
    *,
    groups: Mapping[str, float] | None = None,
    **extra: Any,
) -> Scorecard:
    """A scorecard; measures default to group 'g' and weight 1."""
    groups = groups or {"g": 1.0}
    body = {
        name: {"label": name.replace("_", " ").capitalize(), "group": "g", "weight": 1, **spec}
        for name, spec in measures.items()
    }
    return Scorecard.model_validate(
        {
            "groups": {g: {"label": g, "weight": w} for g, w in groups.items()},
            "measures": body,
            **extra,
        }
    )


def table(rows: Sequence[Mapping[str, Any]], *, observed: float | None = None) -> SignalTable:
    """Accounts a0, a1, … from dicts of metric → number (or str for a label, None missing)."""
    n = len(rows)
    names = sorted({k for r in rows for k in r})
    columns: dict[str, np.ndarray] = {}
    labels: dict[str, LabelColumn] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if any(isinstance(v, str) for v in values):
            labels[name] = LabelColumn.from_list([None if v is None else str(v) for v in values])
        else:
            columns[name] = np.array([np.nan if v is None else float(v) for v in values])
    stamp = AS_OF.timestamp() if observed is None else observed
    return SignalTable(
        [f"a{i}" for i in range(n)],
        columns,
        observed={k: np.full(n, stamp) for k in columns},
        labels=labels,
    )


def score_both(
    c: Scorecard, rows: Sequence[Mapping[str, Any]], previous: str | None
) -> tuple[ScoreBatch, list[dict[str, Any]]]:
    """The vectorized batch of ``rows`` and the plain reference scorer's result for each row
    (given the batch's percentile reference), both with ``previous`` as every prior grade."""
    t = table(rows)
    batch = score(c, t, AS_OF, previous_grades=np.array([previous] * len(rows), dtype=object))
    reference = plain_reference(batch.reference)
    return batch, [
        score_account(c, row_of(t, i), AS_OF, previous_grade=previous, reference=reference)
        for i in range(len(rows))
    ]
