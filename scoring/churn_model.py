"""The scorecard's churn model: a score as a probability of churn within a horizon.

``healthscore fit`` calibrates the fitted score on held-out snapshots (Platt scaling, see
``scoring.learn.calibrate``) and writes the two numbers into the card::

    churn_model:
      horizon: 30d
      intercept: 1.8
      slope: -0.06
      fitted_on: {rows: 4200, churned: 310, from: 2026-06-01, to: 2026-09-01}
      arr_attribute: arr      # optional: ARR at risk = probability × this attribute

P(churn within the horizon) = 1 / (1 + exp(−(intercept + slope · score))). The model does not
change the score, so it is left out of the scorecard's version; a card without it shows no
probability anywhere and writes no churn field to a CRM.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from healthscore.core.durations import Duration, format_duration

CHURN_RISK = "churn_risk"  # CRM role: the probability in percent, 0–100, one decimal
ARR_AT_RISK = "arr_at_risk"  # CRM role: probability × ARR, whole currency units
CHURN_ROLES = (CHURN_RISK, ARR_AT_RISK)


class FittedOn(BaseModel):
    """Where the calibration comes from: held-out snapshots between ``from`` and ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    rows: int = Field(ge=1, description="account snapshots the calibration was fitted on")
    churned: int = Field(ge=0, description="of those, the ones that churned within the horizon")
    start: date | None = Field(None, alias="from", description="the first held-out snapshot")
    end: date | None = Field(None, alias="to", description="the last held-out snapshot")

    @model_validator(mode="after")
    def _consistent(self) -> FittedOn:
        if self.churned > self.rows:
            raise ValueError(f"churned ({self.churned}) cannot exceed rows ({self.rows})")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"'from' ({self.start}) must not be after 'to' ({self.end})")
        return self


class ChurnModel(BaseModel):
    """P(churn within ``horizon``) = σ(intercept + slope · score)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    horizon: Duration = Field(description="the churn window the probability is about, e.g. 30d")
    intercept: float
    slope: float = Field(description="per score point; ≤ 0: a higher score, less churn")
    fitted_on: FittedOn | None = None
    arr_attribute: str | None = Field(
        None, description="account attribute holding ARR: ARR at risk = probability × ARR"
    )

    @field_validator("slope")
    @classmethod
    def _falling(cls, slope: float) -> float:
        if slope > 0:
            raise ValueError(
                f"must be ≤ 0 (a higher health score cannot mean more churn); got {slope:g}"
            )
        return slope

    @field_validator("horizon")
    @classmethod
    def _whole_days(cls, horizon: timedelta) -> timedelta:
        seconds = horizon.total_seconds()
        if seconds < 86400 or seconds % 86400:
            raise ValueError(f"must be whole days (e.g. 30d); got {format_duration(horizon)}")
        return horizon

    @model_validator(mode="after")
    def _finite(self) -> ChurnModel:
        if not (math.isfinite(self.intercept) and math.isfinite(self.slope)):
            raise ValueError("intercept and slope must be finite numbers")
        return self

    @property
    def horizon_days(self) -> int:
        return int(self.horizon.total_seconds() // 86400)

    def crm_roles(self) -> tuple[str, ...]:
        """The CRM health roles this model fills (ARR at risk only with an ARR attribute)."""
        return (CHURN_RISK, ARR_AT_RISK) if self.arr_attribute else (CHURN_RISK,)

    def probability(self, score: np.ndarray) -> np.ndarray:
        """P(churn within the horizon) per score; NaN (no score) stays NaN."""
        z = self.intercept + self.slope * np.asarray(score, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.exp(-np.logaddexp(0.0, -z))


def arr_values(attributes: list[dict[str, Any]], name: str) -> np.ndarray:
    """Each account's ARR from its attributes (NaN when missing or not a number)."""
    out = np.full(len(attributes), np.nan)
    for i, attrs in enumerate(attributes):
        out[i] = as_number(attrs.get(name))
    return out


def as_number(value: Any) -> float:
    """A number from an attribute value (a numeric string too); NaN for anything else."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def half_up(value: float, places: int) -> float:
    """Round half-up to ``places`` decimals, as a CRM number field stores it, so what
    is written equals what the CRM then holds (no rewrite on the next cycle)."""
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP))


def crm_values(model: ChurnModel, probability: float, arr_at_risk: float) -> dict[str, Any]:
    """The churn roles' CRM values: the probability in percent (one decimal), ARR at risk in
    whole units (None when there is no score, or no ARR)."""
    out: dict[str, Any] = {
        CHURN_RISK: None if math.isnan(probability) else half_up(100 * probability, 1)
    }
    if model.arr_attribute:
        out[ARR_AT_RISK] = None if math.isnan(arr_at_risk) else half_up(arr_at_risk, 0)
    return out


def describe_risk(probability: float | None, horizon_days: int, arr_at_risk: float | None) -> str:
    """The risk as "12.3 % within 30 days (ARR at risk 18,000)", for `explain`."""
    if probability is None or math.isnan(probability):
        return f"– within {horizon_days} days (no score)"
    text = f"{100 * probability:.1f} % within {horizon_days} days"
    if arr_at_risk is not None and not math.isnan(arr_at_risk):
        text += f" (ARR at risk {arr_at_risk:,.0f})"
    return text


def churn_risk(
    model: ChurnModel, score: np.ndarray, attributes: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """(probability, ARR at risk) per account, aligned with ``score`` and ``attributes``
    (each account's attributes); ARR at risk is NaN without an ARR attribute or value."""
    probability = model.probability(score)
    if model.arr_attribute is None:
        return probability, np.full(len(probability), np.nan)
    return probability, probability * arr_values(attributes, model.arr_attribute)
