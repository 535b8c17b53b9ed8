"""Turn a ScoreBatch row into words: top reasons as points lost, values in their units."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .scorecard import Measure
from .scorer import ScoreBatch

MIN_POINTS_LOST = 1.0  # a reason costing less than a point is noise on the Account page


@dataclass(frozen=True)
class Reason:
    measure: str
    label: str
    value: str
    points_lost: float

    def __str__(self) -> str:
        return f"{self.label} {self.value} (−{round(self.points_lost)})"

    def as_dict(self) -> dict[str, object]:
        return {"measure": self.measure, "label": self.label, "value": self.value,
                "points_lost": round(self.points_lost, 2)}


def format_value(measure: Measure, raw: float) -> str:
    if math.isnan(raw):
        return "missing"
    if measure.unit == "%":
        return f"{raw * 100:.0f}%"
    if measure.unit == "pct":
        return f"{raw:.0f}%"
    if measure.unit == "days":
        return f"{raw:.0f} days"
    if measure.unit == "x":
        return f"{raw:.2f}×"
    return f"{raw:.3g}"


def top_reason_indices(batch: ScoreBatch, k: int = 3) -> np.ndarray:
    """Column indices of each account's ``k`` most costly measures (vectorized)."""
    k = min(k, batch.lost.shape[1])
    return np.argsort(-batch.lost, axis=1, kind="stable")[:, :k]


def reasons_for(batch: ScoreBatch, row: int, order: np.ndarray) -> list[Reason]:
    measures = list(batch.card.measures.values())
    out = []
    for j in order:
        lost = float(batch.lost[row, j])
        if lost < MIN_POINTS_LOST:
            break
        out.append(Reason(batch.measure_names[j], measures[j].label,
                          format_value(measures[j], float(batch.raw[row, j])), lost))
    return out


def missing_measures(batch: ScoreBatch, row: int) -> list[str]:
    return [batch.card.measures[n].label for j, n in enumerate(batch.measure_names)
            if math.isnan(batch.points[row, j])]
