"""`healthscore fit` learns the card: a generated population whose churn follows a known
banded card is fitted through the product's own path (candidates read by the point-in-time
scorer, optbinning, selection, the fitted YAML) and the learned card is read back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pytest
import yaml

from healthscore.backtest.inventory import inventory_from, memory_card_scorer
from healthscore.backtest.learn import LearnedFit, learn_card
from healthscore.backtest.run import Plan, evaluate
from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory
from scoring.learn.candidates import candidate_card, generate
from scoring.windows import UsageHistory
from store.models import Account

FIRST = date(2025, 6, 1)
EVERY = 30
FIRST_SNAPSHOT = 200  # day index: enough history for 90-day windows against the prior 90
# the hidden truth: churn odds fall with these bands' points (a card nobody wrote down)
LOGIN_EDGES, LOGIN_POINTS = (20, 60), (0, 50, 100)  # logins in 30 days, higher is better
TICKET_EDGES, TICKET_POINTS = (2, 5), (100, 40, 0)  # tickets in 30 days, lower is better

CURRENT = """\
sources:
  accounts_file: {path: accounts.csv}
scorecard:
  name: guess
  derived:
    logins_7d: {window: {metric: logins, agg: sum, within: 7d}}
    tickets_30d: {window: {metric: tickets, agg: sum, within: 30d}}
  groups:
    usage: {label: Usage, weight: 60}     # a comment the fit must keep
    support: {label: Support, weight: 40}
  measures:
    logins:
      label: Logins (7d)
      group: usage
      weight: 1
      metric: logins_7d
      linear: {from: 1, to: 30}
    tickets:
      label: Support tickets (30d)
      group: support
      weight: 1
      metric: tickets_30d
      better: lower
      LOCK
      bands:
        - {below: 1, points: 100}
        - {below: 10, points: 50}
        - {points: 0}
"""


@dataclass
class World:
    accounts: list[Account]
    usage: UsageHistory
    churn: dict[str, date | None]
    snapshots: list[date]  # every 30 days, churn drawn at each

    def scorer(self):
        outcomes = {a: Outcome(a, c) for a, c in self.churn.items()}
        return memory_card_scorer(self.accounts, self.usage, outcomes, start_attribute="start")


def _points(values: np.ndarray, edges: tuple[int, ...], points: tuple[int, ...]) -> np.ndarray:
    return np.array(points, dtype=float)[np.searchsorted(edges, values, side="right")]


def world(n: int = 8000, seed: int = 3, snapshots: int = 6) -> World:
    """Daily logins, tickets and an unrelated metric; at each snapshot every account still
    there churns within 30 days with the odds of the hidden card on its last 30 days."""
    rng = np.random.default_rng(seed)
    days = FIRST_SNAPSHOT + EVERY * snapshots + 1
    logins = rng.poisson(
        rng.lognormal(np.log(1.3), 0.9, n)[:, None] * rng.gamma(4, 0.25, (n, days))
    ).astype(np.float32)
    tickets = rng.poisson(rng.gamma(1.5, 0.07, n)[:, None] * np.ones((1, days))).astype(np.float32)
    noise = rng.poisson(rng.lognormal(0.5, 1.0, n)[:, None] * np.ones((1, days))).astype(np.float32)
    churn_day = np.full(n, 10**6)
    marks = [FIRST_SNAPSHOT + EVERY * k for k in range(snapshots)]
    for s in marks:
        alive = churn_day > s
        last = slice(s - 29, s + 1)
        z = (
            -1.0
            - 2.0 * _points(logins[:, last].sum(axis=1), LOGIN_EDGES, LOGIN_POINTS) / 100
            - 1.2 * _points(tickets[:, last].sum(axis=1), TICKET_EDGES, TICKET_POINTS) / 100
        )
        leaves = alive & (rng.random(n) < 1 / (1 + np.exp(-z)))
        churn_day[leaves] = s + rng.integers(1, EVERY + 1, int(leaves.sum()))
    t = np.arange(days)
    gone = t[None, :] > churn_day[:, None]
    usage = {}
    for name, values in (("logins", logins), ("tickets", tickets), ("noise", noise)):
        values[gone | (values <= 0)] = np.nan  # long form: no row for a day without any
        usage[name] = values
    ids = [f"a{i:05d}" for i in range(n)]
    start = [(FIRST - timedelta(days=int(d))).isoformat() for d in rng.integers(100, 900, n)]
    return World(
        [Account(id=a, name=a, attributes={"start": s}) for a, s in zip(ids, start, strict=True)],
        UsageHistory.from_arrays(ids, FIRST, usage),
        {
            a: FIRST + timedelta(days=int(c)) if c < days else None
            for a, c in zip(ids, churn_day, strict=True)
        },
        [FIRST + timedelta(days=s) for s in marks],
    )


def fit_world(w: World, text: str, *, judged: int = 2, upto: int | None = None) -> LearnedFit:
    """Fit on the world's snapshots (the first ``upto``), the last ``judged`` held out."""
    card = config_from_document(parse_yaml(text, "card.yaml")).scorecard
    dates = w.snapshots[:upto]
    plan = Plan(dates[0], dates[-1], timedelta(days=EVERY), timedelta(days=EVERY))
    scorer = w.scorer()
    current = evaluate(
        card,
        lambda times: scorer(card, [t.date() for t in times]),
        w.churn,
        plan,
        observed_until=dates[-1] + timedelta(days=EVERY),
        draws=0,
    )
    inventory = inventory_from(("logins", "noise", "tickets"), {}, start="start")
    return learn_card(
        card,
        text,
        "card.yaml",
        current.data,
        scorer,
        inventory,
        holdout=judged / len(dates),
        max_measures=6,
    )


