"""Signals pivoted into one NumPy column per metric, one row per account.

Numbers (counts, rates, dates as epoch seconds, checkboxes as 1/0) live in ``columns``, with
the time each value was observed in ``observed`` (for staleness). Text attributes (plan tier,
lifecycle stage) live in ``labels``. Values read from the signal history for derived metrics
("the value 30 days ago", "how many in the last 30 days") live in ``history`` under
``history_key(kind, metric, window)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np


def history_key(kind: str, metric: str, window: timedelta) -> str:
    return f"{kind}:{metric}:{int(window.total_seconds())}"


@dataclass(frozen=True)
class LabelColumn:
    """Text values stored as codes into ``values`` (−1 = missing), like a categorical."""

    codes: np.ndarray  # int32
    values: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def from_list(cls, items: Sequence[str | None]) -> LabelColumn:
        values: dict[str, int] = {}
        codes = np.fromiter(
            (-1 if v is None else values.setdefault(v, len(values)) for v in items),
            dtype=np.int32,
            count=len(items),
        )
        return cls(codes, tuple(values))

    def matches(self, wanted: Iterable[str]) -> np.ndarray:
        """Case-insensitive membership per account; missing never matches."""
        folded = {w.casefold() for w in wanted}
        hit = np.array([v.casefold() in folded for v in self.values] + [False])
        return hit[self.codes]  # code −1 picks the trailing False

    def lookup(self, mapping: Mapping[str, float]) -> np.ndarray:
        """Map each value through ``mapping`` (case-insensitive); unmapped → NaN."""
        folded = {k.casefold(): v for k, v in mapping.items()}
        table = np.array([folded.get(v.casefold(), np.nan) for v in self.values] + [np.nan])
        return table[self.codes]

    def text(self, i: int) -> str | None:
        code = int(self.codes[i])
        return None if code < 0 else self.values[code]

    def as_numbers(self) -> np.ndarray:
        table = np.array([_to_float(v) for v in self.values] + [np.nan])
        return table[self.codes]

    def take(self, idx: np.ndarray) -> LabelColumn:
        return LabelColumn(self.codes[idx], self.values)


@dataclass(frozen=True)
class SignalTable:
    """``columns[metric][i]`` is account ``account_ids[i]``'s value; NaN means missing."""

    account_ids: Sequence[str]
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray] = field(default_factory=dict)  # epoch seconds, NaN unknown
    labels: dict[str, LabelColumn] = field(default_factory=dict)
    history: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.account_ids)

    def _missing(self) -> np.ndarray:
        return np.full(len(self.account_ids), np.nan)

    def column(self, metric: str) -> np.ndarray:
        """Numeric values of a metric (a numeric-looking attribute works too)."""
        col = self.columns.get(metric)
        if col is not None:
            return col
        if metric in self.labels:
            return self.labels[metric].as_numbers()
        return self._missing()

    def observed_at(self, metric: str) -> np.ndarray:
        col = self.observed.get(metric)
        return col if col is not None else self._missing()

    def label(self, name: str) -> LabelColumn:
        """Text values of an attribute (or of a metric, formatted)."""
        col = self.labels.get(name)
        if col is not None:
            return col
        numbers = self.columns.get(name)
        if numbers is None:
            return LabelColumn(np.full(len(self), -1, dtype=np.int32), ())
        return LabelColumn.from_list([None if np.isnan(v) else f"{v:g}" for v in numbers])

    def history_column(self, key: str) -> np.ndarray:
        col = self.history.get(key)
        return col if col is not None else self._missing()

    def take(self, rows: Sequence[int] | np.ndarray) -> SignalTable:
        """A table of some rows (e.g. one account for `explain`)."""
        idx = np.asarray(rows, dtype=int)
        return SignalTable(
            account_ids=[self.account_ids[i] for i in idx],
            columns={k: v[idx] for k, v in self.columns.items()},
            observed={k: v[idx] for k, v in self.observed.items()},
            labels={k: v.take(idx) for k, v in self.labels.items()},
            history={k: v[idx] for k, v in self.history.items()},
        )

    @classmethod
    def from_rows(
        cls,
        account_ids: Sequence[str],
        rows: Iterable[tuple[str, str, float | None, datetime]],
        metrics: Iterable[str],
        attributes: Mapping[str, Mapping[str, object]] | None = None,
    ) -> SignalTable:
        """Pivot (account_id, metric, value, observed_at) rows for the wanted metrics.

        ``attributes`` maps account id → {attribute: value}; every attribute named in
        ``metrics`` becomes a label column.
        """
        index = {a: i for i, a in enumerate(account_ids)}
        n = len(account_ids)
        wanted = set(metrics)
        columns: dict[str, np.ndarray] = {}
        observed: dict[str, np.ndarray] = {}
        for account_id, metric, value, observed_at in rows:
            i = index.get(account_id)
            if i is None or metric not in wanted or value is None:
                continue
            if metric not in columns:
                columns[metric] = np.full(n, np.nan)
                observed[metric] = np.full(n, np.nan)
            columns[metric][i] = value
            observed[metric][i] = observed_at.timestamp()
        texts: dict[str, list[str | None]] = {}
        for account_id, attrs in (attributes or {}).items():
            i = index.get(account_id)
            if i is None:
                continue
            for name, value in attrs.items():
                if name in wanted and value is not None and value != "":
                    column = texts.get(name)
                    if column is None:  # not setdefault: that builds an n-list per value
                        column = texts[name] = [None] * n
                    column[i] = str(value)
        labels = {name: LabelColumn.from_list(items) for name, items in texts.items()}
        return cls(account_ids=list(account_ids), columns=columns, observed=observed, labels=labels)

    def with_history(
        self,
        needs: Iterable[tuple[str, str, timedelta]],
        rows: Iterable[tuple[str, str, float | None, datetime]],
        as_of: datetime,
    ) -> SignalTable:
        """Add history values: ``as_of`` (value at ``as_of - window``) and ``count``.

        ``rows`` are signal-history rows (account, metric, value, observed_at) in any order.
        """
        needs = list(needs)
        if not needs:
            return self
        index = {a: i for i, a in enumerate(self.account_ids)}
        by_metric: dict[str, list[tuple[int, float | None, float]]] = {}
        metrics = {metric for _, metric, _ in needs}
        for account_id, metric, value, observed_at in rows:
            i = index.get(account_id)
            if i is not None and metric in metrics:
                by_metric.setdefault(metric, []).append((i, value, observed_at.timestamp()))
        now = as_of.timestamp()
        history = dict(self.history)
        for kind, metric, window in needs:
            cutoff = now - window.total_seconds()
            entries = by_metric.get(metric, [])
            if kind == "count":
                counts = np.zeros(len(self))
                for i, value, t in entries:
                    if value is not None and cutoff < t <= now:
                        counts[i] += 1
                history[history_key(kind, metric, window)] = counts
            else:
                values, when = self._missing(), np.full(len(self), -np.inf)
                for i, value, t in entries:
                    if t <= cutoff and t >= when[i]:
                        values[i] = np.nan if value is None else value
                        when[i] = t
                history[history_key(kind, metric, window)] = values
        return SignalTable(self.account_ids, self.columns, self.observed, self.labels, history)


def _to_float(value: str) -> float:
    """A number, or an ISO date as epoch seconds at its start (UTC) — an attribute like a
    start date from an accounts file works with ``days_since`` — else NaN."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        day = date.fromisoformat(value[:10]) if len(value) >= 10 else None
    except ValueError:
        day = None
    if day is None:
        return float("nan")
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
