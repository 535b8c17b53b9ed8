"""The synthetic usage population: deterministic, consistent, and churn a scorecard can rank."""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.outcomes import Outcome, churned_by, churned_within
from healthscore.pipeline.point_in_time import ScoringHistory
from sandbox.population import METRICS, Population, generate_population, with_usage_measures
from scoring import Scorecard
from store.models import Account

END = date(2026, 11, 25)
USAGE_EXAMPLE = Path(__file__).parent.parent / "healthscore" / "usage.example.yaml"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank): P(a churner scores lower)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate_population(2000, seed=11, end=END)


def test_the_same_seed_gives_the_same_population_and_another_seed_not() -> None:
    a = generate_population(60, seed=5, end=END, days=90)
    b = generate_population(60, seed=5, end=END, days=90)
    c = generate_population(60, seed=6, end=END, days=90)
    assert a.churn_dates == b.churn_dates
    for m in METRICS:
        np.testing.assert_array_equal(a.usage[m], b.usage[m])
    assert any(not np.array_equal(a.usage[m], c.usage[m], equal_nan=True) for m in METRICS)


def test_usage_starts_with_the_customer_and_stops_when_it_churns(pop: Population) -> None:
    assert pop.days == 365 and pop.last_day == END
    logins = pop.usage["logins"]
    for i in range(len(pop.account_ids)):
        reported = np.flatnonzero(~np.isnan(logins[i]))
        start = (pop.start_dates[i] - pop.first_day).days
        assert reported.min() == max(start, 0)
        if pop.churn_dates[i] is not None:
            assert reported.max() == (pop.churn_dates[i] - pop.first_day).days
            assert pop.renewal_dates[i] is None
    churn_rate = pop.churned().mean()
    assert 0.08 < churn_rate < 0.25
    assert (np.nan_to_num(pop.usage["active_users"]) <= pop.seats[:, None]).all()


def backtest_auc(pop: Population, card: Scorecard, *, shuffle: bool = False) -> float:
    accounts = [
        Account(
            id=a,
            name=n,
            attributes={"plan": p, "plan_tier": p, "seats": str(s), "start_date": d.isoformat()},
        )
        for a, n, p, s, d in zip(
            pop.account_ids, pop.names, pop.plans, pop.seats.tolist(), pop.start_dates, strict=True
        )
    ]
    # no signal history at all: usage windows and (current) attributes only
    history = ScoringHistory(card, accounts, {}, pop.usage_history(), start_attribute="start_date")
    outcomes = {a: Outcome(a, c) for a, c in zip(pop.account_ids, pop.churn_dates, strict=True)}
    days = [pop.first_day + timedelta(days=60 + 14 * k) for k in range(21)]
    scores, labels = [], []
    for moment, batch in history.snapshots(days, excluded=lambda m: churned_by(outcomes, m)):
        churn = churned_within(batch.account_ids, outcomes, moment, timedelta(days=30))
        scored = ~np.isnan(batch.score)
        scores.append(batch.score[scored])
        labels.append(churn[scored])
    s, y = np.concatenate(scores), np.concatenate(labels)
    if shuffle:
        y = np.random.default_rng(0).permutation(y)
    return auc(-s, y)  # a churner should score low


def test_the_usage_example_scorecard_ranks_churners_well(pop: Population) -> None:
    doc = yaml.safe_load(USAGE_EXAMPLE.read_text())
    doc["sources"] = {"accounts_file": {"path": "accounts.csv", "attributes": ["plan", "seats"]}}
    card = config_from_document(parse_yaml(yaml.safe_dump(doc), "usage.yaml")).scorecard
    assert backtest_auc(pop, card) >= 0.75
    assert abs(backtest_auc(pop, card, shuffle=True) - 0.5) < 0.05


def test_the_example_scorecard_with_usage_windows_ranks_churners_well(pop: Population) -> None:
    doc = yaml.safe_load(
        resources.files("healthscore").joinpath("healthscore.example.yaml").read_text()
    )
    config = config_from_document(
        parse_yaml(yaml.safe_dump(with_usage_measures(doc)), "example.yaml")
    )
    assert config.sources.salesforce.attributes["seats"] == "Licensed_Seats__c"
    assert backtest_auc(pop, config.scorecard) >= 0.75
