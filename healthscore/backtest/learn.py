"""``healthscore fit`` learns the card: measures, bands and weights, from outcomes.

The steps (the numbers are :mod:`scoring.learn`'s; this module wires them to the snapshots):

1. the time split of ``healthscore fit --weights-only``: the earlier snapshots fit, the later
   ones judge (fitting snapshots whose horizon reaches into the judged ones are dropped);
2. candidates from everything the store holds (:func:`inventory_of`), each read at every
   fitting snapshot by scoring a temporary card of them through the point-in-time scorer —
   one usage metric's candidates at a time, so one metric's days are in memory at once;
3. bands per candidate, selection, weights (:func:`scoring.learn.card.learn`);
4. the fitted YAML written beside the live one (:mod:`healthscore.backtest.card_yaml`), loaded
   and validated like any configuration;
5. the current and the fitted card scored on the judged snapshots by the same scorer, their
   ROC AUC side by side, and the fitted score calibrated there as a churn probability.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from healthscore.backtest.card_yaml import CardEdits, with_churn_model, write_card
from healthscore.backtest.explain_fit import explain_changes, shares
from healthscore.backtest.held_out import compare_held_out, compared_rows, held_out_detail
from healthscore.backtest.inventory import CardScorer
from healthscore.backtest.run import load_fitted_card, snapshot_of
from healthscore.core.errors import ConfigError
from healthscore.core.yaml_edit import unified_diff
from scoring import Scorecard
from scoring.backtest import Labeled, json_safe, label
from scoring.fit import Holdout, TimeSplit, band_thresholds, time_split
from scoring.learn.binning import fit_bins
from scoring.learn.calibrate import calibration_report
from scoring.learn.candidates import (
    Candidate,
    Inventory,
    candidate_card,
    chunks,
    family_of,
    generate,
    values_of,
)
from scoring.learn.card import LearnedCard, group_for, learn, own_points, weights
from scoring.learn.select import Pool

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# -- candidates at the fitting snapshots --------------------------------------------------------
@dataclass
class Frame:
    """Candidate values per (fitting snapshot, account) row."""

    snapshot: np.ndarray  # int: index into the fitting dates
    account: np.ndarray  # int: index into ``account_ids``
    account_ids: list[str]
    churned: np.ndarray  # bool: churned within the horizon after the snapshot
    numbers: dict[str, np.ndarray]  # candidate → float32 per row (NaN missing)
    texts: dict[str, np.ndarray]  # candidate → object per row (None missing)

    def __len__(self) -> int:
        return len(self.snapshot)


def _churn_days(ids: Sequence[str], churn: Mapping[str, date | datetime | None]) -> np.ndarray:
    out = np.full(len(ids), np.inf)
    for i, a in enumerate(ids):
        when = churn.get(a)
        if when is not None:
            out[i] = (when.date() if isinstance(when, datetime) else when).toordinal()
    return out


def collect(
    scorer: CardScorer,
    candidates: Sequence[Candidate],
    days: Sequence[date],
    churn: Mapping[str, date | datetime | None],
    horizon: timedelta,
    say: Say = _quiet,
) -> Frame:
    """Every candidate's value at every fitting snapshot, one chunk (usage metric) at a time;
    accounts that had churned by a snapshot are left out of it, as in the backtest."""
    numbers: dict[str, list[np.ndarray]] = {}
    texts: dict[str, list[np.ndarray]] = {}
    scored: list[list[str]] = []  # the accounts each snapshot scored (the first chunk's)
    alive: list[np.ndarray] = []  # of those, the ones not churned by the snapshot
    parts = chunks(candidates)
    for k, chunk in enumerate(parts, 1):
        say(f"reading candidates on {chunk[0].family} ({k}/{len(parts)})")
        numeric = [c for c in chunk if c.kind == "number"]
        for s, (moment, batch) in enumerate(scorer(candidate_card(chunk), days)):
            if k == 1:
                scored.append(list(batch.account_ids))
                alive.append(_churn_days(batch.account_ids, churn) > moment.date().toordinal())
            elif list(batch.account_ids) != scored[s]:
                raise ValueError("candidate chunks scored different accounts at a snapshot")
            values, labels = values_of(batch, chunk)
            for j, cand in enumerate(numeric):
                numbers.setdefault(cand.name, []).append(values[alive[s], j])
            for name, column in labels.items():
                texts.setdefault(name, []).append(column[alive[s]])
    index: dict[str, int] = {}
    account, snapshot, churned = [], [], []
    for s, (ids, keep, day) in enumerate(zip(scored, alive, days, strict=True)):
        ids = [a for a, k in zip(ids, keep, strict=True) if k]
        churned.append(_churn_days(ids, churn) <= day.toordinal() + horizon.days)
        snapshot.append(np.full(len(ids), s, np.int32))
        account.append(np.array([index.setdefault(a, len(index)) for a in ids], np.int64))
    return Frame(
        np.concatenate(snapshot),
        np.concatenate(account),
        list(index),
        np.concatenate(churned),
        {n: np.concatenate(v) for n, v in numbers.items()},
        {n: np.concatenate(v) for n, v in texts.items()},
    )


def build_pool(
    frame: Frame,
    candidates: Sequence[Candidate],
    card: Scorecard,
    say: Say,
    unbinned: dict[str, str],
) -> Pool:
    """Bands of every candidate on the fitting rows; a card measure locked to its
    normalization enters with its own points instead. Candidates without bands are left
    out (named in ``unbinned``)."""
    say(f"binning {len(candidates)} candidates on {len(frame)} rows")
    y = frame.churned.astype(float)
    bins, codes, fixed, forced = [], [], [], {}
    current = shares(card)
    for c, cand in enumerate(candidates):
        measure = card.measures.get(cand.measure) if cand.measure else None
        lock = None if measure is None else measure.lock
        numbers, texts = frame.numbers.get(cand.name), frame.texts.get(cand.name)
        values = texts if cand.kind == "category" else numbers
        if measure is not None and lock in (True, "bands"):
            bins.append(None)
            codes.append(None)
            fixed.append(own_points(measure, numbers, texts, frame.snapshot))
        else:
            direction = measure.better if measure is not None and lock == "direction" else None
            found = None
            if values is not None:
                found = fit_bins(
                    cand.name, values, y, category=cand.kind == "category", direction=direction
                )
            bins.append(found)
            codes.append(None if found is None else found.codes(values))
            fixed.append(None)
        if lock is True:
            forced[c] = current[cand.name] / 100.0
    keep = [c for c in range(len(candidates)) if bins[c] is not None or fixed[c] is not None]
    for c in set(range(len(candidates))) - set(keep):
        unbinned[candidates[c].name] = "no bands (too few values, or no split worth one)"
    return Pool(
        [candidates[c].name for c in keep],
        y,
        [bins[c] for c in keep],
        [codes[c] for c in keep],
        [fixed[c] for c in keep],
        {keep.index(c): share for c, share in forced.items() if c in keep},
    )


# -- the whole fit ------------------------------------------------------------------------------
@dataclass
class LearnedFit:
    learned: LearnedCard
    text: str
    card: Scorecard
    diff: str
    explanation: list[dict[str, Any]]
    split: TimeSplit
    auc_default: float
    auc_fitted: float
    rows_compared: int
    roc_fitted: dict[str, list[float]]
    roc_default: dict[str, list[float]]
    calibration: dict[str, Any]
    train_rows: int
    train_churned: int
    test_rows: int
    test_churned: int
    bands: tuple[int, int] | None = None
    seconds: float = 0.0
    judged: Labeled | None = None  # the fitted card's rows on the judged snapshots
    compared: np.ndarray | None = None  # of those, the rows both cards have (the AUCs')
    held_out: dict[str, Any] | None = None  # scored-only AUCs, insufficient rows per card

    def as_dict(self, path: str) -> dict[str, Any]:
        return json_safe(
            {
                "learned": True,
                "auc_default": self.auc_default,
                "auc_fitted": self.auc_fitted,
                "rows_compared": self.rows_compared,
                "held_out": self.held_out or {},
                "train_snapshots": self.split.train_dates,
                "test_snapshots": self.split.test_dates,
                "dropped_snapshots": self.split.dropped_dates,
                "overlap_snapshots": self.split.overlap_dates,
                "train_rows": self.train_rows,
                "train_churned": self.train_churned,
                "test_rows": self.test_rows,
                "test_churned": self.test_churned,
                "candidates": self.learned.candidates,
                "selection": self.learned.selection.trace,
                "left_out": self.learned.selection.left_out,
                "measures": self.explanation,
                "weight_changes": [
                    {
                        "measure": f"measure {m['measure']}",
                        "old": m["old_weight"],
                        "new": m["weight"],
                    }
                    for m in self.explanation
                ],
                "calibration": self.calibration,
                "diff": self.diff,
                "path": path,
                "roc_fitted": self.roc_fitted,
                "roc_default": self.roc_default,
                "bands": self.bands,
                "kept_current": False,
                "fitted_version": self.card.version,
                "seconds": self.seconds,
            }
        )


def learn_card(
    card: Scorecard,
    config_text: str,
    config_path: str,
    data: Labeled,
    scorer: CardScorer,
    inventory: Inventory,
    *,
    holdout: Holdout = 0.34,
    max_measures: int = 12,
    bands: bool = False,
    say: Say = _quiet,
) -> LearnedFit:
    """Learn a card on the earlier snapshots of ``data`` (the current card's backtest rows),
    write it into the YAML text, and judge both cards on the later snapshots."""
    started = time.perf_counter()
    try:
        split = time_split(data, holdout)
    except ValueError as exc:
        raise ConfigError(f"cannot fit: {exc}") from None
    use = split.train & data.scored
    if data.churned[split.train].sum() == 0 or data.churned[split.train].all():
        raise ConfigError(
            "cannot fit: the fitting snapshots need both churned and retained accounts; got "
            f"{int(data.churned[split.train].sum())} churned of {int(split.train.sum())}"
        )
    if sum(shares(card)[n] for n, m in card.measures.items() if m.lock is True) > 99:
        raise ConfigError("cannot fit: every measure is locked (lock: true); nothing to learn")
    train_days = [date.fromisoformat(d) for d in split.train_dates]
    test_days = [date.fromisoformat(d) for d in split.test_dates]
    candidates = generate(inventory, card)
    say(
        f"{len(candidates)} candidate measures ({len(card.measures)} of the card's, "
        f"{len(inventory.usage_metrics)} usage metrics, "
        f"{len(inventory.numbers) + len(inventory.dates) + len(inventory.texts)} fields)"
    )
    frame = collect(scorer, candidates, train_days, data.churn_dates, data.horizon, say)
    unbinned: dict[str, str] = {}
    pool = build_pool(frame, candidates, card, say, unbinned)
    by_name = {c.name: c for c in candidates}
    pooled = [by_name[n] for n in pool.names]
    families: dict[str, str] = {}  # usage metric or field → the group of its heaviest measure
    for m in sorted(card.measures.values(), key=lambda m: m.weight):
        families[family_of(card, m.metric)] = m.group
    groups = [group_for(c, card, families) for c in pooled]

    def step(k: int, name: str, loss: float) -> None:
        say(f"measure {k}: {by_name[name].label} (held-out log loss {loss:.4f})")

    learned = learn(pool, pooled, groups, frame.account, max_measures=max_measures, progress=step)
    learned.selection.left_out.update(unbinned)
    try:
        measure_w, group_w, _ = weights(learned, card)
    except ValueError as exc:
        raise ConfigError(f"cannot fit: {exc}") from None
    derived: dict[str, Any] = {}
    for m in learned.measures:
        derived.update(m.candidate.derived)
    edits = CardEdits(learned.measures, measure_w, group_w, horizon_days=data.horizon.days)
    text = write_card(config_text, config_path, card, edits, derived)
    fitted = load_fitted_card(text, config_path)
    say(f"judging both cards on {len(test_days)} later snapshots")
    judged = days_scored(scorer, fitted, train_days + test_days if bands else test_days, data)
    thresholds = None
    if bands:
        train_rows = judged.take(np.flatnonzero(judged.snapshot < len(train_days)))
        thresholds = band_thresholds(train_rows.score, train_rows.churned)
        if thresholds is not None:
            edits.grades = {"red": thresholds[0], "yellow": thresholds[1]}
            text = write_card(config_text, config_path, card, edits, derived)
            fitted = load_fitted_card(text, config_path)
            judged = days_scored(scorer, fitted, test_days, data)
        else:
            judged = judged.take(np.flatnonzero(judged.snapshot >= len(train_days)))
    current = data.take(
        np.flatnonzero(np.isin(data.snapshot, [data.dates.index(d) for d in test_days]))
    )
    auc_default, auc_fitted, rows, roc, roc_default = compare_held_out(current, judged)
    calibration = calibration_report(
        judged.score, judged.churned, judged.snapshot, data.horizon.days
    )
    with_model = with_churn_model(text, config_path, card, calibration, test_days)
    if with_model != text:  # the fitted card carries its calibration as its churn_model
        text, fitted = with_model, load_fitted_card(with_model, config_path)
    test = split.test & data.scored
    return LearnedFit(
        learned,
        text,
        fitted,
        unified_diff(config_text, text, config_path, f"{config_path} (fitted)"),
        explain_changes(card, fitted, learned),
        split,
        auc_default,
        auc_fitted,
        rows,
        roc,
        roc_default,
        calibration,
        int(use.sum()),
        int(data.churned[use].sum()),
        int(test.sum()),
        int(data.churned[test].sum()),
        thresholds,
        time.perf_counter() - started,
        judged,
        compared_rows(current, judged)[1],
        held_out_detail(current, judged),
    )


def days_scored(
    scorer: CardScorer, card: Scorecard, days: Sequence[date], data: Labeled
) -> Labeled:
    """A card's labeled rows at some snapshot dates."""
    snapshots = [snapshot_of(moment.date(), batch) for moment, batch in scorer(card, days)]
    return label(snapshots, data.churn_dates, data.horizon, list(card.measures))


# -- churn probability per account ---------------------------------------------------------------
def churn_probabilities(scorer: CardScorer, fit: LearnedFit, day: date) -> list[dict[str, Any]]:
    """Every account's fitted score as of ``day`` and its calibrated probability of churning
    within the horizon (accounts gone by then left out; none without a calibration)."""
    from scoring.learn.calibrate import Calibration

    found = fit.calibration.get("map")
    if not found:
        return []
    calibration = Calibration(**found)
    out = []
    for _, batch in scorer(fit.card, [day]):
        p = calibration.probability(batch.score)
        for i, account in enumerate(batch.account_ids):
            scored = not np.isnan(batch.score[i])
            out.append(
                {
                    "account_id": account,
                    "score": round(float(batch.score[i]), 1) if scored else None,
                    "grade": str(batch.grade[i]),
                    "churn_probability": round(float(p[i]), 4) if scored else None,
                }
            )
    out.sort(key=lambda r: -(r["churn_probability"] or 0.0))
    return out


def write_probabilities(rows: Sequence[Mapping[str, Any]], path: Any) -> None:
    import csv
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["account_id", "score", "grade", "churn_probability"]
        )
        writer.writeheader()
        writer.writerows(rows)
