"""Derived metrics, computed column-wise from the signal table (no eval()).

Anything that is not a finite number — a division by zero, a ratio of two missing values,
an infinity from the source — comes out as NaN: *missing*, never a crash and never a zero.
A derived value is as old as its oldest input (for ``stale_after``). ``sum`` adds the inputs
an account has and is missing only when all are; ``days_until`` counts calendar days to a
date (negative once it has passed).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from .scorecard import Derived
from .table import SignalTable, history_key
from .windows import window_key


def finite(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def sum_present(table: SignalTable, metrics: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The sum of the metrics each account has (a missing one adds nothing, as a CSM adding
    up the numbers they have would); missing only when every one is. As old as its oldest
    present input."""
    values = np.stack([finite(table.column(m)) for m in metrics])
    present = ~np.isnan(values)
    total = np.where(present.any(axis=0), np.nansum(values, axis=0), np.nan)
    observed = np.stack([table.observed_at(m) for m in metrics])
    oldest = np.where(present & ~np.isnan(observed), observed, np.inf).min(axis=0)
    oldest[np.isinf(oldest)] = np.nan
    return total, oldest


def derive(spec: Derived, table: SignalTable, as_of: datetime) -> tuple[np.ndarray, np.ndarray]:
    """(values, observed_at) of one derived metric; ``difference`` is computed by the scorer."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.ratio is not None:
            num, den = spec.ratio
            values = table.column(num) / table.column(den)
            return finite(values), np.fmin(table.observed_at(num), table.observed_at(den))
        if spec.change is not None:
            now = table.column(spec.change.of)
            if spec.change.vs is not None:
                prior = table.column(spec.change.vs)
                observed = np.fmin(
                    table.observed_at(spec.change.of), table.observed_at(spec.change.vs)
                )
            else:
                assert spec.change.over is not None
                prior = table.history_column(history_key("as_of", spec.change.of, spec.change.over))
                observed = table.observed_at(spec.change.of)
            values = (now - prior) / np.abs(prior) * 100.0
            return finite(values), observed
        if spec.days_since is not None:
            # whole days, as a CSM counts them: the score does not drift hour by hour (and
            # an hourly cycle does not rewrite every account's score for it)
            values = np.floor((as_of.timestamp() - table.column(spec.days_since)) / 86400.0)
            # "days since" a date metric is as fresh as the scoring moment
            return finite(values), np.full(len(table), as_of.timestamp())
        if spec.count is not None:
            key = history_key("count", spec.count.metric, spec.count.within)
            return finite(table.history_column(key)), np.full(len(table), as_of.timestamp())
        if spec.window is not None:  # aggregated from daily usage (scoring/windows.py)
            values = table.history_column(window_key(spec.window))
            return finite(values), np.full(len(table), as_of.timestamp())
        if spec.days_until is not None:
            # calendar days from the scoring moment's UTC date to the date's: a renewal today
            # is 0, tomorrow 1, yesterday −1 (not clamped: "renewal passed, not renewed"
            # is worth a band of its own)
            when = np.floor(table.column(spec.days_until) / 86400.0)
            values = when - np.floor(as_of.timestamp() / 86400.0)
            return finite(values), np.full(len(table), as_of.timestamp())
        if spec.sum is not None:
            return sum_present(table, spec.sum)
    raise ValueError(f"derived metric of kind {spec.kind!r} is computed from measures")
