"""Which snapshots fit and which judge: by time, the later share held out, or by date.

The earliest snapshots are for fitting, the latest for judging. With a share
(``--holdout``), fitting snapshots whose horizon reaches into the judged period are dropped
(their labels would peek at it); a split named by date (``--train-until``/``--test-from``)
is taken as named and such snapshots are reported instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .backtest import Labeled


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # bool per row
    test: np.ndarray
    train_dates: list[str]
    test_dates: list[str]
    dropped_dates: list[str]  # fitting snapshots whose horizon reached into the test period
    # an explicit split's fitting snapshots whose labels reach into the judged period (kept)
    overlap_dates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DateSplit:
    """An explicit split (``fit --train-until D --test-from D``): snapshots on or before
    ``train_until`` fit, those on or after ``test_from`` judge; either may be None (then
    the other side is every remaining snapshot)."""

    train_until: date | None = None
    test_from: date | None = None

    def __post_init__(self) -> None:
        if self.train_until is None and self.test_from is None:
            raise ValueError("an explicit split needs --train-until or --test-from")
        if (
            self.train_until is not None
            and self.test_from is not None
            and self.train_until >= self.test_from
        ):
            raise ValueError(
                f"--train-until {self.train_until} must be before --test-from "
                f"{self.test_from}: a snapshot cannot both fit and judge"
            )


Holdout = float | DateSplit  # the later share judged, or an explicit split by date


def _explicit(dates: Sequence[date], split: DateSplit) -> tuple[list[int], list[int]]:
    until, start = split.train_until, split.test_from
    train = [
        i
        for i, d in enumerate(dates)
        if (d <= until if until is not None else start is not None and d < start)
    ]
    test = [
        i
        for i, d in enumerate(dates)
        if (d >= start if start is not None else until is not None and d > until)
    ]
    available = ", ".join(d.isoformat() for d in dates) or "none"
    for side, verb, option in ((train, "fit", "--train-until"), (test, "judge", "--test-from")):
        if not side:
            raise ValueError(
                f"no snapshot left to {verb} with {option}: the snapshots with known "
                f"outcomes are {available}"
            )
    return train, test


def split_dates(
    dates: Sequence[date], horizon: timedelta, holdout: Holdout = 0.34
) -> tuple[list[int], list[int], list[int]]:
    """(fitting, judged, dropped) snapshot indices of ascending ``dates``.

    The last ``holdout`` share (at least one) is judged, and a fitting snapshot whose horizon
    reaches into the judged period is dropped, so no label peeks at it. A
    :class:`DateSplit` is taken exactly as named (nothing dropped): its fitting snapshots
    whose labels reach into the judged period are reported by :func:`overlapping`.
    """
    k = len(dates)
    if k < 2:
        raise ValueError(
            f"a time split needs at least 2 snapshots; got {k} (widen --from/--to, "
            "shorten --every or give more --dates)"
        )
    if isinstance(holdout, DateSplit):
        train, test = _explicit(dates, holdout)
        return train, test, []
    n_test = min(k - 1, max(1, round(k * holdout)))
    chosen, test = list(range(k - n_test)), list(range(k - n_test, k))
    train = overlapping(dates, horizon, chosen, test, keep=True)
    if not train:
        raise ValueError(
            f"no fitting snapshot ends its {horizon.days}-day horizon before the judged "
            f"period starts ({dates[test[0]]}); add earlier snapshots, shorten the horizon "
            "or split by date (--train-until/--test-from)"
        )
    return train, test, [i for i in chosen if i not in train]


def overlapping(
    dates: Sequence[date],
    horizon: timedelta,
    train: Sequence[int],
    test: Sequence[int],
    *,
    keep: bool = False,
) -> list[int]:
    """The fitting snapshots whose horizon reaches into the judged period (or, with
    ``keep``, those whose horizon ends before it)."""
    start = dates[test[0]]
    return [i for i in train if (dates[i] + timedelta(days=horizon.days) <= start) == keep]


def time_split(data: Labeled, holdout: Holdout = 0.34) -> TimeSplit:
    train_idx, test_idx, dropped = split_dates(data.dates, data.horizon, holdout)
    overlap = overlapping(data.dates, data.horizon, train_idx, test_idx)
    return TimeSplit(
        np.isin(data.snapshot, train_idx),
        np.isin(data.snapshot, test_idx),
        [data.dates[i].isoformat() for i in train_idx],
        [data.dates[i].isoformat() for i in test_idx],
        [data.dates[i].isoformat() for i in dropped],
        [data.dates[i].isoformat() for i in overlap],
    )
