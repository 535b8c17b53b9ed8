"""The fitted score as a churn probability: calibrated on the judged snapshots, it holds on
snapshots neither the card nor the calibration saw; and the backtest reports expected
against observed churn per decile."""

from __future__ import annotations

import numpy as np
import pytest

from healthscore.backtest.learn import churn_probabilities
from scoring.learn.calibrate import (
    Calibration,
    calibration_report,
    cross_fitted,
    deciles,
    fit_calibration,
)

from .test_learn_card import CURRENT, fit_world, world


def test_probability_calibration_holds_within_two_points_per_decile() -> None:
    w = world(n=12_000, seed=8, snapshots=10)
    fit = fit_world(w, CURRENT.replace("      LOCK\n", ""), judged=2, upto=6)
    found = fit.calibration["map"]
    assert found["horizon_days"] == 30 and found["slope"] < 0  # more points, less churn
    calibration = Calibration(**found)
    # four later snapshots: neither the card nor its calibration saw them
    fresh = w.snapshots[6:]
    from healthscore.backtest.learn import days_scored

    rows = days_scored(w.scorer(), fit.card, fresh, fit.judged)
    scored = ~np.isnan(rows.score)
    assert scored.sum() > 25_000
    table = deciles(
        rows.score[scored], rows.churned[scored], calibration.probability(rows.score[scored])
    )
    assert len(table) >= 8
    for d in table:
        assert abs(d["gap"]) <= 0.02, table
    # the riskiest decile really churns far more than the safest
    assert table[0]["observed"] > 3 * table[-1]["observed"]
    # the same holds, cross-fitted, on the judged snapshots the fit reports
    assert fit.calibration["max_gap"] <= 0.02
    # and every account gets a probability as of a day, riskiest first
    probs = churn_probabilities(w.scorer(), fit, fresh[-1])
    values = [p["churn_probability"] for p in probs if p["churn_probability"] is not None]
    assert values and values == sorted(values, reverse=True) and 0 < values[-1] < values[0] < 1


def test_platt_scaling_recovers_a_logistic_map() -> None:
    rng = np.random.default_rng(2)
    score = rng.uniform(0, 100, 50_000)
    y = rng.random(len(score)) < 1 / (1 + np.exp(-(-1.0 - 0.04 * score)))
    found = fit_calibration(score, y, 30)
    assert found.intercept == pytest.approx(-1.0, abs=0.1)
    assert found.slope == pytest.approx(-0.04, abs=0.003)
    assert np.isnan(found.probability(np.array([np.nan]))[0])


def test_cross_fitting_never_uses_a_snapshots_own_rows() -> None:
    rng = np.random.default_rng(5)
    score = rng.uniform(0, 100, 4000)
    snapshot = np.repeat([0, 1], 2000)
    y = np.where(snapshot == 0, rng.random(4000) < 0.3, rng.random(4000) < 0.05)
    expected = cross_fitted(score, y, snapshot, 30)
    # snapshot 0's rows are predicted by snapshot 1's map (5 % churn), and the other way
    assert expected[snapshot == 0].mean() == pytest.approx(0.05, abs=0.02)
    assert expected[snapshot == 1].mean() == pytest.approx(0.3, abs=0.03)
    report = calibration_report(score, y, snapshot, 30)
    assert report["cross_fitted_by"] == "snapshot"
    overall = Calibration(**report["map"]).probability(score).mean()  # fitted on every row
    assert overall == pytest.approx(y.mean(), abs=0.005)
    assert sum(d["rows"] for d in report["deciles"]) == len(score)
    assert {d["rows"] for d in report["deciles"]} == {400}  # ten equal groups
