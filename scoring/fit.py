"""Learn measure weights from churn outcomes, keeping the scorecard monotone and explainable.

The model is an L2-regularized logistic regression of "churned within the horizon" on the
measures' points (scaled to 0–1) with **non-negative** coefficients on ``100 − points``:

    P(churn) = σ(b − Σ βⱼ · pointsⱼ / 100),   βⱼ ≥ 0

so more points can only mean less risk, which is what a scorecard promises — a measure that
predicts churn the wrong way round gets weight 0 instead of a negative weight nobody could
explain. scikit-learn's ``LogisticRegression`` has no sign constraint (only its linear
regressions take ``positive=True``), so the loss is minimized with SciPy's L-BFGS-B, whose box
bounds give βⱼ ≥ 0 exactly (the loss is convex, so the bounded optimum is the global one).

Missing points are filled the way the scorecard treats them: a missing measure's weight is
shared by the rest of its group, i.e. it counts as the group's (current-weight) mean of the
present measures; a wholly missing group counts as the account's overall score. Rows the card
could not score (insufficient data) are left out.

The penalty pulls the weights towards the *current card's proportions* (at whatever overall
scale fits), not towards zero: with little evidence the proposal stays close to the card the
team wrote, and it moves only as far as the outcomes support. Its strength is chosen by the
log-loss on the last quarter of the fitting snapshots (from fits on the earlier ones), the
stronger pull winning near-ties.

The split is by time: the earliest snapshots are for fitting, the latest for judging, and
fitting snapshots whose horizon reaches into the judged period are dropped (their labels
would peek at it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .backtest import Labeled, roc_auc
from .split import (  # noqa: F401  (part of this module's API)
    DateSplit,
    Holdout,
    TimeSplit,
    overlapping,
    split_dates,
    time_split,
)

# penalty strengths tried (on the mean log-loss); the largest all but keep the current card
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray  # βⱼ ≥ 0, per measure (on points / 100)
    intercept: float
    alpha: float
    converged: bool

    def risk(self, x: np.ndarray) -> np.ndarray:
        """Linear risk (the logit) of rows of 0–1 features."""
        return self.intercept - x @ self.coef


def fit_nonnegative_logistic(
    x: np.ndarray, y: np.ndarray, alpha: float = 1e-3, prior: np.ndarray | None = None
) -> LogisticFit:
    """Minimize mean log-loss + α/2·‖β − s·prior‖² over β ≥ 0 (intercept free).

    ``x`` holds features where *higher* means healthier (points / 100). Without ``prior`` the
    penalty is plain L2 (towards 0); with it, towards the direction ``prior`` at any scale
    ``s ≥ 0`` (fitted too): a strong α keeps the current card's proportions, a weak one
    lets the data move them.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, m = x.shape
    c = np.zeros(m) if prior is None else np.asarray(prior, dtype=float)
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, scale, beta = theta[0], theta[1], theta[2:]
        z = b - x @ beta
        gap = beta - scale * c
        # log(1 + e^z) − y z, stably
        value = float((np.logaddexp(0.0, z) - y * z).mean() + alpha / 2 * gap @ gap)
        g = (_sigmoid(z) - y) / n
        grad = np.empty(m + 2)
        grad[0] = g.sum()
        grad[1] = -alpha * gap @ c
        grad[2:] = -(x.T @ g) + alpha * gap
        return value, grad

    start = np.concatenate([[np.log(rate / (1 - rate)), 0.0], np.zeros(m)])
    bounds = [(None, None), (0.0, None)] + [(0.0, None)] * m
    res = minimize(
        loss,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "gtol": 1e-9},
    )
    coef = np.maximum(res.x[2:], 0.0)
    return LogisticFit(coef, float(res.x[0]), alpha, bool(res.success))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def fill_missing(
    points: np.ndarray, groups: Sequence[str], weights: Sequence[float], score: np.ndarray
) -> np.ndarray:
    """Points with each gap filled as the card treats it (see the module docstring)."""
    points = np.array(points, dtype=float)
    w = np.asarray(weights, dtype=float)
    for g in dict.fromkeys(groups):
        cols = [j for j, name in enumerate(groups) if name == g]
        block = points[:, cols]
        present = ~np.isnan(block)
        pw = present * w[cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(present, block, 0.0) @ w[cols] / pw.sum(axis=1)
        mean = np.where(np.isfinite(mean), mean, score)
        for c, j in enumerate(cols):
            gap = ~present[:, c]
            points[gap, j] = mean[gap]
    return points


@dataclass
class FitResult:
    coef: dict[str, float]  # the model's βⱼ (per 100 points)
    weights: dict[str, float]  # proposed measure weights (same total as the current ones)
    group_weights: dict[str, float]
    alpha: float
    split: TimeSplit
    train_rows: int
    train_churned: int
    test_rows: int
    test_churned: int
    validation: dict[float, tuple[float, float]]  # alpha → (log-loss, AUC) on validation

    @property
    def kept_current(self) -> bool:
        """The outcomes did not pay for moving away from the current weights."""
        return math.isinf(self.alpha)

    def as_dict(self) -> dict[str, Any]:
        return {
            "coefficients": self.coef,
            "weights": self.weights,
            "group_weights": self.group_weights,
            "alpha": None if math.isinf(self.alpha) else self.alpha,
            "kept_current": self.kept_current,
            "train_snapshots": self.split.train_dates,
            "test_snapshots": self.split.test_dates,
            "dropped_snapshots": self.split.dropped_dates,
            "overlap_snapshots": self.split.overlap_dates,
            "train_rows": self.train_rows,
            "train_churned": self.train_churned,
            "test_rows": self.test_rows,
            "test_churned": self.test_churned,
            "validation": {
                ("current" if math.isinf(a) else str(a)): {"log_loss": v[0], "auc": v[1]}
                for a, v in self.validation.items()
            },
        }


def fit_weights(
    data: Labeled,
    groups: Mapping[str, str],
    weights: Mapping[str, float],
    group_weights: Mapping[str, float],
    *,
    holdout: Holdout = 0.34,
    alphas: Sequence[float] = ALPHAS,
) -> FitResult:
    """Fit on the earlier snapshots of ``data``; propose measure and group weights.

    ``groups`` maps each measure to its group; ``weights``/``group_weights`` are the current
    card's (the proposal keeps their totals, so the numbers read like the old ones).
    """
    names = data.measure_names
    split = time_split(data, holdout)
    use = split.train & data.scored
    if data.churned[use].sum() == 0 or (~data.churned[use]).sum() == 0:
        raise ValueError(
            "the fitting snapshots need both churned and retained accounts; "
            f"got {int(data.churned[use].sum())} churned of {int(use.sum())}"
        )
    x = (
        fill_missing(
            data.points[use],
            [groups[n] for n in names],
            [weights[n] for n in names],
            data.score[use],
        )
        / 100.0
    )
    y = data.churned[use]
    prior = current_shares(
        card_groups := [groups[n] for n in names],
        [weights[n] for n in names],
        [group_weights[g] for g in card_groups],
    )
    days = np.array([d.toordinal() for d in data.dates])[data.snapshot[use]]
    validation = _choose_alpha(x, y, days, data.horizon.days, alphas, prior)
    alpha = pick_alpha(validation) if validation else alphas[len(alphas) // 2]
    if math.isinf(alpha):  # the current proportions won: keep the card's own numbers
        model = fit_nonnegative_logistic((x @ prior)[:, None], y, 0.0)
        coef = dict(zip(names, (prior * model.coef[0]).tolist(), strict=True))
        measure_w, group_w = dict(weights), dict(group_weights)
    else:
        model = fit_nonnegative_logistic(x, y, alpha, prior)
        coef = dict(zip(names, model.coef.tolist(), strict=True))
        measure_w, group_w = card_weights(coef, groups, weights, group_weights)
    test = split.test & data.scored
    return FitResult(
        coef,
        measure_w,
        group_w,
        alpha,
        split,
        int(use.sum()),
        int(y.sum()),
        int(test.sum()),
        int(data.churned[test].sum()),
        validation,
    )


def current_shares(
    groups: Sequence[str], weights: Sequence[float], group_weights: Sequence[float]
) -> np.ndarray:
    """Each measure's share of the current card's score (all measures present): its share of
    its group times the group's share of the groups."""
    w = np.asarray(weights, dtype=float)
    gw = dict(zip(groups, group_weights, strict=True))
    sums = {g: float(w[[k for k, h in enumerate(groups) if h == g]].sum()) for g in gw}
    live = {g: gw[g] for g in gw if sums[g] > 0}
    total = sum(live.values()) or 1.0
    return np.array(
        [w[j] / sums[g] * live[g] / total if g in live else 0.0 for j, g in enumerate(groups)]
    )


def _choose_alpha(
    x: np.ndarray,
    y: np.ndarray,
    days: np.ndarray,
    horizon_days: int,
    alphas: Sequence[float],
    prior: np.ndarray,
) -> dict[float, tuple[float, float]]:
    """Validation (log-loss, AUC) per alpha: fits on the earlier fitting snapshots whose
    horizon ends before the last quarter of them begins, judged on that last quarter."""
    snaps = np.unique(days)
    if len(snaps) < 4:
        return {}
    cut = snaps[-max(1, len(snaps) // 4)]
    fit_rows, val_rows = days + horizon_days <= cut, days >= cut
    if y[val_rows].all() or not y[val_rows].any() or not y[fit_rows].any():
        return {}
    out = {}
    yv = y[val_rows]
    for a in (*alphas, math.inf):
        if math.isinf(a):  # the current card itself (only its scale and intercept fitted)
            model = fit_nonnegative_logistic((x[fit_rows] @ prior)[:, None], y[fit_rows], 0.0)
            z = model.risk((x[val_rows] @ prior)[:, None])
        else:
            model = fit_nonnegative_logistic(x[fit_rows], y[fit_rows], a, prior)
            z = model.risk(x[val_rows])
        loss = float((np.logaddexp(0.0, z) - yv * z).mean())
        out[a] = (loss, roc_auc(z, yv))
    return out


def pick_alpha(validation: Mapping[float, tuple[float, float]]) -> float:
    """The alpha of the lowest validation log-loss; within 0.1 % of it, the strongest pull
    towards the current card (weights move only as far as the evidence pays for). Infinity
    stands for the current card itself."""
    best = min(loss for loss, _ in validation.values())
    return max(a for a, (loss, _) in validation.items() if loss <= best * 1.001)


def card_weights(
    coef: Mapping[str, float],
    groups: Mapping[str, str],
    weights: Mapping[str, float],
    group_weights: Mapping[str, float],
    digits: int = 2,
) -> tuple[dict[str, float], dict[str, float]]:
    """Measure and group weights under which the card's score is Σ βⱼ·pointsⱼ / Σ β.

    The card averages measures within a group, then groups: a measure's share of the score
    is (group weight / Σ group weights) × (measure weight / its group's weight sum). Measure
    weights ∝ β and group weights ∝ the group's Σ β make that share βⱼ / Σ β. Both are then
    scaled to the current totals and rounded.
    """
    total_beta = sum(coef.values())
    if total_beta <= 0:
        raise ValueError(
            "the fit found no measure that predicts churn (every weight came out "
            "0); the current weights are kept"
        )
    measure_total = sum(weights.values()) or 1.0
    group_total = sum(group_weights.values()) or 1.0
    measure_w = {n: round(b / total_beta * measure_total, digits) for n, b in coef.items()}
    group_beta = {g: sum(b for n, b in coef.items() if groups[n] == g) for g in group_weights}
    group_w = {g: round(b / total_beta * group_total, digits) for g, b in group_beta.items()}
    return measure_w, group_w


def band_thresholds(
    score: np.ndarray,
    churned: np.ndarray,
    *,
    red_lift: float = 2.0,
    green_lift: float = 0.25,
    min_yellow: int = 10,
    window: int = 10,
) -> tuple[int, int] | None:
    """Grade borders learned from outcomes (on the fitting rows), on the rounded score.

    red = the highest border at which the accounts at or below it churn at ≥ ``red_lift`` ×
    the base rate; yellow = the lowest border, at least ``min_yellow`` points above red (a
    thinner band would flap), above which every ``window``-point stretch of scores churns at
    ≤ ``green_lift`` × the base rate. None when no border meets both.
    """
    keep = ~np.isnan(score)
    s, y = np.clip(np.round(score[keep]), 0, 100).astype(int), churned[keep].astype(float)
    if not len(s) or y.sum() == 0:
        return None
    base = y.mean()
    cum_n = np.concatenate([[0], np.cumsum(np.bincount(s, minlength=101))])  # rows ≤ t-1
    cum_y = np.concatenate([[0], np.cumsum(np.bincount(s, weights=y, minlength=101))])
    with np.errstate(invalid="ignore", divide="ignore"):
        below_rate = cum_y[1:] / cum_n[1:]  # score ≤ t
        top = np.minimum(np.arange(101) + window, 100) + 1
        rows = cum_n[top] - cum_n[1:]
        stretch = np.where(rows > 0, (cum_y[top] - cum_y[1:]) / rows, 0.0)  # in (t, t+window]
    reds = [t for t in range(1, 90) if cum_n[t + 1] > 0 and below_rate[t] >= red_lift * base]
    if not reds:
        return None
    red = max(reds)
    calm = stretch <= green_lift * base
    # calm_from[t]: every stretch starting at t or above is calm
    calm_from = np.flip(np.logical_and.accumulate(np.flip(calm)))
    yellows = [t for t in range(red + min_yellow, 100) if calm_from[t]]
    if not yellows:
        return None
    return red, min(yellows)
