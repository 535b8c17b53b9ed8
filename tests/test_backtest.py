"""Backtest metrics: labels, rank AUCs (ties), bootstrap, tables, per-measure power, flapping."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthscore.backtest.run import Plan, backtest, score_dates
from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from scoring.backtest import (
    Snapshot,
    average_precision,
    bootstrap_auc,
    flapping,
    label,
    measure_power,
    roc_auc,
    run_backtest,
)

from .backtest_population import CONFIG, population

DAY = date(2026, 3, 2)
H30 = timedelta(days=30)


def _snap(
    day: date,
    ids: list[str],
    score: list[float],
    grade: list[str] | None = None,
    points: np.ndarray | None = None,
) -> Snapshot:
    s = np.array(score, dtype=float)
    g = grade or ["red" if v <= 50 else "yellow" if v <= 75 else "green" for v in s]
    g = ["insufficient_data" if np.isnan(v) else x for v, x in zip(s, g, strict=True)]
    p = s.reshape(-1, 1) if points is None else points
    return Snapshot(day, ids, s, np.array(g, dtype=object), p)


def brute_auc(risk: np.ndarray, y: np.ndarray) -> float:
    """The definition: over every (churner, non-churner) pair, 1 if ranked right, ½ if tied."""
    pos, neg = risk[y], risk[~y]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return total / (len(pos) * len(neg))


# -- labels ------------------------------------------------------------------------------------
def test_label_horizon_edges_and_already_churned_excluded() -> None:
    ids = ["gone", "today", "next_day", "last_day", "after", "never"]
    churn = {
        "gone": DAY - timedelta(days=1),
        "today": DAY,
        "next_day": DAY + timedelta(days=1),
        "last_day": DAY + timedelta(days=30),
        "after": DAY + timedelta(days=31),
        "never": None,
    }
    data = label([_snap(DAY, ids, [10, 20, 30, 40, 50, 60])], churn, H30, ["m"])
    kept = [data.account_ids[a] for a in data.account]
    assert kept == ["next_day", "last_day", "after", "never"]  # gone by the snapshot: out
    assert data.churned.tolist() == [True, True, False, False]
    assert data.excluded_churned == 2


def test_label_censors_snapshots_without_known_outcomes() -> None:
    snaps = [_snap(DAY + timedelta(days=14 * k), ["a", "b"], [1, 2]) for k in range(4)]
    data = label(snaps, {}, H30, ["m"], observed_until=DAY + timedelta(days=44))
    assert data.dates == [DAY, DAY + timedelta(days=14)]
    assert data.censored_snapshots == [DAY + timedelta(days=28), DAY + timedelta(days=42)]


# -- rank statistics ---------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=40))
def test_auc_matches_pairwise_count_with_ties(rows: list[tuple[int, bool]]) -> None:
    risk = np.array([r for r, _ in rows], dtype=float)
    y = np.array([c for _, c in rows])
    if y.all() or not y.any():
        assert np.isnan(roc_auc(risk, y))
        return
    assert roc_auc(risk, y) == pytest.approx(brute_auc(risk, y), abs=1e-12)


def test_pr_auc_is_average_precision() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(5, 80))
        risk = rng.integers(0, 6, n).astype(float)  # many ties
        y = rng.random(n) < 0.3
        if y.any() and not y.all():
            assert average_precision(risk, y) == pytest.approx(
                sklearn_metrics.average_precision_score(y, risk), abs=1e-12
            )
            assert roc_auc(risk, y) == pytest.approx(
                sklearn_metrics.roc_auc_score(y, risk), abs=1e-12
            )


def test_auc_is_one_when_churners_score_lowest_and_half_when_shuffled() -> None:
    rng = np.random.default_rng(11)
    n = 4000
    ids = [f"a{i}" for i in range(n)]
    scores = rng.uniform(0, 100, n)
    lowest = np.argsort(scores)[:400]  # the 400 lowest-scored accounts churn
    churn = {ids[i]: DAY + timedelta(days=10) for i in lowest}
    points = scores.reshape(-1, 1)
    data = label([_snap(DAY, ids, scores.tolist(), points=points)], churn, H30, ["m"])
    result = run_backtest(data, draws=50)
    assert result.summary["roc_auc"] == 1.0
    assert result.summary["pr_auc"] == 1.0
    assert result.summary["roc_auc_ci"] == [1.0, 1.0]
    shuffled = {ids[i]: DAY + timedelta(days=10) for i in rng.permutation(n)[:400]}
    noise = run_backtest(
        label([_snap(DAY, ids, scores.tolist(), points=points)], shuffled, H30, ["m"]), draws=100
    )
    assert noise.summary["roc_auc"] == pytest.approx(0.5, abs=0.05)
    low, high = noise.summary["roc_auc_ci"]
    assert low < 0.5 < high  # a random ranking is within its own interval


def test_bootstrap_resamples_accounts_not_rows() -> None:
    """Seeing each account 10 times adds no information: the interval must not narrow."""
    rng = np.random.default_rng(5)
    n = 600
    risk = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-risk))
    once = bootstrap_auc(risk, y, np.arange(n), draws=300, seed=1)
    ten = bootstrap_auc(
        np.tile(risk, 10), np.tile(y, 10), np.tile(np.arange(n), 10), draws=300, seed=1
    )
    width = once["roc_auc"][1] - once["roc_auc"][0]
    width10 = ten["roc_auc"][1] - ten["roc_auc"][0]
    assert width10 == pytest.approx(width, rel=0.25)  # rows resampled would shrink it ~3×
    assert bootstrap_auc(risk, y, np.arange(n), seed=1) == bootstrap_auc(
        risk, y, np.arange(n), seed=1
    )


# -- tables ------------------------------------------------------------------------------------
def test_grade_and_decile_tables_count_rows_and_lift() -> None:
    ids = [f"a{i}" for i in range(20)]
    scores = [float(v) for v in range(0, 100, 5)]  # 0 … 95
    churn = {ids[i]: DAY + timedelta(days=1) for i in (0, 1, 2, 17)}  # three red, one green (85)
    result = run_backtest(label([_snap(DAY, ids, scores)], churn, H30, ["m"]), draws=10)
    grades = {g["bucket"]: g for g in result.grades}
    assert grades["red"]["rows"] == 11 and grades["red"]["churned"] == 3
    assert grades["green"]["churned"] == 1
    assert grades["red"]["lift"] == pytest.approx((3 / 11) / (4 / 20))
    assert [d["rows"] for d in result.deciles] == [2] * 10
    assert result.deciles[0]["churned"] == 2 and result.deciles[0]["score_max"] == 5
    assert sum(c["rows"] for c in result.calibration) == 20
    assert result.calibration[-1]["bucket"] == "90–100"


def test_equal_scores_share_a_decile() -> None:
    ids = [f"a{i}" for i in range(10)]
    result = run_backtest(
        label([_snap(DAY, ids, [50.0] * 10)], {"a0": DAY + H30}, H30, ["m"]), draws=5
    )
    assert len(result.deciles) == 1 and result.deciles[0]["rows"] == 10


def test_insufficient_rows_are_ranked_riskiest_in_the_headline() -> None:
    ids = ["a", "b", "c", "d"]
    data = label([_snap(DAY, ids, [10, np.nan, 90, np.nan])], {"a": DAY + H30}, H30, ["m"])
    result = run_backtest(data, draws=5)
    s = result.summary
    assert s["insufficient_share"] == 0.5 and s["scored_rows"] == 2
    assert s["roc_auc_scored_only"] == 1.0  # a (score 10) above c (90)
    # every row: b and d (retained, unscored) rank above the churner a; it beats c alone
    assert s["roc_auc"] == pytest.approx(1 / 3)
    assert s["insufficient"]["rows"] == 2 and s["insufficient"]["accounts"] == 2
    assert s["insufficient"]["churn_rate"] == 0.0 and s["insufficient"]["base_churn_rate"] == 0.25
    snap = result.snapshots[0]
    assert snap["roc_auc"] == pytest.approx(1 / 3) and snap["roc_auc_scored_only"] == 1.0
    assert snap["insufficient_rows"] == 2 and snap["insufficient_churned"] == 0


def test_measure_power_finds_the_direction() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    ids = [f"a{i}" for i in range(n)]
    churned = rng.random(n) < 0.2
    good = np.where(churned, rng.uniform(0, 60, n), rng.uniform(40, 100, n))  # as assumed
    bad = np.where(churned, rng.uniform(50, 100, n), rng.uniform(0, 70, n))  # reversed
    flat = rng.uniform(0, 100, n)
    flat[::3] = np.nan
    points = np.column_stack([good, bad, flat])
    churn = {ids[i]: DAY + H30 for i in np.flatnonzero(churned)}
    data = label(
        [_snap(DAY, ids, good.tolist(), points=points)], churn, H30, ["good", "bad", "flat"]
    )
    power = {m["measure"]: m for m in measure_power(data)}
    assert power["good"]["auc"] > 0.8 and power["good"]["lower_points_more_churn"] is True
    assert power["bad"]["auc"] < 0.3 and power["bad"]["lower_points_more_churn"] is False
    assert power["flat"]["auc"] == pytest.approx(0.5, abs=0.06)
    assert power["flat"]["present"] == pytest.approx(2 / 3, abs=0.01)


def test_flapping_counts_changes_and_reversals() -> None:
    ids = ["flap", "steady", "drift", "gap"]
    grades = [
        ["red", "green", "green", "red"],
        ["yellow", "green", "yellow", "red"],
        ["red", "green", "red", "insufficient_data"],
        ["red", "green", "red", "yellow"],
    ]
    snaps = [
        _snap(DAY + timedelta(days=14 * k), ids, [50.0] * 4, grade=g) for k, g in enumerate(grades)
    ]
    f = flapping(label(snaps, {}, H30, ["m"]))
    # by account — flap: red→yellow→red→red (one reversal); steady: green ×4;
    # drift: green→yellow→red→red; gap: red→red→insufficient→yellow (no pair across the gap)
    assert f["pairs"] == 3 + 3 + 3 + 1
    assert f["changes"] == 2 + 0 + 2 + 0
    assert f["reversals"] == 1
    assert f["accounts_flapping"] == 1


# -- through the real scorer -------------------------------------------------------------------
def test_backtest_through_the_scorer_ranks_hidden_churn() -> None:
    card = config_from_document(parse_yaml(CONFIG, "t.yaml")).scorecard
    pop = population(800, seed=3)
    plan = Plan(date(2026, 1, 5), date(2026, 8, 1), timedelta(days=14), H30)
    scored = score_dates(pop.scorer(card), plan.dates())
    data, report = backtest(card, scored.snapshots, pop.churn, plan, draws=50)
    s = report["summary"]
    assert s["snapshots"] == len(plan.dates()) and s["accounts"] == 800
    assert 0.8 < s["roc_auc"] <= 1 and s["roc_auc_ci"][0] < s["roc_auc"] < s["roc_auc_ci"][1]
    assert s["pr_auc"] > 3 * s["pr_auc_baseline"]
    # an account that churned is never a row at a later snapshot
    for k, day in enumerate(data.dates):
        rows = data.account[data.snapshot == k]
        assert all(
            pop.churn[data.account_ids[a]] is None or pop.churn[data.account_ids[a]] > day
            for a in rows
        )
    noise = next(m for m in report["measures"] if m["measure"] == "noise")
    assert noise["auc"] == pytest.approx(0.5, abs=0.05)
    grades = {g["bucket"]: g["churn_rate"] for g in report["grades"]}
    assert grades["red"] > grades["yellow"] > grades["green"]
