"""Windowed aggregates of daily usage, for every account at once, at any date T.

The usage history (the ``usage_daily`` table: one value per account, metric and day) is held
as dense NumPy arrays — accounts × days per metric, float32 — with a cumulative sum along the
days, so a windowed sum at any T is one subtraction per account and many snapshots are scored
from memory without another query.

The rules (also in the README, "Usage window measures"):

- A window ``within: Nd`` as of T covers the N days ending with T's (UTC) date, T's own day
  included: whatever was reported for it by then.
- A day without a row counts as 0 for ``sum``, ``mean`` (the sum divided by N: per calendar
  day of the window), ``max`` and ``active_days`` (days with a value > 0). Usage sources
  usually export nothing for a day without activity, so a missing day is a zero day.
- ``last`` is the latest *reported* value on or before T (within the window when one is
  given); ``days_since`` is the whole days from the latest day with a value > 0 to T's date.
  An account that reported only zeros gets the days since its first reported day + 1 (at
  least that long without activity).
- An account with no row on or before T (usage not tracked yet) has no value: missing, not 0.
- ``vs_previous`` is the % change of the window against the N days before it; missing when
  the account reported nothing by the end of the previous window or it was 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from .scorecard import WINDOWED, Window

NONE = np.iinfo(np.int32).max  # "first reported day" of an account that reported nothing


def window_key(window: Window) -> str:
    """Where a window's values live in ``SignalTable.history``."""
    return f"window:{window.metric}:{window.agg}:{window.days}:{int(window.vs_previous)}"


def day_of(as_of: datetime | date) -> date:
    """The UTC date of a moment (a date stays itself)."""
    if isinstance(as_of, datetime):
        return as_of.astimezone(UTC).date()
    return as_of


@dataclass(frozen=True)
class Known:
    """What the held days alone cannot tell when they are only the recent ones, from the
    whole history; day indices relative to the held start (negative: before it)."""

    first: np.ndarray  # int64: first reported day (NONE: none)
    active: np.ndarray  # int64: last day with a value > 0 (-NONE: none)
    last_day: np.ndarray  # int64: last reported day (-NONE: none)
    last_value: np.ndarray  # float64: its value


@dataclass
class MetricDays:
    """One metric's daily values: ``values[i, d]`` of account i on day d (0 without a row)."""

    values: np.ndarray  # float32, accounts × days
    present: np.ndarray  # bool, accounts × days: a row was reported
    first: np.ndarray = field(init=False)  # int64: first reported day (NONE if none)
    known: Known | None = field(default=None, init=False, repr=False)
    _cumsum: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        has = self.present.any(axis=1)
        self.first = np.where(has, self.present.argmax(axis=1), NONE).astype(np.int64)
        if self.known is not None:
            self.first = np.minimum(self.first, self.known.first)

    @property
    def cumsum(self) -> np.ndarray:
        """float64, accounts × (days + 1): ``cumsum[:, d]`` is the sum of days before d."""
        if self._cumsum is None:
            n, days = self.values.shape
            out = np.empty((n, days + 1))
            out[:, 0] = 0.0
            np.cumsum(self.values, axis=1, dtype=np.float64, out=out[:, 1:])
            self._cumsum = out
        return self._cumsum


