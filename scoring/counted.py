"""Every row counted: the backtest's headline ranks the rows a card could not score.

A card grades an account ``insufficient_data`` when too little of it is measured; dropping
those rows from the AUC flatters the card wherever they churn more than the rest (new,
unmeasured or dark accounts often do). The headline therefore ranks them as the riskiest —
below every scored row, tied among themselves — which is what a CS team sees when it works
the list from the top with "no data" first. The AUC on the scored rows alone and the
insufficient rows' own count and churn rate sit beside it, so nothing is hidden either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ranking import roc_auc


def risk_of(score: np.ndarray) -> np.ndarray:
    """Risk ``100 − score``; an unscored row (NaN) above every scored one (+inf, all tied)."""
    score = np.asarray(score, dtype=float)
    return np.where(np.isnan(score), np.inf, 100.0 - np.nan_to_num(score))


def auc_pair(score: np.ndarray, churned: np.ndarray) -> tuple[float, float]:
    """(headline AUC on every row, AUC on the scored rows only)."""
    score = np.asarray(score, dtype=float)
    churned = np.asarray(churned, dtype=bool)
    scored = ~np.isnan(score)
    return roc_auc(risk_of(score), churned), roc_auc(100.0 - score[scored], churned[scored])


def insufficient_summary(
    score: np.ndarray, churned: np.ndarray, account: np.ndarray
) -> dict[str, Any]:
    """How many rows (and accounts) the card could not score, and how they churned against
    the base rate of every row."""
    score = np.asarray(score, dtype=float)
    churned = np.asarray(churned, dtype=bool)
    missing = np.isnan(score)
    n, k = len(score), int(missing.sum())
    accounts = len(np.unique(account))
    return {
        "rows": k,
        "accounts": len(np.unique(np.asarray(account)[missing])),
        "churned_rows": int(churned[missing].sum()),
        "churn_rate": float(churned[missing].mean()) if k else float("nan"),
        "base_churn_rate": float(churned.mean()) if n else float("nan"),
        "scored_churn_rate": float(churned[~missing].mean()) if k < n else float("nan"),
        "share": k / n if n else float("nan"),
        "accounts_share": (
            len(np.unique(np.asarray(account)[missing])) / accounts if accounts else float("nan")
        ),
    }
