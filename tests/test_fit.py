"""`healthscore fit`: non-negative logistic weights, time split, the fitted YAML."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from healthscore.backtest.run import Plan, backtest, fit, fit_plan, score_dates
from healthscore.config import config_from_document, load_config
from healthscore.core.errors import ConfigError
from healthscore.core.yaml_edit import WeightChanges, rewrite
from healthscore.core.yamlfile import parse_yaml
from scoring import score
from scoring.fit import band_thresholds, card_weights, fit_nonnegative_logistic, split_dates

from .backtest_population import CONFIG, population
from .scoring_helpers import AS_OF, table


def _logistic_population(beta: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(beta)))
    z = 1.0 - x @ beta  # more points → less churn for every β > 0
    return x, rng.random(n) < 1 / (1 + np.exp(-z))


def test_fit_recovers_known_weights() -> None:
    beta = np.array([4.0, 2.0, 1.0, 0.0])
    x, y = _logistic_population(beta, 60_000, seed=1)
    model = fit_nonnegative_logistic(x, y, alpha=1e-5)
    assert model.converged
    assert model.coef == pytest.approx(beta, abs=0.25)
    shares = model.coef / model.coef.sum()
    assert shares == pytest.approx(beta / beta.sum(), abs=0.03)


def test_a_measure_that_predicts_the_wrong_way_gets_zero_not_negative() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    x = rng.random((n, 3))
    z = -0.5 - 3 * x[:, 0] + 2.5 * x[:, 1]  # measure 1: more points → MORE churn
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    model = fit_nonnegative_logistic(x, y, alpha=1e-4)
    assert model.coef[1] == 0.0
    assert model.coef[0] > 2
    # an unconstrained fit would have made it clearly negative: the bound is what holds it
    from scipy.optimize import minimize

    def loss(t: np.ndarray) -> float:
        zz = t[0] - x @ t[1:]
        return float(np.mean(np.logaddexp(0, zz) - y * zz))

    free = minimize(loss, np.zeros(4), method="L-BFGS-B").x
    assert free[2] < -1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_fit_never_assigns_a_negative_weight(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((400, m))
    beta = rng.normal(0, 3, m)  # any mix of signs
    y = rng.random(400) < 1 / (1 + np.exp(-(x @ beta - beta.sum() / 2)))
    if y.all() or not y.any():
        return
    model = fit_nonnegative_logistic(x, y, alpha=1e-3)
    assert (model.coef >= 0).all()
    names = [f"m{j}" for j in range(m)]
    if model.coef.sum() > 0:
        mw, gw = card_weights(
            dict(zip(names, model.coef, strict=True)),
            dict.fromkeys(names, "g"),
            dict.fromkeys(names, 1.0),
            {"g": 10},
        )
        assert all(v >= 0 for v in mw.values()) and all(v >= 0 for v in gw.values())


def test_card_weights_make_the_scorer_compute_the_fitted_combination() -> None:
    """Measure and group weights from β: the real scorer's score is Σ βⱼ·pointsⱼ / Σ β."""
    from scoring import Scorecard

    coef = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}
    groups = {"a": "g1", "b": "g1", "c": "g2", "d": "g3"}
    mw, gw = card_weights(
        coef, groups, dict.fromkeys(coef, 1.0), {"g1": 1, "g2": 1, "g3": 1}, digits=6
    )
    card = Scorecard.model_validate(
        {
            "groups": {g: {"label": g, "weight": w} for g, w in gw.items()},
            "measures": {
                n: {
                    "label": n,
                    "group": groups[n],
                    "weight": mw[n],
                    "metric": n,
                    "linear": {"from": 0, "to": 100},
                }
                for n in coef
            },
        }
    )
    rng = np.random.default_rng(0)
    rows = [{n: float(rng.uniform(0, 100)) for n in coef} for _ in range(50)]
    batch = score(card, table(rows), AS_OF)
    expected = np.array([sum(coef[n] * r[n] for n in coef) / sum(coef.values()) for r in rows])
    assert batch.score == pytest.approx(expected, abs=1e-3)


