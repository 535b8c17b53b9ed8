"""The vectorized scorer: loop over measures (a handful), never over accounts.

Weights renormalize over the measures an account has: a missing measure's weight goes to the
present measures of its group, an empty group's weight to the other groups. Coverage is the
share of the nominal weight that was present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .scorecard import Scorecard
from .table import SignalTable

GRADES = ("red", "yellow", "green", "insufficient_data")


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of every account in a table; arrays are aligned with ``account_ids``."""

    card: Scorecard
    account_ids: list[str]
    measure_names: list[str]
    raw: np.ndarray  # accounts × measures: the measured value (NaN = missing)
    points: np.ndarray  # accounts × measures: 0–100 points (NaN = missing)
    lost: np.ndarray  # accounts × measures: points lost against the maximum (0 if missing)
    groups: dict[str, np.ndarray]  # group → sub-score (NaN when the group is empty)
    score: np.ndarray  # NaN when coverage is below the floor
    coverage: np.ndarray
    grade: np.ndarray  # str array

    def index(self, account_id: str) -> int:
        return self.account_ids.index(account_id)


def measure_values(card: Scorecard, table: SignalTable, as_of: datetime) -> np.ndarray:
    """The raw value of every measure for every account (accounts × measures)."""
    now = as_of.timestamp()
    out = np.empty((len(table), len(card.measures)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, measure in enumerate(card.measures.values()):
            value = table.column(measure.metric).astype(float)
            if measure.days_since:
                value = (now - value) / 86400.0
            if measure.per:
                value = value / table.column(measure.per)
            value[~np.isfinite(value)] = np.nan  # x/0, inf and friends count as missing
            out[:, j] = value
    return out


def normalize(card: Scorecard, raw: np.ndarray) -> np.ndarray:
    """Clamped linear scale per measure: ``from`` → 0 points, ``to`` → 100 points."""
    start = np.array([m.scale.start for m in card.measures.values()])
    end = np.array([m.scale.end for m in card.measures.values()])
    with np.errstate(invalid="ignore"):
        return np.clip((raw - start) / (end - start), 0.0, 1.0) * 100.0


def score(card: Scorecard, table: SignalTable, as_of: datetime) -> ScoreBatch:
    names = list(card.measures)
    raw = measure_values(card, table, as_of)
    points = normalize(card, raw)
    present = ~np.isnan(points)
    filled = np.where(present, points, 0.0)
    weights = np.array([m.weight for m in card.measures.values()])
    n = len(table)

    group_names = list(card.groups)
    group_weight = np.array([card.groups[g].weight for g in group_names])
    member = np.array([[m.group == g for g in group_names] for m in card.measures.values()],
                      dtype=float)  # measures × groups
    present_w = present * weights  # accounts × measures
    group_wsum = present_w @ member  # accounts × groups
    nominal_group_wsum = weights @ member  # groups
    with np.errstate(invalid="ignore", divide="ignore"):
        group_score = ((filled * present_w) @ member) / group_wsum
    group_present = group_wsum > 0
    active_group_w = group_present * group_weight
    total_group_w = active_group_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = (np.where(group_present, group_score, 0.0) * group_weight).sum(axis=1) \
            / total_group_w
        # effective weight of each measure in each account's score (sums to 1 when scored)
        share_in_group = present_w / (group_wsum @ member.T)
        group_share = (active_group_w / total_group_w[:, None]) @ member.T
    effective = np.nan_to_num(share_in_group * group_share)
    lost = effective * (100.0 - filled)

    with np.errstate(invalid="ignore", divide="ignore"):
        nominal = (weights / (nominal_group_wsum @ member.T)) * (
            (group_weight / group_weight.sum()) @ member.T)
    nominal = np.nan_to_num(nominal)
    coverage = present @ nominal

    insufficient = (coverage < card.coverage_floor) | ~np.isfinite(overall)
    overall = np.where(insufficient, np.nan, overall)
    rounded = np.round(np.nan_to_num(overall))
    grade = np.where(rounded <= card.grades.red, "red",
                     np.where(rounded <= card.grades.yellow, "yellow", "green")).astype(object)
    grade[insufficient] = "insufficient_data"
    if n == 0:
        grade = np.array([], dtype=object)
    return ScoreBatch(
        card=card, account_ids=list(table.account_ids), measure_names=names, raw=raw,
        points=points, lost=lost,
        groups={g: group_score[:, k] for k, g in enumerate(group_names)},
        score=overall, coverage=coverage, grade=grade,
    )
