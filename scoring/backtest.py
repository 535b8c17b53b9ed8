"""Does the score predict churn? Label past snapshots with outcomes and measure the ranking.

Pure NumPy, no store or CLI: the caller scores the accounts as of each snapshot date (the
point-in-time pipeline) and hands over one :class:`Snapshot` per date plus each account's
churn date. :func:`label` turns them into one row per (snapshot, account) — churned within the
horizon or not, accounts already gone at the snapshot left out — and :func:`run_backtest`
computes what a CS lead asks of a score:

- how well it ranks the accounts that later churned (ROC AUC and PR AUC of the risk
  ``100 − score``, with a bootstrap interval that resamples *accounts*, so an account seen in
  26 snapshots counts once per draw) — on every row, the ones the card could not score
  ranked riskiest (:mod:`scoring.counted`), and on the scored rows alone beside it,
- churn rate and lift by grade and by score decile, and the observed churn rate per score bin
  (calibration),
- each measure's own AUC and direction ("which measures actually predict churn here"),
- how often grades flapped between consecutive snapshots, and the share of accounts the card
  could not score (insufficient data).

AUCs are rank statistics computed with mid-ranks, so tied scores count one half, exactly as the
pairwise definition says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from .backtest_tables import (  # noqa: F401  (part of this module's API)
    CALIBRATION_BINS,
    GRADE_ORDER,
    by_decile,
    by_grade,
    calibration,
    flapping,
    measure_power,
    per_snapshot,
    score_histograms,
)
from .counted import insufficient_summary, risk_of
from .ranking import (  # noqa: F401  (part of this module's API)
    ROC_POINTS,
    auc_and_ap,
    average_precision,
    bootstrap_auc,
    midranks,
    roc_auc,
    roc_curve,
)


@dataclass(frozen=True)
class Snapshot:
    """Every account's score as of one date (arrays aligned with ``account_ids``).

    ``score`` is NaN where the card had too little data (then ``grade`` is
    ``insufficient_data``); ``points`` is accounts × measures (NaN: measure missing).
    """

    date: date
    account_ids: Sequence[str]
    score: np.ndarray
    grade: np.ndarray
    points: np.ndarray
    coverage: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.account_ids)
        for name in ("score", "grade", "points"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"snapshot {self.date}: {name} has {len(getattr(self, name))} "
                    f"rows for {n} accounts"
                )


@dataclass
class Labeled:
    """One row per (snapshot, account) still a customer at the snapshot."""

    dates: list[date]  # the snapshot dates, in order
    account_ids: list[str]  # every account seen, indexed by ``account``
    measure_names: list[str]
    snapshot: np.ndarray  # int: index into ``dates``
    account: np.ndarray  # int: index into ``account_ids``
    score: np.ndarray  # NaN: insufficient data
    grade: np.ndarray  # object
    points: np.ndarray  # rows × measures
    churned: np.ndarray  # bool: churned within the horizon after the snapshot
    horizon: timedelta
    excluded_churned: int = 0  # rows left out: the account had churned by the snapshot
    censored_snapshots: list[date] = field(default_factory=list)
    churn_dates: Mapping[str, date | datetime | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.snapshot)

    def take(self, rows: np.ndarray) -> Labeled:
        return Labeled(
            self.dates,
            self.account_ids,
            self.measure_names,
            self.snapshot[rows],
            self.account[rows],
            self.score[rows],
            self.grade[rows],
            self.points[rows],
            self.churned[rows],
            self.horizon,
            self.excluded_churned,
            self.censored_snapshots,
            self.churn_dates,
        )

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.score)


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _known(day: date, horizon: timedelta, observed_until: date) -> bool:
    """Are outcomes known for the whole horizon after ``day``?"""
    return day + timedelta(days=horizon.days) <= observed_until


def label(
    snapshots: Sequence[Snapshot],
    churn_dates: Mapping[str, date | datetime | None],
    horizon: timedelta,
    measure_names: Sequence[str],
    *,
    observed_until: date | datetime | None = None,
) -> Labeled:
    """Label each (snapshot, account): churned within ``horizon`` days after the snapshot?

    A snapshot scores what was known by the end of its day, so an account churning on days
    ``date + 1 … date + horizon`` is labelled churned; one that churned on or before the
    snapshot date is no longer a customer there and is left out (as in
    ``healthscore.pipeline.outcomes``). Snapshots whose horizon reaches past ``observed_until`` (the
    last day outcomes are known for) are left out whole: their "did not churn" is not known
    yet.
    """
    if horizon < timedelta(days=1):
        raise ValueError(f"the horizon must be at least a day; got {horizon}")
    ordered = sorted(snapshots, key=lambda s: s.date)
    censored = []
    if observed_until is not None:
        limit = _day(observed_until)
        censored = [_day(s.date) for s in ordered if not _known(_day(s.date), horizon, limit)]
        ordered = [s for s in ordered if _known(_day(s.date), horizon, limit)]
    index: dict[str, int] = {}
    ids: list[str] = []
    churn_ord: list[float] = []
    for s in ordered:
        for a in s.account_ids:
            if a not in index:
                index[a] = len(ids)
                ids.append(a)
                when = churn_dates.get(a)
                churn_ord.append(np.inf if when is None else _day(when).toordinal())
    churn_day = np.array(churn_ord, dtype=float)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("snapshot", "account", "score", "grade", "points", "churned")
    }
    excluded = 0
    m = len(measure_names)
    for k, s in enumerate(ordered):
        acc = np.fromiter(
            (index[a] for a in s.account_ids), dtype=np.int64, count=len(s.account_ids)
        )
        day = _day(s.date).toordinal()
        when = churn_day[acc]
        alive = when > day
        excluded += int((~alive).sum())
        points = np.asarray(s.points, dtype=float).reshape(len(acc), m)
        parts["snapshot"].append(np.full(int(alive.sum()), k, dtype=np.int32))
        parts["account"].append(acc[alive])
        parts["score"].append(np.asarray(s.score, dtype=float)[alive])
        parts["grade"].append(np.asarray(s.grade, dtype=object)[alive])
        parts["points"].append(points[alive])
        parts["churned"].append(when[alive] <= day + horizon.days)
    joined = {k: (np.concatenate(v) if v else np.empty(0)) for k, v in parts.items()}
    if not ordered:
        joined["points"] = np.empty((0, m))
    return Labeled(
        dates=[_day(s.date) for s in ordered],
        account_ids=ids,
        measure_names=list(measure_names),
        snapshot=joined["snapshot"].astype(np.int32),
        account=joined["account"].astype(np.int64),
        score=joined["score"].astype(float),
        grade=joined["grade"].astype(object),
        points=joined["points"].astype(float),
        churned=joined["churned"].astype(bool),
        horizon=horizon,
        excluded_churned=excluded,
        censored_snapshots=censored,
        churn_dates=churn_dates,
    )


@dataclass
class BacktestResult:
    summary: dict[str, Any]
    grades: list[dict[str, Any]]
    deciles: list[dict[str, Any]]
    calibration: list[dict[str, Any]]
    measures: list[dict[str, Any]]
    flapping: dict[str, Any]
    snapshots: list[dict[str, Any]]
    roc: dict[str, list[float]]
    histogram: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "summary": self.summary,
                "grades": self.grades,
                "deciles": self.deciles,
                "calibration": self.calibration,
                "measures": self.measures,
                "flapping": self.flapping,
                "snapshots": self.snapshots,
                "roc": self.roc,
                "score_histogram": self.histogram,
            }
        )


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, NumPy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_backtest(
    data: Labeled,
    *,
    labels: Mapping[str, str] | None = None,
    weights: Mapping[str, float] | None = None,
    draws: int = 200,
    seed: int = 0,
) -> BacktestResult:
    """Every metric of the report on labeled rows (see the module docstring). ``roc_auc``,
    ``pr_auc`` and their intervals count every row (insufficient_data ranked riskiest); the
    ``*_scored_only`` keys leave those rows out."""
    scored = data.scored
    risk = risk_of(data.score)
    churned = data.churned
    auc, ap = auc_and_ap(risk, churned) if len(data) else (float("nan"),) * 2
    ci = bootstrap_auc(risk, churned, data.account, draws=draws, seed=seed)
    auc_s, ap_s = auc_and_ap(risk[scored], churned[scored]) if scored.any() else (float("nan"),) * 2
    accounts = np.unique(data.account)
    churners = np.unique(data.account[data.churned])
    summary = {
        "horizon_days": data.horizon.days,
        "snapshots": len(data.dates),
        "first_snapshot": data.dates[0].isoformat() if data.dates else None,
        "last_snapshot": data.dates[-1].isoformat() if data.dates else None,
        "accounts": len(accounts),
        "rows": len(data),
        "scored_rows": int(scored.sum()),
        "churners": len(churners),
        "churn_rows": int(data.churned.sum()),
        "churn_rate": float(data.churned.mean()) if len(data) else float("nan"),
        "roc_auc": auc,
        "roc_auc_counts": "every row; insufficient_data ranked riskiest",
        "roc_auc_ci": ci["roc_auc"],
        "pr_auc": ap,
        "pr_auc_ci": ci["pr_auc"],
        "pr_auc_baseline": float(churned.mean()) if len(churned) else float("nan"),
        "roc_auc_scored_only": auc_s,
        "pr_auc_scored_only": ap_s,
        "pr_auc_baseline_scored_only": (
            float(churned[scored].mean()) if scored.any() else float("nan")
        ),
        "bootstrap": {
            "draws": ci["draws"],
            "level": ci["level"],
            "seed": ci["seed"],
            "resampled": "accounts",
        },
        "insufficient": insufficient_summary(data.score, churned, data.account),
        "insufficient_share": float((~scored).mean()) if len(data) else float("nan"),
        "insufficient_accounts_share": (
            len(np.unique(data.account[~scored])) / len(accounts) if len(accounts) else float("nan")
        ),
        "excluded_already_churned": data.excluded_churned,
        "censored_snapshots": [d.isoformat() for d in data.censored_snapshots],
    }
    return BacktestResult(
        summary=summary,
        grades=by_grade(data),
        deciles=by_decile(data),
        calibration=calibration(data),
        measures=measure_power(data, labels, weights),
        flapping=flapping(data),
        snapshots=per_snapshot(data),
        roc=roc_curve(risk, churned),  # every row: the unscored rows are its first step
        histogram=score_histograms(data),
    )