def test_time_split_keeps_labels_out_of_the_judged_period() -> None:
    dates = [date(2026, 1, 5) + timedelta(days=14 * k) for k in range(12)]
    train, test, dropped = split_dates(dates, timedelta(days=30), 0.34)
    assert test == list(range(8, 12))
    assert all(dates[i] + timedelta(days=30) <= dates[test[0]] for i in train)
    assert dropped == [6, 7]  # their 30-day horizon would reach into the judged snapshots
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        split_dates(dates[:1], timedelta(days=30))


def test_band_thresholds_follow_the_churn_rate() -> None:
    rng = np.random.default_rng(9)
    s = rng.uniform(0, 100, 20_000)
    y = rng.random(len(s)) < np.where(s < 40, 0.3, np.where(s < 70, 0.05, 0.005))
    red, yellow = band_thresholds(s, y)
    assert 30 <= red <= 45 and 55 <= yellow <= 75 and yellow - red >= 10
    assert band_thresholds(s, np.zeros(len(s), dtype=bool)) is None


# -- the fitted YAML ---------------------------------------------------------------------------
def _without_weights(data: Any) -> Any:
    data = copy.deepcopy(data)
    card = data["scorecard"]
    for m in card["measures"].values():
        m.pop("weight")
    for g in card["groups"].values():
        g.pop("weight")
    for s in card.get("segments", []):
        s.pop("weights", None)
        s.pop("group_weights", None)
    return data


def _changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    a, b = old.splitlines(), new.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_rewrite_changes_only_weights_in_the_example_config(tmp_path: Path) -> None:
    text = resources.files("healthscore").joinpath("healthscore.example.yaml").read_text()
    card = load_config().scorecard
    changes = WeightChanges(
        measures={n: i + 0.25 for i, n in enumerate(card.measures)},
        groups={g: 10 * (i + 1) for i, g in enumerate(card.groups)},
        segments={0: {"onboarding": 7.5}, 1: {"exec_meetings": 1.5}},
    )
    new = rewrite(text, changes)
    out = tmp_path / "fitted.yaml"
    out.write_text(new)
    fitted = load_config(out).scorecard  # loads and validates
    assert {n: m.weight for n, m in fitted.measures.items()} == changes.measures
    assert fitted.groups["adoption"].weight == 30
    assert fitted.segments[0].weights["onboarding"] == 7.5
    assert fitted.segments[0].weights["login_trend"] == 0  # untouched override
    for old_line, new_line in _changed_lines(text, new):
        # the same line, comment included, with another number
        assert old_line.split("#")[1:] == new_line.split("#")[1:]
        assert "weight" in old_line or old_line.strip().startswith(
            ("onboarding:", "exec_meetings:")
        )
    assert _without_weights(yaml.safe_load(new)) == _without_weights(yaml.safe_load(text))


def test_fit_writes_a_valid_card_that_differs_only_in_weights_and_beats_the_default(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "healthscore.yaml")
    card = config_from_document(parse_yaml(CONFIG, path)).scorecard
    pop = population(1200, seed=5)
    plan = Plan(date(2026, 1, 5), date(2026, 10, 5), timedelta(days=14), timedelta(days=30))
    days, keep = fit_plan(plan, date(2026, 12, 31), 0.34, bands=False)
    scored = score_dates(pop.scorer(card), days, keep=keep)
    assert set(scored.tables) == keep  # only the judged snapshots are held in memory
    data, _ = backtest(card, scored.snapshots, pop.churn, plan, draws=10)
    fitted = fit(card, CONFIG, path, data, scored.tables)
    out = tmp_path / "fitted.yaml"
    out.write_text(fitted.text)
    loaded = load_config(out).scorecard
    assert loaded.version == fitted.card.version != card.version
    assert all(m.weight >= 0 for m in loaded.measures.values())
    assert loaded.measures["noise"].weight < 0.1 * loaded.measures["active_share"].weight
    assert _without_weights(yaml.safe_load(fitted.text)) == _without_weights(yaml.safe_load(CONFIG))
    assert "# one of each, nobody checked" in fitted.text  # comments kept
    assert all(
        "weight" in a or a.strip().startswith(("noise:", "sponsor:"))
        for a, _ in _changed_lines(CONFIG, fitted.text)
    )
    assert fitted.diff.startswith(f"--- {path}")
    # held out: scored by each card on the later snapshots it was not fitted on
    assert fitted.rows_compared > 1000
    assert fitted.auc_fitted >= fitted.auc_default
    assert fitted.result.split.test_dates[0] > fitted.result.split.train_dates[-1]


