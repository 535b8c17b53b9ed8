"""Backtest and fit scored a chunk of accounts at a time give what one batch of all gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from connectors.registry import Settings
from healthscore.backtest.inventory import pipeline_card_scorer
from healthscore.backtest.plan import Plan
from healthscore.backtest.run import evaluate, pipeline_scorer
from healthscore.config import Config, config_from_document
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.chunks import CHUNK_ENV, ChunkedScoring, chunk_size
from healthscore.pipeline.cycle import Pipeline
from store import AccountRow, SignalRow, Store
from tests.test_point_in_time import insert_usage

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
START = date(2026, 1, 1)
DAYS = 120

CONFIG = """\
sources:
  salesforce:
    metrics:
      nps: NPS__c
    attributes:
      plan_tier: Plan_Tier__c
scorecard:
  name: chunk-card
  coverage_floor: 0.3
  grades: {red: 45, yellow: 70, hysteresis: 3}
  derived:
    logins_7d: {window: {metric: logins, agg: sum, within: 7d}}
    logins_trend: {window: {metric: logins, agg: sum, within: 14d, vs_previous: true}}
    idle_days: {window: {metric: logins, agg: days_since}}
    minutes_14d: {window: {metric: minutes, agg: mean, within: 14d}}
  groups:
    usage: {label: Usage, weight: 60}
    voice: {label: Voice, weight: 40}
  measures:
    logins:
      label: Logins (7d)
      group: usage
      weight: 2
      metric: logins_7d
      linear: {from: 0, to: 40}
    trend:
      label: Login trend
      group: usage
      weight: 1
      metric: logins_trend
      linear: {from: -50, to: 50}
    minutes_rank:
      label: Minutes (rank in segment)
      group: usage
      weight: 3
      metric: minutes_14d
      percentile: true
    idle:
      label: Days since active
      group: usage
      weight: 1
      metric: idle_days
      better: lower
      linear: {from: 0, to: 20}
    nps:
      label: NPS
      group: voice
      weight: 1
      metric: nps
      linear: {from: 0, to: 10}
  segments:
    - name: enterprise
      when:
        - {field: plan_tier, is: Enterprise}
      weights: {minutes_rank: 4}
