"""Critical conditions ("trump cards"): one fact that caps an account's grade whatever the
weights say.

In the scorecard YAML::

    critical:
      - name: escalation
        when: {metric: open_escalations, above: 0}
        at_most: yellow          # cap: a green account shows yellow
      - name: overdue_invoice
        label: Invoice overdue
        when: {metric: invoice_overdue_days, above: 45}
        grade: red               # force: red whatever the score

A cap also caps the score at the top of that grade (``at_most: yellow`` → at most 75 with the
default grades), so score and grade never contradict each other on the Account page. A forced
grade applies even to an account with too little data for a score: the one fact is enough.
When several conditions hold, the strictest grade wins and the first listed of those is the
one reported; it is always the account's top reason.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .table import SignalTable

CappedGrade = Literal["red", "yellow", "green"]
RANK = {"red": 0, "yellow": 1, "green": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CriticalWhen(_Strict):
    """A test on one metric (a source metric or a derived one); a missing value never holds."""

    metric: str
    above: float | None = None
    at_least: float | None = None
    below: float | None = None
    at_most: float | None = None
    is_: str | float | bool | None = Field(None, alias="is")

    @model_validator(mode="after")
    def _one_test(self) -> CriticalWhen:
        tests = [
            k
            for k in ("above", "at_least", "below", "at_most", "is_")
            if getattr(self, k) is not None
        ]
        if not tests:
            raise ValueError("give a test: above, at_least, below, at_most or is")
        return self

    def describe(self) -> str:
        parts = []
        for key, sign in (("above", ">"), ("at_least", "≥"), ("below", "<"), ("at_most", "≤")):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{self.metric} {sign} {value:g}")
        if self.is_ is not None:
            parts.append(f"{self.metric} is {self.is_}")
        return " and ".join(parts)


class Critical(_Strict):
    name: str = Field(min_length=1)
    label: str | None = None
    when: CriticalWhen
    at_most: CappedGrade | None = Field(None, description="cap the grade (and the score)")
    grade: CappedGrade | None = Field(None, description="force this grade")

    @model_validator(mode="after")
    def _one_effect(self) -> Critical:
        if (self.at_most is None) == (self.grade is None):
            raise ValueError("give exactly one of at_most (cap the grade) or grade (force it)")
        return self

    @property
    def cap(self) -> str:
        return str(self.grade or self.at_most)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def holds(when: CriticalWhen, table: SignalTable) -> np.ndarray:
    """A boolean per account."""
    numbers = table.column(when.metric)
    ok = (
        ~np.isnan(numbers)
        if when.is_ is None or not isinstance(when.is_, str)
        else np.ones(len(table), dtype=bool)
    )
    with np.errstate(invalid="ignore"):
        if when.above is not None:
            ok &= numbers > when.above
        if when.at_least is not None:
            ok &= numbers >= when.at_least
        if when.below is not None:
            ok &= numbers < when.below
        if when.at_most is not None:
            ok &= numbers <= when.at_most
        if when.is_ is not None:
            if isinstance(when.is_, bool):
                ok &= numbers == (1.0 if when.is_ else 0.0)
            elif isinstance(when.is_, (int, float)):
                ok &= numbers == float(when.is_)
            else:
                ok &= table.label(when.metric).matches([when.is_])
    return ok


def evaluate(conditions: list[Critical], table: SignalTable) -> np.ndarray:
    """Per account, the index of the condition that decides its cap (−1: none holds).

    The strictest cap wins; among equally strict ones, the first listed.
    """
    chosen = np.full(len(table), -1, dtype=np.int16)
    best = np.full(len(table), len(RANK), dtype=np.int8)
    for k, cond in enumerate(conditions):
        hit = holds(cond.when, table) & (RANK[cond.cap] < best)
        chosen[hit] = k
        best[hit] = RANK[cond.cap]
    return chosen


def cap_limit(cap: str, red: float, yellow: float) -> float:
    """The highest score a grade allows (on the rounded score)."""
    return {"red": red, "yellow": yellow, "green": 100.0}[cap]


def worse(grade: str, cap: str) -> str:
    """The worse of a grade and a cap (insufficient data is left as it is)."""
    if grade in RANK and RANK[cap] < RANK[grade]:
        return cap
    return grade