@pytest.fixture(scope="module")
def population() -> World:
    return world()


@pytest.fixture(scope="module")
def fitted(population: World) -> LearnedFit:
    return fit_world(population, CURRENT.replace("      LOCK\n", ""))


def _measure_on(doc: dict, metric_spec: dict) -> tuple[str, dict]:
    """The fitted measure reading a derived metric of this spec (by its YAML)."""
    card = doc["scorecard"]
    names = [n for n, spec in card["derived"].items() if spec == metric_spec]
    found = [(n, m) for n, m in card["measures"].items() if m["metric"] in names and m["weight"]]
    assert len(found) == 1, (names, list(card["measures"]))
    return found[0]


def _edges(measure: dict) -> list[float]:
    return [b["below"] for b in measure["bands"][:-1]]


def test_fit_recovers_a_known_banded_card(fitted: LearnedFit) -> None:
    doc = yaml.safe_load(fitted.text)
    _, logins = _measure_on(doc, {"window": {"metric": "logins", "agg": "sum", "within": "30d"}})
    assert logins["better"] == "higher"
    edges = _edges(logins)
    # every true edge has a learned one nearby, and no learned edge is far from a true one
    for truth in LOGIN_EDGES:
        assert min(abs(e - truth) for e in edges) <= 0.15 * truth, edges
    assert all(min(abs(e - t) / t for t in LOGIN_EDGES) <= 0.25 for e in edges), edges
    points = [b["points"] for b in logins["bands"]]
    assert points[0] == 0 and points[-1] == 100 and points == sorted(points)
    _, tickets = _measure_on(doc, {"window": {"metric": "tickets", "agg": "sum", "within": "30d"}})
    assert tickets["better"] == "lower"
    assert set(_edges(tickets)) == set(TICKET_EDGES)  # whole numbers: exactly
    points = [b["points"] for b in tickets["bands"]]
    assert points[0] == 100 and points[-1] == 0 and points == sorted(points, reverse=True)
    # the proposal ranks the later snapshots better than the guess it started from
    assert fitted.auc_fitted > fitted.auc_default + 0.02
    assert "# a comment the fit must keep" in fitted.text


