"""Which candidates make the card: an information-value screen, then forward selection by
held-out log loss.

Every candidate enters the model as its bands' *points*: the weight of evidence of each band
scaled to 0–1 within the candidate (the worst band 0, the best 1) — exactly what the fitted
card's ``bands`` will say, divided by 100. The model is the scorecard's own: churn odds fall
with a non-negative weighted sum of points (:func:`fit_model`), and a missing value counts as
the mean of the account's other present points, as the scorer shares a missing measure's
weight among the present ones.

1. *Screen*: candidates with an information value under ``MIN_IV`` are left out, and so is a
   candidate whose points follow a stronger one's almost exactly (|correlation| ≥
   ``REDUNDANT``); the ``POOL`` strongest remain.
2. *Forward selection*: starting from the locked measures, add the candidate that lowers the
   held-out log loss most, while it lowers it by at least ``MIN_GAIN`` (relative) and the
   card has fewer than ``max_measures``. Held out means folds of *accounts*: each fold's
   bands' points and weights come from the other folds' rows only, and every row of an
   account falls in one fold, so an account seen at two snapshots never validates itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .binning import Bins

MIN_IV = 0.02
REDUNDANT = 0.95
POOL = 40
MIN_GAIN = 0.001  # relative held-out log-loss gain a new measure must bring
ALPHA = 1e-4  # L2 on the weights (points are 0–1)
FOLDS = 3
Progress = Callable[[int, str, float], None]  # measures so far, the one added, log loss


@dataclass
class Pool:
    """Candidates as features: binned (codes per row) or with fixed points (a locked
    normalization: the card's own points / 100 per row)."""

    names: list[str]
    y: np.ndarray  # churned within the horizon, per training row
    bins: list[Bins | None]
    codes: list[np.ndarray | None]  # band per row, −1 missing
    fixed: list[np.ndarray | None]  # points / 100 per row, NaN missing
    # lock: true — always in the card, with its current share of the score
    shares: dict[int, float] = field(default_factory=dict)

    @property
    def forced(self) -> list[int]:
        return list(self.shares)

    def _split(self, cols: Sequence[int]) -> tuple[list[int], list[int], np.ndarray]:
        """(positions of locked columns, of free ones, the locked ones' shares)."""
        locked = [k for k, c in enumerate(cols) if c in self.shares]
        free = [k for k, c in enumerate(cols) if c not in self.shares]
        return locked, free, np.array([self.shares[cols[k]] for k in locked])

    def design(self, cols: Sequence[int], x: np.ndarray) -> np.ndarray:
        """The model's features from the chosen columns' points (imputed): a locked
        measure's share of the score is fixed, so its points join every free column's in
        that proportion (coefᴸ = sᴸ/(1 − Σs) · Σ coef of the free ones)."""
        locked, free, s = self._split(cols)
        if not locked:
            return x
        part = x[:, locked] @ s
        if not free:
            return part[:, None]
        return x[:, free] + (part / (1.0 - s.sum()))[:, None]

    def coefficients(self, cols: Sequence[int], coef: np.ndarray) -> np.ndarray:
        """Each chosen column's weight from the coefficients of :meth:`design`'s features."""
        locked, free, s = self._split(cols)
        if not locked:
            return coef
        out = np.zeros(len(cols))
        if not free:
            out[locked] = coef[0] * s
        else:
            out[free] = coef
            out[locked] = s / (1.0 - s.sum()) * coef.sum()
        return out

    def __len__(self) -> int:
        return len(self.names)

    def points(self, c: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Candidate ``c``'s points / 100 on every row, its bands' WoE counted on ``rows``
        (a mask; all rows by default)."""
        fixed = self.fixed[c]
        if fixed is not None:
            return fixed
        bins, codes = self.bins[c], self.codes[c]
        assert bins is not None and codes is not None
        if rows is None:
            w = bins.woe()
        else:
            pick = rows & (codes >= 0)
            counted = np.bincount(codes[pick], minlength=bins.bands)
            churned = np.bincount(codes[pick], weights=self.y[pick], minlength=bins.bands)
            w = bins.woe(counted, churned)
        return scaled(w)[np.maximum(codes, 0)] * np.where(codes >= 0, 1.0, np.nan)


def scaled(woe: np.ndarray) -> np.ndarray:
    """WoE per band → 0–1 (the worst band 0, the best 1)."""
    spread = woe.max() - woe.min()
    if spread <= 0:
        return np.full(len(woe), 0.5)
    return (woe - woe.min()) / spread


def impute(x: np.ndarray) -> np.ndarray:
    """A missing point counts as the mean of the row's present ones (0.5 with none)."""
    present = ~np.isnan(x)
    count = present.sum(axis=1)
    mean = np.where(present, x, 0.0).sum(axis=1) / np.maximum(count, 1)
    mean[count == 0] = 0.5
    return np.where(present, x, mean[:, None])


@dataclass(frozen=True)
class Model:
    """Churn log-odds = ``intercept − points @ coef`` (``coef`` ≥ 0: points only help)."""

    intercept: float
    coef: np.ndarray

    def risk(self, x: np.ndarray) -> np.ndarray:
        return self.intercept - x @ self.coef


def fit_model(x: np.ndarray, y: np.ndarray, alpha: float = ALPHA) -> Model:
    """Mean log loss + α/2·‖coef‖² minimized over coef ≥ 0 (intercept free) by projected
    Newton steps: the few coefficients of a card make each step one small linear solve,
    where a general bounded quasi-Newton method spends its time in bookkeeping. The problem
    is the one :func:`scoring.fit.fit_nonnegative_logistic` solves without a prior."""
    n, m = x.shape
    d = np.column_stack([np.ones(n), -x])  # logit = d @ theta
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    theta = np.zeros(m + 1)
    theta[0] = np.log(rate / (1 - rate))
    ridge = np.full(m + 1, alpha)
    ridge[0] = 0.0

    def objective(t: np.ndarray) -> float:
        z = d @ t
        return float((np.logaddexp(0.0, z) - y * z).mean() + 0.5 * (ridge * t * t).sum())

    value = objective(theta)
    for _ in range(100):
        z = d @ theta
        p = np.exp(-np.logaddexp(0.0, -z))
        grad = d.T @ (p - y) / n + ridge * theta
        # a coefficient at its bound with the gradient pushing it further out stays there
        free = np.ones(m + 1, dtype=bool)
        free[1:] = ~((theta[1:] <= 0) & (grad[1:] > 0))
        hess = (d[:, free] * (p * (1 - p))[:, None]).T @ d[:, free] / n
        step = np.zeros(m + 1)
        step[free] = np.linalg.solve(hess + np.diag(ridge[free] + 1e-10), grad[free])
        t, trial, new = 1.0, theta, value
        while t > 1e-6:  # backtrack along the projected path (Armijo)
            trial = theta - t * step
            trial[1:] = np.maximum(trial[1:], 0.0)
            new = objective(trial)
            if new <= value - 1e-4 * float(grad @ (theta - trial)):
                break
            t /= 2
        if new >= value:
            break
        gain, theta, value = value - new, trial, new
        if gain < 1e-12 * max(1.0, value):
            break
    return Model(float(theta[0]), theta[1:].copy())


def log_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Mean log loss of logits ``z`` (risk) against ``y``."""
    return float((np.logaddexp(0.0, z) - y * z).mean())


@dataclass
class Selection:
    chosen: list[int]
    trace: list[dict[str, object]]  # per step: the measure added, held-out log loss
    left_out: dict[str, str]  # candidate → why (weak, redundant)
    base_loss: float  # held-out log loss with no measure at all


def screen(pool: Pool, min_iv: float = MIN_IV, size: int = POOL) -> tuple[list[int], dict]:
    """The strongest candidates, weak and redundant ones left out (with why)."""
    left: dict[str, str] = {}
    iv = [b.iv if b is not None else np.inf for b in pool.bins]
    order = sorted(range(len(pool)), key=lambda c: (c not in pool.shares, -iv[c]))
    kept: list[int] = []
    columns: list[np.ndarray] = []
    for c in order:
        if c not in pool.shares and iv[c] < min_iv:
            left[pool.names[c]] = f"weak (IV {iv[c]:.3f})"
            continue
        x = pool.points(c)
        twin = next((k for k, col in zip(kept, columns, strict=True) if _same(x, col)), None)
        if twin is not None and c not in pool.shares:
            left[pool.names[c]] = f"redundant with {pool.names[twin]}"
            continue
        if len(kept) >= size and c not in pool.shares:
            left[pool.names[c]] = "not among the strongest"
            continue
        kept.append(c)
        columns.append(x)
    return kept, left


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 10 or a[both].std() == 0 or b[both].std() == 0:
        return False
    return abs(float(np.corrcoef(a[both], b[both])[0, 1])) >= REDUNDANT


def folds_of(account: np.ndarray, k: int = FOLDS, seed: int = 0) -> np.ndarray:
    """A fold per row, the same for every row of an account."""
    _, dense = np.unique(account, return_inverse=True)
    order = np.random.default_rng(seed).permutation(int(dense.max()) + 1 if len(dense) else 0)
    return (order[dense] % k).astype(np.int8)


def forward(
    pool: Pool,
    folds: np.ndarray,
    candidates: Sequence[int],
    *,
    max_measures: int = 12,
    min_gain: float = MIN_GAIN,
    progress: Progress | None = None,
) -> tuple[list[int], list[dict[str, object]], float]:
    """Forward selection over ``candidates`` (see the module docstring)."""
    y = np.asarray(pool.y, dtype=float)
    k = int(folds.max()) + 1
    cache: dict[tuple[int, int], np.ndarray] = {}

    def x(c: int, f: int) -> np.ndarray:
        if (c, f) not in cache:
            cache[(c, f)] = pool.points(c, folds != f).astype(np.float64)
        return cache[(c, f)]

    def held_out(cols: Sequence[int]) -> float:
        total = 0.0
        for f in range(k):
            train, valid = folds != f, folds == f
            if not cols:
                rate = np.clip(y[train].mean(), 1e-6, 1 - 1e-6)
                z = np.full(int(valid.sum()), np.log(rate / (1 - rate)))
            else:
                m = pool.design(cols, impute(np.column_stack([x(c, f) for c in cols])))
                model = fit_model(m[train], y[train])
                z = model.risk(m[valid])
            total += log_loss(z, y[valid]) * valid.sum()
        return float(total / len(y))

    chosen = [c for c in candidates if c in pool.forced]
    base = held_out([])
    loss = held_out(chosen) if chosen else base
    trace: list[dict[str, object]] = [
        {"measure": pool.names[c], "held_out_log_loss": loss, "locked": True} for c in chosen
    ]
    rest = [c for c in candidates if c not in chosen]
    while rest and len(chosen) < max_measures:
        scores = {c: held_out([*chosen, c]) for c in rest}
        best = min(scores, key=lambda c: scores[c])
        if loss - scores[best] < min_gain * loss:
            break
        chosen.append(best)
        rest.remove(best)
        loss = scores[best]
        trace.append({"measure": pool.names[best], "held_out_log_loss": loss, "locked": False})
        if progress is not None:
            progress(len(chosen), pool.names[best], loss)
    return chosen, trace, base


def select(
    pool: Pool,
    account: np.ndarray,
    *,
    max_measures: int = 12,
    progress: Progress | None = None,
) -> Selection:
    """Screen, then forward selection on folds of accounts."""
    kept, left = screen(pool)
    chosen, trace, base = forward(
        pool, folds_of(account), kept, max_measures=max_measures, progress=progress
    )
    for c in kept:
        if c not in chosen:
            left[pool.names[c]] = "adds nothing held out"
    return Selection(chosen, trace, left, base)
