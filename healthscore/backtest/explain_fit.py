"""A learned card's changes, explained as points lost.

A measure's share of the score is what it can cost an account at most: a measure carrying
18 % of the score takes 18 points from an account in its worst band, and (100 − points) % of
that from one in another band. So each measure of the current and the fitted card is
described by its status (new, re-learned, kept as written, left out), its direction, its
largest possible loss before and after, and — for learned bands — the points an account in
each band loses, beside that band's share of accounts and churn rate on the fitting rows.
"""

from __future__ import annotations

from typing import Any

from scoring import Scorecard, describe_measure
from scoring.fit import current_shares
from scoring.learn.card import LearnedCard


def shares(card: Scorecard) -> dict[str, float]:
    """Each measure's share of the score (all measures present), in points out of 100."""
    names = list(card.measures)
    groups = [card.measures[n].group for n in names]
    values = current_shares(
        groups, [card.measures[n].weight for n in names], [card.groups[g].weight for g in groups]
    )
    return {n: 100.0 * float(v) for n, v in zip(names, values, strict=True)}


def explain_changes(
    current: Scorecard, fitted: Scorecard, learned: LearnedCard
) -> list[dict[str, Any]]:
    """One row per measure of either card, the fitted card's heaviest first."""
    before, after = shares(current), shares(fitted)
    chosen = {m.name: m for m in learned.measures}
    rows = []
    for name, measure in fitted.measures.items():
        old = current.measures.get(name)
        m = chosen.get(name)
        if old is None:
            status = "new"
        elif m is None:
            status = "left out" if after[name] == 0 else "unchanged"
        elif m.kept_normalization:
            status = "kept as written" if old.lock is True else "reweighted"
        else:
            status = "re-learned"
        share = after[name]
        bands = []
        if m is not None and not m.kept_normalization:
            bands = [
                {**row, "points_lost": round(share * (100 - row["points"]) / 100, 1)}
                for row in m.table()
            ]
        rows.append(
            {
                "measure": name,
                "label": measure.label,
                "status": status,
                "old_weight": 0.0 if old is None else old.weight,
                "weight": measure.weight,
                "old_max_loss": round(before.get(name, 0.0), 1),
                "max_loss": round(share, 1),
                "old": None if old is None else describe_measure(old),
                "new": describe_measure(measure),
                "better": measure.better,
                "flipped": old is not None and m is not None and old.better != measure.better,
                "lock": None if old is None else old.lock,
                "bands": bands,
            }
        )
    rows.sort(key=lambda r: (-r["max_loss"], -r["old_max_loss"]))
    return rows
