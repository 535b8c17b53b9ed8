"""The backtest's tables on labeled rows: churn by grade, decile and score bin, each
measure's own AUC, grade flapping, and the per-snapshot summary (split from
:mod:`scoring.backtest`, which re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .counted import auc_pair
from .grades import BANDS, INSUFFICIENT
from .ranking import midranks, roc_auc

if TYPE_CHECKING:
    from .backtest import Labeled

GRADE_ORDER = (*BANDS, INSUFFICIENT)
CALIBRATION_BINS = tuple(range(0, 101, 10))  # score bins [0,10) … [90,100]


# -- tables -----------------------------------------------------------------------------------
def _rate_row(name: str, churned: np.ndarray, base: float, **extra: Any) -> dict[str, Any]:
    n = len(churned)
    hits = int(churned.sum())
    rate = hits / n if n else float("nan")
    return {
        "bucket": name,
        **extra,
        "rows": n,
        "churned": hits,
        "churn_rate": rate,
        "lift": rate / base if n and base > 0 else float("nan"),
    }


def by_grade(data: Labeled) -> list[dict[str, Any]]:
    base = float(data.churned.mean()) if len(data) else float("nan")
    return [
        _rate_row(g, data.churned[data.grade == g], base)
        for g in GRADE_ORDER
        if (data.grade == g).any()
    ]


def by_decile(data: Labeled) -> list[dict[str, Any]]:
    """Decile 1 holds the lowest scores (most at risk); equal scores share a decile."""
    scored = data.scored
    score, churned = data.score[scored], data.churned[scored]
    if not len(score):
        return []
    base = float(churned.mean())
    decile = np.minimum(((midranks(score) - 0.5) / len(score) * 10).astype(int), 9)
    rows = []
    for d in range(10):
        pick = decile == d
        if pick.any():
            rows.append(
                _rate_row(
                    f"{d + 1}",
                    churned[pick],
                    base,
                    score_min=float(score[pick].min()),
                    score_max=float(score[pick].max()),
                )
            )
    return rows


def calibration(data: Labeled, edges: Sequence[float] = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Observed churn rate per score bin (the last bin includes 100)."""
    scored = data.scored
    score, churned = data.score[scored], data.churned[scored]
    base = float(churned.mean()) if len(churned) else float("nan")
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        pick = bins == b
        if pick.any():
            out.append(
                _rate_row(
                    f"{edges[b]:g}–{edges[b + 1]:g}",
                    churned[pick],
                    base,
                    score_from=float(edges[b]),
                    score_to=float(edges[b + 1]),
                )
            )
    return out


def measure_power(
    data: Labeled,
    labels: Mapping[str, str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Each measure's own AUC (risk = 100 − its points) on the rows where it is present.

    ``lower_points_more_churn`` is the direction the scorecard assumes; a measure whose AUC
    is below 0.5 predicts churn the other way round (``strength`` = max(AUC, 1 − AUC)).
    """
    out = []
    for j, name in enumerate(data.measure_names):
        column = data.points[:, j]
        present = ~np.isnan(column)
        auc = (
            roc_auc(100.0 - column[present], data.churned[present])
            if present.any()
            else float("nan")
        )
        out.append(
            {
                "measure": name,
                "label": (labels or {}).get(name, name),
                "weight": (weights or {}).get(name),
                "present": float(present.mean()) if len(present) else 0.0,
                "auc": auc,
                "strength": max(auc, 1 - auc) if np.isfinite(auc) else float("nan"),
                "lower_points_more_churn": bool(auc >= 0.5) if np.isfinite(auc) else None,
            }
        )
    return out


def flapping(data: Labeled) -> dict[str, Any]:
    """Grade changes between consecutive snapshots of the same account (scored both times),
    and reversals: a change undone at the next snapshot (red → yellow → red)."""
    graded = data.grade != INSUFFICIENT
    key = data.account * (len(data.dates) + 1) + data.snapshot
    order = np.argsort(key, kind="stable")
    acc, snap = data.account[order], data.snapshot[order]
    grade, ok = data.grade[order], graded[order]
    same = (acc[1:] == acc[:-1]) & (snap[1:] == snap[:-1] + 1) & ok[1:] & ok[:-1]
    changed = same & (grade[1:] != grade[:-1])
    # reversal: changes at consecutive pairs i and i+1 that go back to where they began
    rev = changed[1:] & changed[:-1] & same[1:] & same[:-1] & (grade[2:] == grade[:-2])
    pairs = int(same.sum())
    flappers = np.unique(acc[2:][rev]) if rev.any() else np.empty(0)
    changers = np.unique(acc[1:][changed])
    accounts = len(np.unique(acc[1:][same])) if pairs else 0
    return {
        "pairs": pairs,
        "changes": int(changed.sum()),
        "change_rate": int(changed.sum()) / pairs if pairs else float("nan"),
        "reversals": int(rev.sum()),
        "accounts_compared": accounts,
        "accounts_changed": len(changers),
        "accounts_flapping": len(flappers),
        "flapping_share": len(flappers) / accounts if accounts else float("nan"),
    }


def per_snapshot(data: Labeled) -> list[dict[str, Any]]:
    """Per snapshot date: accounts, churners, AUC (every row; and scored only), the
    insufficient rows and their churn rate, score quantiles."""
    out = []
    for k, day in enumerate(data.dates):
        pick = data.snapshot == k
        score, churned = data.score[pick], data.churned[pick]
        scored = ~np.isnan(score)
        quant = (
            np.percentile(score[scored], [10, 25, 50, 75, 90]).tolist()
            if scored.any()
            else [float("nan")] * 5
        )
        headline, scored_only = auc_pair(score, churned)
        missing = ~scored
        out.append(
            {
                "date": day.isoformat(),
                "accounts": int(pick.sum()),
                "churned": int(churned.sum()),
                "churn_rate": float(churned.mean()) if pick.any() else float("nan"),
                "insufficient_rows": int(missing.sum()),
                "insufficient_churned": int(churned[missing].sum()),
                "insufficient_churn_rate": (
                    float(churned[missing].mean()) if missing.any() else float("nan")
                ),
                "insufficient_share": float(missing.mean()) if pick.any() else float("nan"),
                "roc_auc": headline,
                "roc_auc_scored_only": scored_only,
                "score_quantiles": dict(
                    zip(("p10", "p25", "p50", "p75", "p90"), quant, strict=True)
                ),
                "grades": {g: int((data.grade[pick] == g).sum()) for g in GRADE_ORDER},
            }
        )
    return out


def score_histograms(data: Labeled, bins: int = 20) -> dict[str, Any]:
    """Score histograms of churners and the rest (for the report)."""
    edges = np.linspace(0, 100, bins + 1)
    scored = data.scored
    s, y = data.score[scored], data.churned[scored]
    return {
        "edges": edges.tolist(),
        "churned": np.histogram(s[y], edges)[0].tolist(),
        "retained": np.histogram(s[~y], edges)[0].tolist(),
    }