def test_fit_needs_churners_in_the_fitting_snapshots(tmp_path: Path) -> None:
    card = config_from_document(parse_yaml(CONFIG, "t.yaml")).scorecard
    pop = population(200, seed=2)
    pop.churn = dict.fromkeys(pop.churn)  # nobody churns
    plan = Plan(date(2026, 1, 5), date(2026, 6, 1), timedelta(days=14), timedelta(days=30))
    days, keep = fit_plan(plan, date(2026, 12, 31), 0.34, bands=False)
    scored = score_dates(pop.scorer(card), days, keep=keep)
    data, _ = backtest(card, scored.snapshots, pop.churn, plan, draws=5)
    with pytest.raises(ConfigError, match="both churned and retained"):
        fit(card, CONFIG, "t.yaml", data, scored.tables)


def test_a_strong_penalty_keeps_the_current_proportions() -> None:
    """The penalty pulls towards the current card's shares at any scale, not towards 0."""
    rng = np.random.default_rng(12)
    x = rng.random((5000, 3))
    y = rng.random(5000) < 1 / (1 + np.exp(-(1 - 4 * x[:, 2])))  # only measure 2 matters
    prior = np.array([0.5, 0.3, 0.2])
    held = fit_nonnegative_logistic(x, y, alpha=1000.0, prior=prior)
    assert held.coef / held.coef.sum() == pytest.approx(prior, abs=0.02)
    free = fit_nonnegative_logistic(x, y, alpha=1e-5, prior=prior)
    assert free.coef[2] / free.coef.sum() > 0.9


def test_current_shares_follow_groups() -> None:
    from scoring.fit import current_shares

    shares = current_shares(["g1", "g1", "g2"], [3.0, 1.0, 5.0], [1.0, 1.0, 3.0])
    assert shares == pytest.approx([0.75 * 0.25, 0.25 * 0.25, 0.75])  # group g2 weighs 3 of 4


def test_fit_with_bands_moves_only_weights_and_grade_borders(tmp_path: Path) -> None:
    path = str(tmp_path / "healthscore.yaml")
    card = config_from_document(parse_yaml(CONFIG, path)).scorecard
    pop = population(1200, seed=5)
    plan = Plan(date(2026, 1, 5), date(2026, 10, 5), timedelta(days=14), timedelta(days=30))
    days, keep = fit_plan(plan, date(2026, 12, 31), 0.34, bands=True)
    scored = score_dates(pop.scorer(card), days, keep=keep)
    train, test, dropped = split_dates(days, plan.horizon, 0.34)
    # the fitting snapshots are kept to be re-scored for the bands (not the embargoed ones)
    assert set(scored.tables) == {days[i] for i in train + test}
    assert dropped and not {days[i] for i in dropped} & set(scored.tables)
    data, _ = backtest(card, scored.snapshots, pop.churn, plan, draws=10)
    fitted = fit(card, CONFIG, path, data, scored.tables, bands=True)
    assert fitted.bands is not None
    red, yellow = fitted.bands
    assert (fitted.card.grades.red, fitted.card.grades.yellow) == (red, yellow)
    assert yellow - red >= 10
    old, new = yaml.safe_load(CONFIG), yaml.safe_load(fitted.text)
    for doc in (old, new):
        doc["scorecard"]["grades"].pop("red")
        doc["scorecard"]["grades"].pop("yellow")
    assert _without_weights(new) == _without_weights(old)
    assert any(c["measure"] == "grades red" for c in fitted.changes)
