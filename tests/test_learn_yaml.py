"""The learned card written into a copy of the live YAML: changed in place, only where the
fit changed it, and valid."""

from __future__ import annotations

from importlib import resources

import numpy as np
import yaml

from healthscore.backtest.card_yaml import CardEdits, write_card
from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from scoring.learn.binning import Bins
from scoring.learn.candidates import Candidate
from scoring.learn.card import NEW_GROUP, LearnedCard, LearnedMeasure, weights
from scoring.learn.select import Selection

TEXT = resources.files("healthscore").joinpath("healthscore.example.yaml").read_text()


def _bins(name: str, edges: list[float], better: str, whole: bool = False) -> Bins:
    k = len(edges) + 1
    rows = np.full(k, 100)
    events = np.linspace(30, 5, k) if better == "higher" else np.linspace(5, 30, k)
    return Bins(name, np.array(edges, dtype=float), rows, events, better, whole=whole)


def _learned(card) -> LearnedCard:
    def own(name: str) -> Candidate:
        m = card.measures[name]
        return Candidate(name, m.metric, m.label, m.metric, {}, measure=name)

    window = {"window": {"metric": "logins", "agg": "sum", "within": "30d"}}
    new = Candidate(
        "logins_30d_usage",
        "logins_30d_usage",
        "Logins (30d, usage)",
        "logins",
        {"logins_30d_usage": window},
    )
    arr = Candidate("arr", "arr", "ARR", "arr")
    return LearnedCard(
        [
            LearnedMeasure(
                "seat_utilization",
                own("seat_utilization"),
                "deployment",
                2.0,
                "higher",
                _bins("seat_utilization", [0.25, 0.5, 0.75], "higher"),
                [0, 30, 70, 100],
            ),
            LearnedMeasure(
                "last_login",
                own("last_login"),
                "engagement",
                1.5,
                "lower",
                _bins("last_login", [3, 8], "lower", whole=True),
                [100, 45, 0],
            ),
            LearnedMeasure(  # the data says a growing login count is *worse* here
                "login_trend",
                own("login_trend"),
                "engagement",
                0.5,
                "lower",
                _bins("login_trend", [-20, 15], "lower"),
                [100, 60, 0],
            ),
            LearnedMeasure(
                "logins_30d_usage",
                new,
                NEW_GROUP,
                1.0,
                "higher",
                _bins("logins_30d_usage", [10, 100], "higher", whole=True),
                [0, 55, 100],
            ),
            LearnedMeasure(
                "arr", arr, NEW_GROUP, 0.5, "higher", _bins("arr", [20000], "higher"), [0, 100]
            ),
        ],
        -2.0,
        Selection([], [], {}, 0.2),
        40,
    )


def _write() -> tuple[str, object, LearnedCard]:
    card = config_from_document(parse_yaml(TEXT, "healthscore.yaml")).scorecard
    learned = _learned(card)
    measure_w, group_w, _ = weights(learned, card)
    derived = {}
    for m in learned.measures:
        derived.update(m.candidate.derived)
    text = write_card(
        TEXT, "healthscore.yaml", card, CardEdits(learned.measures, measure_w, group_w), derived
    )
    return text, card, learned


def test_the_learned_card_is_written_in_place_and_validates() -> None:
    text, card, _ = _write()
    fitted = config_from_document(parse_yaml(text, "fitted.yaml")).scorecard
    m = fitted.measures
    assert [b.below for b in m["seat_utilization"].bands] == [0.25, 0.5, 0.75, None]
    assert [b.points for b in m["seat_utilization"].bands] == [0, 30, 70, 100]
    assert m["seat_utilization"].unit == "%" and m["seat_utilization"].label == "Seat utilization"
    assert m["last_login"].better == "lower" and m["last_login"].linear is None
    assert [b.points for b in m["last_login"].bands] == [100, 45, 0]
    assert m["login_trend"].better == "lower"  # flipped: stated, not silently inverted
    assert m["logins_30d_usage"].group == NEW_GROUP and m["logins_30d_usage"].weight > 0
    assert fitted.groups[NEW_GROUP].label == "Learned from outcomes"
    assert fitted.derived["logins_30d_usage"].window.metric == "logins"
    # measures the fit did not choose keep their normalization, with weight 0
    assert m["nps"].linear == card.measures["nps"].linear and m["nps"].weight == 0
    # a segment's override keeps its ratio to the base weight; 0 stays 0
    assert fitted.segments[0].weights["login_trend"] == 0
    # the score is the fitted combination: shares follow the coefficients
    total = 2.0 + 1.5 + 0.5 + 1.0 + 0.5
    for name, coef in (("seat_utilization", 2.0), ("arr", 0.5)):
        g = fitted.groups[m[name].group]
        group_sum = sum(x.weight for x in m.values() if x.group == m[name].group)
        share = (
            m[name].weight / group_sum * g.weight / sum(x.weight for x in fitted.groups.values())
        )
        assert abs(share - coef / total) < 0.01


def test_only_the_changed_places_change() -> None:
    text, _, _ = _write()
    before, after = TEXT.split("scorecard:\n", 1), text.split("scorecard:\n", 1)
    assert before[0] == after[0]  # sources and everything above the card: byte for byte
    assert TEXT[TEXT.index("\nalerts:") :] == text[text.index("\nalerts:") :]
    assert "# Gainsight's DEAR model" in text and "# a year-old survey answer" in text
    # the old bands' comment described the old bands: it went with them
    assert "# red < 30 % ≤ yellow < 60 % ≤ green" not in text
    # a band line says what the fitting rows showed
    assert "- {below: 0.25, points: 0}  # < 0.25: 25% · " in text
    assert "- {below: 3, points: 100}  # ≤ 2: " in text  # whole days
    # the direction is written where a person looks for it, right after the metric
    lines = text.splitlines()
    i = lines.index("      metric: login_change_pct")
    assert lines[i + 1] == "      better: lower"
    doc = yaml.safe_load(text)["scorecard"]
    assert list(doc["measures"])[-2:] == ["logins_30d_usage", "arr"]
    assert list(doc["derived"])[-1] == "logins_30d_usage"
    assert "usage_vs_nps: {difference: [feature_adoption, nps]}   # high usage" in text