class UsageHistory:
    """Daily usage of some metrics for a fixed list of accounts, from ``start`` for ``days``."""

    def __init__(
        self,
        account_ids: Sequence[str],
        start: date,
        days: int,
        metrics: Mapping[str, MetricDays] | None = None,
    ) -> None:
        self.account_ids = list(account_ids)
        self.start = start
        self.days = days
        self.metrics: dict[str, MetricDays] = dict(metrics or {})
        # held days cut to a span (see pipeline.point_in_time.load_usage): the earliest date
        # whose windows the held days and the summary of the days before answer exactly
        self.exact_from: date | None = None

    def __len__(self) -> int:
        return len(self.account_ids)

    @property
    def cells(self) -> int:
        """Reported (account, metric, day) values held."""
        return int(sum(int(m.present.sum()) for m in self.metrics.values()))

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def empty(
        cls, account_ids: Sequence[str], start: date, end: date, metrics: Iterable[str]
    ) -> UsageHistory:
        days = max(0, (end - start).days + 1)
        n = len(account_ids)
        return cls(
            account_ids,
            start,
            days,
            {
                m: MetricDays(np.zeros((n, days), np.float32), np.zeros((n, days), bool))
                for m in metrics
            },
        )

    def put(self, metric: str, rows: np.ndarray, days: np.ndarray, values: np.ndarray) -> None:
        """Set values: ``rows`` (account indices), ``days`` (day indices from ``start``).

        Days outside the held range and NaN values are ignored. Call ``seal`` when done.
        """
        m = self.metrics[metric]
        keep = (days >= 0) & (days < self.days) & ~np.isnan(values)
        m.values[rows[keep], days[keep]] = values[keep]
        m.present[rows[keep], days[keep]] = True

    def know(
        self,
        metric: str,
        rows: np.ndarray,
        first: np.ndarray,
        active: np.ndarray,
        last_day: np.ndarray,
        last_value: np.ndarray,
    ) -> None:
        """Whole-history facts of some accounts (day indices from ``start``, may be < 0),
        for when only recent days are held. Call ``seal`` when done."""
        n = len(self)
        known = Known(
            np.full(n, NONE, np.int64),
            np.full(n, -NONE, np.int64),
            np.full(n, -NONE, np.int64),
            np.full(n, np.nan),
        )
        known.first[rows], known.active[rows] = first, active
        known.last_day[rows], known.last_value[rows] = last_day, last_value
        self.metrics[metric].known = known

    def seal(self) -> UsageHistory:
        """Recompute what ``put`` invalidated (first reported days, cumulative sums)."""
        for m in self.metrics.values():
            m.__post_init__()
            m._cumsum = None
        return self

    @classmethod
    def from_rows(
        cls,
        account_ids: Sequence[str],
        rows: Iterable[tuple[str, str, date, float | None]],
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> UsageHistory:
        """From plain (account_id, metric, day, value) rows (tests, small loads)."""
        rows = [r for r in rows if r[3] is not None]
        first = start or min((r[2] for r in rows), default=date(1970, 1, 1))
        last = end or max((r[2] for r in rows), default=first)
        history = cls.empty(account_ids, first, last, {r[1] for r in rows})
        index = {a: i for i, a in enumerate(account_ids)}
        for metric in history.metrics:
            picked = [
                (index[a], (d - first).days, v) for a, m, d, v in rows if m == metric and a in index
            ]
            if picked:
                arr = np.array(picked, dtype=float)
                history.put(
                    metric, arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2]
                )
        return history.seal()

    @classmethod
    def from_arrays(
        cls, account_ids: Sequence[str], start: date, arrays: Mapping[str, np.ndarray]
    ) -> UsageHistory:
        """From dense accounts × days arrays, NaN where nothing was reported."""
        days = next(iter(arrays.values())).shape[1] if arrays else 0
        metrics = {}
        for name, arr in arrays.items():
            present = ~np.isnan(arr)
            metrics[name] = MetricDays(np.where(present, arr, 0).astype(np.float32), present)
        return cls(account_ids, start, days, metrics)

    # -- aggregates -----------------------------------------------------------------------------
    def day_index(self, as_of: datetime | date) -> int:
        return (day_of(as_of) - self.start).days

    def aggregate(self, window: Window, as_of: datetime | date) -> np.ndarray:
        """The window's value per account as of ``as_of`` (float64, NaN = missing)."""
        m = self.metrics.get(window.metric)
        if m is None:
            return np.full(len(self), np.nan)
        t = self.day_index(as_of)
        if window.agg in WINDOWED:
            now = self._windowed(m, window.agg, t, window.days)
            if not window.vs_previous:
                return now
            before = self._windowed(m, window.agg, t - window.days, window.days)
            with np.errstate(divide="ignore", invalid="ignore"):
                change = (now - before) / np.abs(before) * 100.0
            change[~np.isfinite(change)] = np.nan
            return change
        if window.agg == "last":
            return self._last(m, t, window.days)
        return self._days_since(m, t)

    def _span(self, t: int, days: int) -> tuple[int, int]:
        """[lo, hi] day indices of the ``days`` days ending at t, clipped to the held range
        (``days`` 0: from the first held day)."""
        lo = 0 if days == 0 else max(t - days + 1, 0)
        return lo, min(t, self.days - 1)

    def _windowed(self, m: MetricDays, agg: str, t: int, days: int) -> np.ndarray:
        lo, hi = self._span(t, days)
        n = len(self)
        if hi < lo:  # the window lies outside the held days: nothing reported in it
            out = np.zeros(n)
        elif agg in ("sum", "mean"):
            out = m.cumsum[:, hi + 1] - m.cumsum[:, lo]
            if agg == "mean":
                out /= days
        elif agg == "max":
            out = m.values[:, lo : hi + 1].max(axis=1).astype(np.float64)
            if hi - lo + 1 < days:  # days outside the held range count as 0 too
                out = np.maximum(out, 0.0)
        else:  # active_days
            out = np.count_nonzero(m.values[:, lo : hi + 1] > 0, axis=1).astype(np.float64)
        out[m.first > t] = np.nan  # nothing reported by T: unknown, not zero
        return out

    def _last(self, m: MetricDays, t: int, days: int) -> np.ndarray:
        lo, hi = self._span(t, days)
        out = np.full(len(self), np.nan)
        has = np.zeros(len(self), dtype=bool)
        if hi >= lo:
            backwards = m.present[:, lo : hi + 1][:, ::-1]
            has = backwards.any(axis=1)
            day = hi - backwards.argmax(axis=1)
            rows = np.flatnonzero(has)
            out[rows] = m.values[rows, day[rows]]
        if m.known is not None:  # reported before the held days only
            oldest = t - days + 1 if days else -NONE
            k = m.known
            older = ~has & (k.last_day <= t) & (k.last_day >= oldest) & (k.last_day < lo)
            out[older] = k.last_value[older]
        return out

    def _days_since(self, m: MetricDays, t: int) -> np.ndarray:
        out = np.full(len(self), np.nan)
        hi = min(t, self.days - 1)
        active = np.zeros(len(self), dtype=bool)
        if hi >= 0:
            backwards = (m.values[:, : hi + 1] > 0)[:, ::-1]
            active = backwards.any(axis=1)
            out[active] = t - (hi - backwards.argmax(axis=1)[active])
        if m.known is not None:  # active before the held days only
            older = ~active & (m.known.active > -NONE) & (m.known.active <= t)
            out[older] = t - m.known.active[older]
            active |= older
        never = ~active & (m.first <= t)
        out[never] = t - m.first[never] + 1
        return out


def window_columns(
    windows: Mapping[str, Window],
    usage: UsageHistory | None,
    as_of: datetime | date,
    rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``SignalTable.history`` entries of every window (``rows``: a subset of accounts)."""
    out: dict[str, np.ndarray] = {}
    for window in windows.values():
        key = window_key(window)
        if key in out:
            continue
        if usage is None:  # no usage loaded: the table reads these as missing
            continue
        values = usage.aggregate(window, as_of)
        out[key] = values if rows is None else values[rows]
    return out
