"""``--scores-out FILE``: every backtest row as CSV, so a team can join it with its own data.

One line per (snapshot, account): the account, the snapshot date, its score and grade, the
probability of churn within the horizon and whether it did churn. The probability is the
calibration the report shows, cross-fitted per snapshot (each snapshot's rows read by the
map fitted on the other snapshots; :func:`scoring.learn.calibrate.cross_fitted`); rows the
card could not score get none. Rows are written as they are formatted, from the arrays the
backtest already holds — no second copy of the table.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from scoring.backtest import Labeled
from scoring.learn.calibrate import cross_fitted

COLUMNS = ("account_id", "as_of", "score", "grade", "probability", "churned")


def probabilities(data: Labeled) -> np.ndarray:
    """P(churn within the horizon) per row, cross-fitted by snapshot; NaN where unscored
    (or where no other snapshot had a churner to fit on)."""
    out = np.full(len(data), np.nan)
    scored = data.scored
    if scored.any() and data.churned[scored].any():
        out[scored] = cross_fitted(
            data.score[scored], data.churned[scored], data.snapshot[scored], data.horizon.days
        )
    return out


def write_scores(data: Labeled, path: Path, probability: np.ndarray | None = None) -> int:
    """Write ``data``'s rows to ``path`` (CSV, :data:`COLUMNS`); returns the rows written."""
    p = probabilities(data) if probability is None else probability
    days = [d.isoformat() for d in data.dates]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(len(data)):
            score, prob = float(data.score[i]), float(p[i])
            writer.writerow(
                (
                    data.account_ids[data.account[i]],
                    days[data.snapshot[i]],
                    "" if math.isnan(score) else round(score, 2),
                    data.grade[i],
                    "" if math.isnan(prob) else round(prob, 5),
                    int(data.churned[i]),
                )
            )
    return len(data)