"""

# ids whose order differs between byte order and a language collation (PostgreSQL's)
IDS = [f"acct-{i:02d}" for i in range(36)] + ["Beta", "alpha", "_under", "Zulu"]


def churn_of(i: int) -> date | None:
    return START + timedelta(days=60 + 3 * i) if i % 4 == 0 else None


def populate(store: Store) -> dict[str, date | None]:
    store.upsert_accounts(
        AccountRow(
            id=a,
            crm="salesforce",
            name=a,
            attributes={"plan_tier": "Enterprise" if i % 3 == 0 else "Growth"},
        )
        for i, a in enumerate(IDS)
    )
    rng = np.random.default_rng(5)
    rows = []
    signals = []
    for i, a in enumerate(IDS):
        churn = churn_of(i)
        first = int(rng.integers(0, 30))  # usage starts on different days
        for k in range(first, DAYS):
            day = START + timedelta(days=k)
            slide = 0.3 if churn is not None and (churn - day).days < 40 else 1.0
            if rng.random() < 0.8:
                rows.append((a, "logins", day, float(rng.poisson(6 * slide))))
            if rng.random() < 0.6:
                rows.append((a, "minutes", day, float(rng.gamma(2.0, 30.0 * slide))))
        for k in range(0, DAYS, 20):
            at = datetime.combine(START + timedelta(days=k), datetime.min.time(), tzinfo=UTC)
            signals.append(SignalRow(a, "nps", float(rng.integers(0, 11)), at, "salesforce"))
    insert_usage(store, rows)
    store.record_signals(signals)
    return {a: churn_of(i) for i, a in enumerate(IDS)}


def config() -> Config:
    return config_from_document(parse_yaml(CONFIG, "healthscore.yaml"))


@pytest.fixture
def pipeline(store: Store) -> Pipeline:
    return Pipeline(config(), Settings(database_url=store.url), store, clock=lambda: NOW)


PLAN = Plan(date(2026, 2, 1), date(2026, 3, 29), timedelta(days=7), timedelta(days=30))


def test_chunks_of_seven_score_exactly_as_one_batch(pipeline: Pipeline) -> None:
    churn = populate(pipeline.store)
    card = pipeline.config.scorecard
    kwargs = {"observed_until": date(2026, 5, 1), "draws": 20, "seed": 1}
    whole = evaluate(card, pipeline_scorer(pipeline, chunk=1000), churn, PLAN, **kwargs)
    chunked = evaluate(card, pipeline_scorer(pipeline, chunk=7), churn, PLAN, **kwargs)
    a, b = whole.data, chunked.data
    assert len(a) == len(b) > 200
    assert a.account_ids == b.account_ids and np.array_equal(a.account, b.account)
    assert np.array_equal(a.score, b.score, equal_nan=True)
    assert np.array_equal(a.points, b.points, equal_nan=True)
    assert list(a.grade) == list(b.grade)
    auc = whole.report["summary"]["roc_auc"]
    assert auc == chunked.report["summary"]["roc_auc"] and 0.5 < auc <= 1.0
    assert whole.report["measures"] == chunked.report["measures"]
    # the percentile measure ranked across chunks: chunks of 7 alone would rank otherwise
    j = list(card.measures).index("minutes_rank")
    ranked = a.points[:, j][~np.isnan(a.points[:, j])]
    assert ranked.min() < 10 and ranked.max() > 90


def test_fit_on_chunks_equals_the_fit_on_one_batch(pipeline: Pipeline) -> None:
    churn = populate(pipeline.store)
    card = pipeline.config.scorecard
    kwargs = {"observed_until": date(2026, 5, 1), "draws": 10, "fit_card": (CONFIG, "hs.yaml")}
    whole = evaluate(card, pipeline_scorer(pipeline, chunk=1000), churn, PLAN, **kwargs)
    chunked = evaluate(card, pipeline_scorer(pipeline, chunk=7), churn, PLAN, **kwargs)
    assert whole.fitted is not None and chunked.fitted is not None
    assert whole.fitted.text == chunked.fitted.text
    assert whole.fitted.rows_compared == chunked.fitted.rows_compared > 50
    assert whole.fitted.auc_fitted == chunked.fitted.auc_fitted
    assert whole.fitted.auc_default == chunked.fitted.auc_default


def test_percentile_ranks_need_the_whole_population(pipeline: Pipeline) -> None:
    """Scored in chunks without the population's reference, ranks would differ: the first
    pass is what makes them equal."""
    populate(pipeline.store)
    card = pipeline.config.scorecard
    moments = [datetime(2026, 3, 1, 23, 59, tzinfo=UTC)]
    one = dict(ChunkedScoring(pipeline.store, card, chunk=1000).snapshots(moments))
    batch = one[moments[0]]
    scoring = ChunkedScoring(pipeline.store, card, chunk=7)
    pieces = [b for _, b in scoring.snapshots(moments)]
    assert len(pieces) == len(scoring.parts()) == 6
    assert [a for p in pieces for a in p.account_ids] == batch.account_ids
    joined = np.concatenate([p.points for p in pieces])
    assert np.array_equal(joined, batch.points, equal_nan=True)
    local = []
    for part in scoring.parts():  # the same chunks, each its own reference
        history = scoring.history(part, moments)
        local += [b.points for _, b in history.snapshots(moments)]
    assert not np.array_equal(np.concatenate(local), batch.points, equal_nan=True)


def test_candidate_scorer_joins_chunks_into_one_batch_per_date(pipeline: Pipeline) -> None:
    populate(pipeline.store)
    card = pipeline.config.scorecard
    days = [date(2026, 2, 8), date(2026, 3, 8)]
    whole = list(pipeline_card_scorer(pipeline, None, chunk=1000)(card, days))
    chunked = list(pipeline_card_scorer(pipeline, None, chunk=7)(card, days))
    assert [m for m, _ in whole] == [m for m, _ in chunked] and len(whole) == 2
    for (_, a), (_, b) in zip(whole, chunked, strict=True):
        assert a.account_ids == b.account_ids
        assert np.array_equal(a.score, b.score, equal_nan=True)
        for name in ("logins_7d", "minutes_14d", "nps"):
            assert np.array_equal(a.table.column(name), b.table.column(name), equal_nan=True)
        assert list(a.table.label("plan_tier").codes) == list(b.table.label("plan_tier").codes)


def test_chunk_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHUNK_ENV, "12345")
    assert chunk_size() == 12345 and chunk_size(7) == 7
    monkeypatch.setenv(CHUNK_ENV, "lots")
    with pytest.raises(ValueError, match=CHUNK_ENV):
        chunk_size()
    monkeypatch.delenv(CHUNK_ENV)
    assert chunk_size() == 50_000
    with pytest.raises(ValueError, match="at least 1"):
        chunk_size(0)
