"""From the selected candidates to a card: points per band and measure weights.

A band's points are its weight of evidence scaled to 0–100 within the measure — the band
where accounts churn most gets 0, the one where they churn least 100 — so a measure's points
rise where churn falls, and ``better`` says which way that is. The weights are the model's
coefficients on those points (non-negative): the card's score, Σ weightⱼ·pointsⱼ / Σ weight,
then ranks accounts exactly as the model's log-odds do when every measure is present, and
a missing measure is treated as the scorer treats it (its weight shared among the present
measures of its group) when the weights are fitted.

``lock`` on a card measure (``true``, ``bands``, ``direction``) is honoured upstream: a
locked normalization enters as the card's own points (:func:`own_points`), a locked
direction fixes the binning's trend, and ``lock: true`` keeps the measure in the card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..fit import card_weights, fill_missing
from ..normalize import numeric_points, percentile_rank
from ..scorecard import Measure, Scorecard
from ..table import LabelColumn
from .binning import Better, Bins
from .candidates import Candidate
from .select import Pool, Progress, Selection, fit_model, impute, scaled, select

NEW_GROUP = "learned"
MIN_SHARE = 0.01  # a measure carrying less of the score than this is not worth reading
NEW_GROUP_LABEL = "Learned from outcomes"


@dataclass
class LearnedMeasure:
    name: str
    candidate: Candidate
    group: str
    coef: float  # the model's weight on points / 100
    better: Better | None
    bins: Bins | None  # None: the card's own normalization, kept (locked)
    points: list[int] = field(default_factory=list)  # per band

    @property
    def kept_normalization(self) -> bool:
        return self.bins is None

    def bands(self) -> list[dict[str, float]]:
        """``bands:`` as the YAML lists them (lowest values first)."""
        assert self.bins is not None and self.bins.categories is None
        edges = [*self.bins.edges.tolist(), None]
        return [
            {"below": e, "points": p} if e is not None else {"points": p}
            for e, p in zip(edges, self.points, strict=True)
        ]

    def categories(self) -> dict[str, int]:
        assert self.bins is not None and self.bins.categories is not None
        return {
            c: p for group, p in zip(self.bins.categories, self.points, strict=True) for c in group
        }

    def table(self) -> list[dict[str, Any]]:
        """Each band: its range, share of rows, churn rate and points (for the explanation)."""
        if self.bins is None:
            return []
        total = self.bins.rows.sum() or 1
        return [
            {
                "band": self.bins.describe(b, self.candidate.unit),
                "share": float(self.bins.rows[b] / total),
                "churn_rate": float(self.bins.events[b] / max(self.bins.rows[b], 1)),
                "points": self.points[b],
            }
            for b in range(self.bins.bands)
        ]


@dataclass
class LearnedCard:
    measures: list[LearnedMeasure]  # in the order they were chosen
    intercept: float
    selection: Selection
    candidates: int  # how many were considered

    def coef(self) -> dict[str, float]:
        return {m.name: m.coef for m in self.measures}


def own_points(
    measure: Measure, numbers: np.ndarray | None, texts: np.ndarray | None, snapshot: np.ndarray
) -> np.ndarray:
    """The card's own points / 100 of a measure from its raw values (a percentile ranks
    within each snapshot's accounts)."""
    if measure.categories is not None:
        assert texts is not None
        column = LabelColumn.from_list(list(texts))
        return column.lookup(measure.categories) / 100.0
    assert numbers is not None
    raw = np.asarray(numbers, dtype=float)
    if not measure.percentile:
        return numeric_points(measure, raw) / 100.0
    out = np.full(len(raw), np.nan)
    for s in np.unique(snapshot):
        rows = snapshot == s
        ref = np.sort(raw[rows][~np.isnan(raw[rows])])
        pct = percentile_rank(raw[rows], ref)
        out[rows] = (100.0 - pct if measure.better == "lower" else pct) / 100.0
    return out


def learn(
    pool: Pool,
    candidates: Sequence[Candidate],
    groups: Sequence[str],
    account: np.ndarray,
    *,
    max_measures: int = 12,
    progress: Progress | None = None,
) -> LearnedCard:
    """Select the measures, fit their weights (missing as the scorer treats it) and their
    bands' points. ``groups`` is the group each candidate would join."""
    selection = select(pool, account, max_measures=max_measures, progress=progress)
    chosen = list(selection.chosen)
    while True:  # a measure left with almost no weight is dropped and the rest refitted
        if not chosen:
            return LearnedCard([], 0.0, selection, len(pool))
        intercept, coef = _weights(pool, chosen, [groups[c] for c in chosen])
        share = coef / max(float(coef.sum()), 1e-12)
        small = [
            c for c, s in zip(chosen, share, strict=True) if s < MIN_SHARE and c not in pool.forced
        ]
        if not small:
            break
        weakest = min(small, key=lambda c: share[chosen.index(c)])
        selection.left_out[pool.names[weakest]] = f"under {MIN_SHARE:.0%} of the score"
        chosen = [c for c in chosen if c != weakest]
    measures = []
    for j, c in enumerate(chosen):
        bins = pool.bins[c]
        cand = candidates[c]
        points = [] if bins is None else [round(float(100 * p)) for p in scaled(bins.woe())]
        better = None if bins is None or bins.categories is not None else bins.better
        measures.append(
            LearnedMeasure(cand.name, cand, groups[c], float(coef[j]), better, bins, points)
        )
    return LearnedCard(measures, intercept, selection, len(pool))


def _weights(pool: Pool, chosen: Sequence[int], groups: Sequence[str]) -> tuple[float, np.ndarray]:
    """(intercept, weight per chosen candidate) of the model on their points, a missing
    point filled as the scorer shares a missing measure's weight (among the present
    measures of its group, else all) under the weights found so far."""
    x = np.column_stack([pool.points(c) for c in chosen])
    model = fit_model(pool.design(chosen, impute(x)), pool.y)
    for _ in range(2):
        w = np.maximum(pool.coefficients(chosen, model.coef), 1e-9)
        present = ~np.isnan(x)
        overall = np.where(present, x, 0.0) @ w / np.maximum(present @ w, 1e-12)
        filled = fill_missing(x * 100.0, list(groups), w.tolist(), overall * 100.0) / 100.0
        model = fit_model(pool.design(chosen, filled), pool.y)
    return model.intercept, pool.coefficients(chosen, model.coef)


def group_for(candidate: Candidate, card: Scorecard, families: Mapping[str, str]) -> str:
    """A re-learned measure keeps its group; a new one joins the group of the card's measures
    on the same usage metric or field, else the new ``learned`` group."""
    if candidate.measure is not None:
        return card.measures[candidate.measure].group
    return families.get(candidate.family, NEW_GROUP)


def weights(
    learned: LearnedCard, card: Scorecard
) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """(measure weights, group weights, groups of the measures) for the fitted card: every
    card measure (0 where not chosen) and every learned one, scaled to the card's totals."""
    coef = dict.fromkeys(card.measures, 0.0)
    group_of = {n: m.group for n, m in card.measures.items()}
    for m in learned.measures:
        coef[m.name] = m.coef
        group_of[m.name] = m.group
    group_w = {g: grp.weight for g, grp in card.groups.items()}
    if any(g not in group_w for g in group_of.values()):
        group_w[NEW_GROUP] = 0.0
    current = {n: m.weight for n, m in card.measures.items()}
    if sum(coef.values()) <= 0:
        raise ValueError("no candidate predicts churn on the fitting snapshots")
    measure_w, groups_w = card_weights(coef, group_of, current, group_w)
    return measure_w, groups_w, group_of