def test_a_metric_unrelated_to_churn_is_not_selected(fitted: LearnedFit) -> None:
    chosen = [m.candidate for m in fitted.learned.measures]
    assert chosen and all(c.family != "noise" for c in chosen)
    doc = yaml.safe_load(fitted.text)["scorecard"]
    assert "noise" not in yaml.safe_dump(doc["derived"])
    assert any("noise" in name for name in fitted.learned.selection.left_out)


def test_the_left_out_measure_keeps_its_normalization_with_weight_zero(fitted: LearnedFit) -> None:
    measures = yaml.safe_load(fitted.text)["scorecard"]["measures"]
    logins = measures["logins"]  # 7-day logins: a weaker echo of the 30-day sum
    rows = {r["measure"]: r for r in fitted.explanation}
    if logins["weight"] == 0:
        assert logins["linear"] == {"from": 1, "to": 30}
        assert rows["logins"]["status"] == "left out"
    else:
        assert "bands" in logins and rows["logins"]["status"] == "re-learned"


@pytest.mark.parametrize("lock", ["true", "bands"])
def test_a_locked_measure_keeps_its_bands(population: World, lock: str) -> None:
    text = CURRENT.replace("LOCK", f"lock: {lock}")
    fit = fit_world(population, text)
    doc = yaml.safe_load(fit.text)["scorecard"]
    tickets = doc["measures"]["tickets"]
    assert tickets["bands"] == [
        {"below": 1, "points": 100},
        {"below": 10, "points": 50},
        {"points": 0},
    ]
    assert tickets["better"] == "lower" and tickets["lock"] == (True if lock == "true" else lock)
    row = next(r for r in fit.explanation if r["measure"] == "tickets")
    if lock == "true":  # kept as written: its share of the score too (40 of 100 points)
        assert row["status"] == "kept as written"
        assert row["max_loss"] == pytest.approx(row["old_max_loss"], abs=0.2)
        assert row["old_max_loss"] == pytest.approx(40.0)
    else:  # its bands stay; its weight is learned like any other's (0: left out)
        assert row["status"] in ("reweighted", "left out")
        assert tickets["weight"] >= 0
    # nothing re-learned the tickets' own 30-day sum beside it
    specs = [s for s in doc["derived"].values() if s.get("window", {}).get("metric") == "tickets"]
    sums = [s for s in specs if s["window"]["agg"] == "sum" and s["window"].get("within") == "30d"]
    assert len(sums) == 1


def test_a_locked_direction_is_kept(population: World) -> None:
    """`lock: direction` on a direction the data contradicts: the bands may change, the
    direction may not (the measure is left out rather than flipped)."""
    text = CURRENT.replace("      LOCK\n", "").replace(
        "      linear: {from: 1, to: 30}",
        "      better: lower\n      lock: direction\n      linear: {from: 1, to: 30}",
    )
    fit = fit_world(population, text)
    logins = yaml.safe_load(fit.text)["scorecard"]["measures"]["logins"]
    assert logins["better"] == "lower"
    if "bands" in logins:
        points = [b["points"] for b in logins["bands"]]
        assert points == sorted(points, reverse=True)


def test_the_in_memory_scorer_holds_a_span_and_scores_like_the_whole_history(
    population: World,
) -> None:
    """Candidates are read through ``memory_card_scorer``, which (like the store's loader)
    holds only the days a card's windows reach plus the facts of the days before."""
    inventory = inventory_from(("logins", "noise", "tickets"), {}, start="start")
    card = config_from_document(parse_yaml(CURRENT.replace("      LOCK\n", ""), "c")).scorecard
    cards = candidate_card(generate(inventory, card))
    days = population.snapshots[2:4]
    held = [b for _, b in population.scorer()(cards, days)]
    whole = ScoringHistory(
        cards, population.accounts, {}, population.usage, start_attribute="start"
    )
    outcomes = {a: Outcome(a, c) for a, c in population.churn.items()}
    full = [b for _, b in whole.snapshots(days, excluded=lambda m: churned_by(outcomes, m))]
    for a, b in zip(held, full, strict=True):
        assert a.account_ids == b.account_ids
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, equal_nan=True)
