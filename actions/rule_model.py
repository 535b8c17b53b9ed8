"""Alert rules as CS operations write them in the YAML (``rules:``).

A rule has one trigger (``when``), an optional ``for`` (the condition must hold that long),
a ``cooldown`` (no new episode sooner after the last one fired), an optional segment filter
and a Slack channel. It fires when an account *enters* its condition — once per episode —
and not again until the account has left the condition (and the cooldown has passed).

    rules:
      - name: sharp_drop
        when: {score_dropped: {points: 15, within: 7d}}
        cooldown: 14d
      - name: stuck_in_onboarding
        when: {onboarding_not_past: {score: 60, by_day: 30}}
        segments: [onboarding]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from healthscore.durations import Duration

Grade = Literal["red", "yellow", "green", "insufficient_data"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Drop(_Strict):
    points: float = Field(gt=0)
    within: Duration


class Onboarding(_Strict):
    score: float = Field(ge=0, le=100, description="the score to be past ...")
    by_day: int = Field(gt=0, description="... by this many days after the start")
    age_metric: str = Field("customer_age_days", description="days since the start")


class Renewal(_Strict):
    days: int = Field(gt=0, description="renewal within this many days")
    below: float = Field(ge=0, le=100, description="while the score is below this")
    metric: str = Field("renewal_next_at", description="a date metric: the next renewal")


class MeasureBelow(_Strict):
    measure: str
    points: float = Field(ge=0, le=100)


class MetricAtLeast(_Strict):
    metric: str
    value: float
    grade: Grade | None = Field(None, description="only accounts in this grade")


TRIGGERS = ("grade_is", "score_dropped", "score_below", "onboarding_not_past",
            "renewal_within", "measure_below", "metric_at_least")


class Trigger(_Strict):
    grade_is: Grade | None = Field(None, description="the account is in this grade")
    score_dropped: Drop | None = None
    score_below: float | None = Field(None, ge=0, le=100)
    onboarding_not_past: Onboarding | None = None
    renewal_within: Renewal | None = None
    measure_below: MeasureBelow | None = Field(
        None, description="a measure's points below a value (e.g. its red band, or a "
                          "usage-vs-NPS divergence measure)")
    metric_at_least: MetricAtLeast | None = Field(
        None, description="e.g. healthy with seat utilization ≥ 0.9: an upsell signal")

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [t for t in TRIGGERS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one trigger of {', '.join(TRIGGERS)}"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> str:
        return next(t for t in TRIGGERS if getattr(self, t) is not None)


class Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: Trigger
    for_: Duration = Field(timedelta(0), alias="for",
                           description="the condition must hold this long first")
    cooldown: Duration = Field(timedelta(0), description="no new episode sooner than this "
                                                        "after the last one fired")
    segments: list[str] = Field(default_factory=list, description="only these segments")
    channel: str | None = Field(None, description="Slack channel (default: the alert channel)")
