"""Signals pivoted into one NumPy column per metric, one row per account."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class SignalTable:
    """``columns[metric][i]`` is account ``account_ids[i]``'s value; NaN means missing."""

    account_ids: Sequence[str]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.account_ids)

    def column(self, metric: str) -> np.ndarray:
        col = self.columns.get(metric)
        return col if col is not None else np.full(len(self.account_ids), np.nan)

    @classmethod
    def from_rows(
        cls,
        account_ids: Sequence[str],
        rows: Iterable[tuple[str, str, float | None, datetime]],
        metrics: Iterable[str],
    ) -> SignalTable:
        """Pivot (account_id, metric, value, observed_at) rows for the wanted metrics."""
        index = {a: i for i, a in enumerate(account_ids)}
        wanted = set(metrics)
        columns = {m: np.full(len(account_ids), np.nan) for m in wanted}
        for account_id, metric, value, _observed in rows:
            i = index.get(account_id)
            if i is not None and metric in wanted and value is not None:
                columns[metric][i] = value
        return cls(account_ids=list(account_ids), columns=columns)
