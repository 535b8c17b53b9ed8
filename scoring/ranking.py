"""Rank statistics of a risk against churn: ROC AUC and PR AUC with mid-ranks (tied scores
count one half, exactly as the pairwise definition says), the ROC curve, and a bootstrap
interval that resamples *accounts* (an account seen in many snapshots counts once per draw)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROC_POINTS = 200  # points kept of the ROC curve (for the report)


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by risk (highest first) and cut into groups of equal risk."""

    order: np.ndarray  # row indices, highest risk first
    starts: np.ndarray  # where each group of equal risk starts, in sorted order
    y: np.ndarray  # labels in sorted order
    risk: np.ndarray  # distinct risks, one per group

    @property
    def n_groups(self) -> int:
        return len(self.starts)


def _rank(risk: np.ndarray, y: np.ndarray) -> _Ranked:
    order = np.argsort(-risk)  # the order within a group of ties does not matter
    sorted_risk = risk[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = sorted_risk[1:] != sorted_risk[:-1]
    starts = np.flatnonzero(new)
    return _Ranked(order, starts, y[order], sorted_risk[starts])


def _group_sums(r: _Ranked, weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(positive weight, negative weight) per group (rows are contiguous per group)."""
    if not len(r.starts):
        return np.zeros(0), np.zeros(0)
    w = np.ones(len(r.y)) if weight is None else weight
    pos = np.add.reduceat(np.where(r.y, w, 0.0), r.starts)
    return pos, np.add.reduceat(w, r.starts) - pos


def _auc_ap(r: _Ranked, weight: np.ndarray | None = None) -> tuple[float, float]:
    """(ROC AUC, average precision) of sorted rows, optionally weighted per row."""
    pos, neg = _group_sums(r, weight)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan"), float("nan")
    # a positive beats every negative ranked strictly lower, and ties with half of its group
    neg_below = total_neg - np.cumsum(neg)
    auc = float((pos * (neg_below + 0.5 * neg)).sum() / (total_pos * total_neg))
    cum_pos, cum_all = np.cumsum(pos), np.cumsum(pos + neg)
    ap = float((pos * (cum_pos / np.maximum(cum_all, 1e-300))).sum() / total_pos)
    return auc, ap


def roc_auc(risk: np.ndarray, churned: np.ndarray) -> float:
    """P(a churner's risk > a non-churner's), ties counting one half; NaN without both."""
    risk, churned = np.asarray(risk, dtype=float), np.asarray(churned, dtype=bool)
    return _auc_ap(_rank(risk, churned))[0]


def average_precision(risk: np.ndarray, churned: np.ndarray) -> float:
    """PR AUC as average precision (the area under the step precision–recall curve)."""
    risk, churned = np.asarray(risk, dtype=float), np.asarray(churned, dtype=bool)
    return _auc_ap(_rank(risk, churned))[1]


def roc_curve(
    risk: np.ndarray, churned: np.ndarray, points: int = ROC_POINTS
) -> dict[str, list[float]]:
    """False and true positive rates at each distinct risk, thinned to about ``points``."""
    r = _rank(np.asarray(risk, dtype=float), np.asarray(churned, dtype=bool))
    pos, neg = _group_sums(r, None)
    if pos.sum() == 0 or neg.sum() == 0:
        return {"fpr": [], "tpr": [], "threshold": []}
    tpr = np.concatenate([[0.0], np.cumsum(pos) / pos.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(neg) / neg.sum()])
    thr = np.concatenate([[np.inf], r.risk])
    if len(tpr) > points:
        keep = np.unique(np.linspace(0, len(tpr) - 1, points).round().astype(int))
        tpr, fpr, thr = tpr[keep], fpr[keep], thr[keep]
    return {
        "fpr": [round(float(v), 5) for v in fpr],
        "tpr": [round(float(v), 5) for v in tpr],
        "threshold": [None if not np.isfinite(v) else round(100 - float(v), 3) for v in thr],
    }


def bootstrap_auc(
    risk: np.ndarray,
    churned: np.ndarray,
    account: np.ndarray,
    *,
    draws: int = 200,
    seed: int = 0,
    level: float = 0.95,
    batch: int = 50,
) -> dict[str, list[float] | int]:
    """Percentile intervals of ROC AUC and PR AUC, resampling accounts (all their rows).

    A draw only changes how many times each account counts, so the rows are ranked once and
    summarized as two sparse (risk group × account) count matrices, churners and the rest;
    a batch of draws is then two sparse products with the accounts' draw counts. The risk
    is ranked at a resolution of 0.01 points here (the point estimates are exact): it bounds
    the number of risk groups, which the cost grows with.
    """
    from scipy.sparse import csr_matrix

    r = _rank(np.round(np.asarray(risk, dtype=float), 2), np.asarray(churned, dtype=bool))
    _, dense = np.unique(np.asarray(account)[r.order], return_inverse=True)
    n = int(dense.max()) + 1 if len(dense) else 0
    group = np.repeat(np.arange(r.n_groups), np.diff(np.append(r.starts, len(r.y))))
    shape = (r.n_groups, n)
    ones = np.ones(int(r.y.sum()))
    pos_m = csr_matrix((ones, (group[r.y], dense[r.y])), shape=shape)
    neg_m = csr_matrix((np.ones(len(r.y) - len(ones)), (group[~r.y], dense[~r.y])), shape=shape)
    rng = np.random.default_rng(seed)
    aucs: list[np.ndarray] = []
    aps: list[np.ndarray] = []
    done = 0
    while n and done < draws:
        k = min(batch, draws - done)
        times = np.stack(
            [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(k)], axis=1
        ).astype(float)  # accounts × draws
        pos, neg = pos_m @ times, neg_m @ times  # groups × draws
        total_pos, total_neg = pos.sum(axis=0), neg.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cum_neg, cum_pos = np.cumsum(neg, axis=0), np.cumsum(pos, axis=0)
            auc = (pos * (total_neg - cum_neg + 0.5 * neg)).sum(axis=0) / (total_pos * total_neg)
            precision = cum_pos / np.maximum(cum_pos + cum_neg, 1e-300)
            ap = (pos * precision).sum(axis=0) / total_pos
        ok = (total_pos > 0) & (total_neg > 0)
        aucs.append(auc[ok])
        aps.append(ap[ok])
        done += k
    all_auc = np.concatenate(aucs) if aucs else np.empty(0)
    all_ap = np.concatenate(aps) if aps else np.empty(0)
    tail = (1 - level) / 2 * 100

    def interval(v: np.ndarray) -> list[float]:
        if not len(v):
            return [float("nan"), float("nan")]
        return [float(x) for x in np.percentile(v, [tail, 100 - tail])]

    return {
        "roc_auc": interval(all_auc),
        "pr_auc": interval(all_ap),
        "draws": len(all_auc),
        "level": level,
        "seed": seed,
    }


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    new = np.ones(len(values), dtype=bool)
    new[1:] = sorted_v[1:] != sorted_v[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(values))
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auc_and_ap(risk: np.ndarray, churned: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision from one ranking."""
    return _auc_ap(_rank(risk, churned))
