"""A small synthetic customer base for backtest and fit tests, scored by the real scorer.

Churn is driven by hidden behaviour (a usage slide before churn, support trouble, no exec
sponsor), never by the scorecard. Each snapshot is a SignalTable of what was known then, so a
``SnapshotScorer`` over these tables exercises the same scorer as live runs, without a store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from scoring import ScoreBatch, Scorecard, SignalTable, score

CONFIG = """\
# test configuration — comments must survive a fit
sources:
  salesforce:
    metrics:
      active_share: Active_Share__c      # share of seats active this month
      logins_30d: Logins_30d__c
      urgent_cases: Urgent_Cases__c
      exec_sponsor: Exec_Sponsor__c
      noise: Noise__c                    # carries no signal at all
scorecard:
  name: test-card
  coverage_floor: 0.5
  grades: {red: 50, yellow: 75, hysteresis: 2}
  groups:
    usage: {label: Usage, weight: 50}    # flow style, as in the example file
    relationship: {label: Relationship, weight: 50}
  measures:
    active_share:
      label: Active seats
      group: usage
      weight: 1
      metric: active_share
      linear: {from: 0.1, to: 0.9}
    logins:
      label: Logins (30d)
      group: usage
      weight: 1
      metric: logins_30d
      linear: {from: 1, to: 300, log: true}
    urgent_cases:
      label: Urgent cases
      group: relationship
      weight: 1   # one of each, nobody checked
      metric: urgent_cases
      better: lower
      linear: {from: 0, to: 4}
    sponsor:
      label: Exec sponsor
      group: relationship
      weight: 1
      metric: exec_sponsor
      boolean: {if_true: 100, if_false: 0}
    noise:
      label: Noise
      group: relationship
      weight: 3
      metric: noise
      linear: {from: 0, to: 1}
  segments:
    - name: big
      when:
        - {field: logins_30d, at_least: 250}
      weights:
        noise: 0
        sponsor: 2
"""


@dataclass
class Population:
    ids: list[str]
    start: date
    churn: dict[str, date | None]
    risk: np.ndarray  # the hidden propensity
    seed: int

    def table(self, day: date) -> SignalTable:
        """What was known about every account at the start of ``day``."""
        rng = np.random.default_rng(self.seed * 100_003 + day.toordinal())
        n = len(self.ids)
        days_left = np.array(
            [(c - day).days if c is not None else 10_000 for c in self.churn.values()], dtype=float
        )
        slide = np.clip(1 - days_left / 90, 0, 1)  # usage slides over the last 90 days
        active = np.clip(0.75 - 0.12 * self.risk - 0.45 * slide + rng.normal(0, 0.08, n), 0.01, 1)
        logins = np.exp(np.log(120) - 0.35 * self.risk - 1.5 * slide + rng.normal(0, 0.3, n))
        urgent = rng.poisson(np.clip(0.4 + 0.5 * self.risk + 1.5 * slide, 0.05, None))
        sponsor = (rng.random(n) < 1 / (1 + np.exp(self.risk))).astype(float)
        noise = rng.random(n)
        missing = rng.random(n) < 0.05
        logins[missing] = np.nan
        stamp = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        columns = {
            "active_share": active,
            "logins_30d": logins,
            "urgent_cases": urgent.astype(float),
            "exec_sponsor": sponsor,
            "noise": noise,
        }
        return SignalTable(self.ids, columns, {k: np.full(n, stamp) for k in columns})

    def scorer(self, card: Scorecard):
        def run(times: Sequence[datetime]) -> Iterator[tuple[datetime, ScoreBatch]]:
            previous = None
            for when in times:
                batch = score(card, self.table(when.date()), when, previous_grades=previous)
                previous = batch.grade
                yield when, batch

        return run


def population(
    n: int = 1500,
    *,
    seed: int = 7,
    start: date = date(2026, 1, 5),
    days: int = 300,
    churn_rate: float = 0.3,
) -> Population:
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-(np.log(churn_rate / (1 - churn_rate)) + 1.3 * risk)))
    churns = rng.random(n) < p
    when = rng.integers(30, days, n)
    ids = [f"acc{i:05d}" for i in range(n)]
    churn = {
        a: (start + timedelta(days=int(when[i])) if churns[i] else None) for i, a in enumerate(ids)
    }
    return Population(ids, start, churn, risk, seed)
