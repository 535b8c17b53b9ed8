"""The current and the fitted card judged on the same held-out rows.

Both AUCs count every (snapshot, account) row the two cards share: a row a card could not
score (insufficient_data) is ranked riskiest by that card, as in the backtest's headline
(:mod:`scoring.counted`), so a card cannot look better by declining to score the accounts
that churn. The AUCs on each card's scored rows alone, and how many rows each left
unscored, are reported beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scoring.backtest import Labeled, roc_auc, roc_curve
from scoring.counted import auc_pair, insufficient_summary, risk_of


def compared_rows(current: Labeled, fitted: Labeled) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``current``, rows of ``fitted``): the same snapshot and account, in both."""
    key_c = current.snapshot.astype(np.int64) * 10**9 + current.account
    index = {current.dates[k]: k for k in range(len(current.dates))}
    remap = np.array([index.get(d, -1) for d in fitted.dates], dtype=np.int64)
    acc_map = {a: i for i, a in enumerate(current.account_ids)}
    f_acc = np.array(
        [acc_map.get(fitted.account_ids[a], -1) for a in fitted.account], dtype=np.int64
    )
    known = np.flatnonzero((remap[fitted.snapshot] >= 0) & (f_acc >= 0))
    key_f = remap[fitted.snapshot[known]] * 10**9 + f_acc[known]
    _, ic, jf = np.intersect1d(key_c, key_f, return_indices=True)
    return ic, known[jf]


def compare_held_out(
    current: Labeled, fitted: Labeled
) -> tuple[float, float, int, dict[str, list[float]], dict[str, list[float]]]:
    """(AUC current, AUC fitted, rows, ROC fitted, ROC current) on every shared row."""
    ic, jf = compared_rows(current, fitted)
    y = current.churned[ic]
    risk_c, risk_f = risk_of(current.score[ic]), risk_of(fitted.score[jf])
    return (
        roc_auc(risk_c, y),
        roc_auc(risk_f, y),
        len(ic),
        roc_curve(risk_f, y),
        roc_curve(risk_c, y),
    )


def held_out_detail(current: Labeled, fitted: Labeled) -> dict[str, Any]:
    """Beside the headline: each card's AUC on its scored rows only, and its unscored rows
    (count, accounts, churn rate against the base rate)."""
    ic, jf = compared_rows(current, fitted)
    y = current.churned[ic]
    account = current.account[ic]
    score_c, score_f = current.score[ic], fitted.score[jf]
    return {
        "auc_counts": "every row; insufficient_data ranked riskiest",
        "rows": len(ic),
        "churned": int(y.sum()),
        "auc_default_scored_only": auc_pair(score_c, y)[1],
        "auc_fitted_scored_only": auc_pair(score_f, y)[1],
        "insufficient_default": insufficient_summary(score_c, y, account),
        "insufficient_fitted": insufficient_summary(score_f, y, account),
    }
