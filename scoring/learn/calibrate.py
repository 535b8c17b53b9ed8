"""The score as a probability of churn within the horizon, and how well that holds.

A score ranks accounts; a CS lead also asks "how likely is this one to leave in the next 30
days?". The map is logistic in the score (Platt scaling): P(churn) = σ(a + b·score), two
numbers fitted by maximum likelihood on snapshots the card was not fitted on. A fitted card's
score is a linear function of its model's log-odds, so for it the logistic form is exact;
for a hand-written card it is the best such curve.

How well it holds is the expected against the observed churn per decile of the score
(decile 1: the lowest scores). Those expectations are *cross-fitted*: each snapshot's rows
get the map fitted on the other snapshots, so no row judges a map it helped to fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Calibration:
    intercept: float
    slope: float  # per score point (negative: a higher score, less churn)
    horizon_days: int
    rows: int = 0  # fitted on
    churned: int = 0

    def probability(self, score: np.ndarray) -> np.ndarray:
        """P(churn within the horizon) per score (NaN stays NaN)."""
        z = self.intercept + self.slope * np.asarray(score, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.exp(-np.logaddexp(0.0, -z))

    def as_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "slope": self.slope,
            "horizon_days": self.horizon_days,
            "rows": self.rows,
            "churned": self.churned,
        }


def fit_calibration(
    score: np.ndarray, churned: np.ndarray, horizon_days: int, ridge: float = 1e-6
) -> Calibration:
    """Platt scaling by Newton's method (a tiny ridge keeps it finite when the score
    separates perfectly or churn is all or nothing)."""
    s = np.asarray(score, dtype=float)
    y = np.asarray(churned, dtype=float)
    keep = ~np.isnan(s)
    s, y = s[keep], y[keep]
    if not len(s):
        raise ValueError("no scored rows to calibrate on")
    center = 50.0
    x = np.column_stack([np.ones(len(s)), (s - center) / 10.0])  # well conditioned
    rate = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    theta = np.array([np.log(rate / (1 - rate)), 0.0])
    penalty = ridge * len(s) * np.diag([0.0, 1.0])  # on the slope only
    for _ in range(100 if 0 < y.sum() < len(y) else 0):
        p = np.exp(-np.logaddexp(0.0, -(x @ theta)))
        grad = x.T @ (p - y) + penalty @ theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    slope = theta[1] / 10.0
    return Calibration(
        float(theta[0] - slope * center), float(slope), horizon_days, len(s), int(y.sum())
    )


def cross_fitted(
    score: np.ndarray, churned: np.ndarray, group: np.ndarray, horizon_days: int
) -> np.ndarray:
    """Each row's probability from the map fitted on the other groups' rows (snapshots);
    with a single group, from the map fitted on all rows."""
    score = np.asarray(score, dtype=float)
    out = np.full(len(score), np.nan)
    groups = np.unique(group)
    if len(groups) < 2:
        return fit_calibration(score, churned, horizon_days).probability(score)
    for g in groups:
        rows = group == g
        others = ~rows
        if np.asarray(churned)[others].any():
            out[rows] = fit_calibration(score[others], churned[others], horizon_days).probability(
                score[rows]
            )
    return out


def deciles(score: np.ndarray, churned: np.ndarray, expected: np.ndarray) -> list[dict[str, Any]]:
    """Expected against observed churn per score decile: ten groups of equal size in the
    order of the score (1 = the lowest scores), as a Hosmer–Lemeshow table cuts them — a
    score many accounts share spans two groups rather than making one group tiny."""
    score = np.asarray(score, dtype=float)
    keep = ~np.isnan(score) & ~np.isnan(expected)
    s, y, p = score[keep], np.asarray(churned, dtype=float)[keep], expected[keep]
    if not len(s):
        return []
    decile = np.empty(len(s), dtype=int)
    decile[np.argsort(s, kind="stable")] = np.arange(len(s)) * 10 // len(s)
    out = []
    for d in range(10):
        rows = decile == d
        if not rows.any():
            continue
        exp, obs = float(p[rows].mean()), float(y[rows].mean())
        out.append(
            {
                "decile": d + 1,
                "score_min": float(s[rows].min()),
                "score_max": float(s[rows].max()),
                "rows": int(rows.sum()),
                "churned": int(y[rows].sum()),
                "expected": exp,
                "observed": obs,
                "gap": obs - exp,
            }
        )
    return out


def calibration_report(
    score: np.ndarray, churned: np.ndarray, snapshot: np.ndarray, horizon_days: int
) -> dict[str, Any]:
    """The map fitted on every row, and the cross-fitted expected against observed churn per
    decile (with the largest gap)."""
    churned = np.asarray(churned, dtype=bool)
    keep = ~np.isnan(np.asarray(score, dtype=float))
    if not keep.any() or not churned[keep].any():
        return {"map": None, "deciles": [], "max_gap": None}
    model = fit_calibration(score[keep], churned[keep], horizon_days)
    expected = cross_fitted(score[keep], churned[keep], snapshot[keep], horizon_days)
    rows = deciles(score[keep], churned[keep], expected)
    return {
        "map": model.as_dict(),
        "deciles": rows,
        "max_gap": max((abs(r["gap"]) for r in rows), default=None),
        "cross_fitted_by": "snapshot" if len(np.unique(snapshot[keep])) > 1 else "none",
    }
