"""Scorecard governance in the scorer: critical conditions and group aggregation modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import parse_yaml, validate
from scoring import Scorecard, reasons_for, score
from scoring.explain import explain

from .scoring_helpers import AS_OF, card, score_both, table
from .test_scoring_properties import SETTINGS, accounts, normalizations

LINEAR = {"linear": {"from": 0, "to": 100}}


def test_a_min_aggregated_group_goes_red_on_one_red_input() -> None:
    measures = {
        "a": {"metric": "a", **LINEAR},
        "b": {"metric": "b", **LINEAR},
        "c": {"metric": "c", **LINEAR},
    }
    rows = [{"a": 95, "b": 90, "c": 10}]
    mean = score(card(measures), table(rows), AS_OF)
    assert mean.grade[0] == "yellow"  # (95 + 90 + 10) / 3 = 65
    c = card(measures, groups={"g": 1.0})
    c = c.model_copy(
        update={"groups": {"g": c.groups["g"].model_copy(update={"aggregate": "min"})}}
    )
    low = score(c, table(rows), AS_OF)
    assert low.groups["g"][0] == pytest.approx(10)
    assert low.grade[0] == "red"
    # the one red input carries the group's whole weight, so it is the top reason
    assert reasons_for(low, 0)[0].measure == "c"
    assert reasons_for(low, 0)[0].points_lost == pytest.approx(90)
    high = score(
        c.model_copy(
            update={"groups": {"g": c.groups["g"].model_copy(update={"aggregate": "max"})}}
        ),
        table(rows),
        AS_OF,
    )
    assert high.groups["g"][0] == pytest.approx(95)
    assert high.grade[0] == "green"


def _with_critical(conditions: list[dict]) -> Scorecard:
    return card({"usage": {"metric": "usage", **LINEAR}}, critical=conditions)


def test_a_critical_condition_overrides_any_weighted_result_and_is_the_first_reason() -> None:
    c = _with_critical(
        [
            {
                "name": "escalation",
                "when": {"metric": "open_escalations", "above": 0},
                "at_most": "yellow",
            },
            {
                "name": "overdue_invoice",
                "label": "Invoice overdue",
                "when": {"metric": "invoice_overdue_days", "above": 45},
                "grade": "red",
            },
        ]
    )
    rows = [
        {"usage": 100, "open_escalations": 0, "invoice_overdue_days": 0},  # green
        {"usage": 100, "open_escalations": 2, "invoice_overdue_days": 0},  # capped
        {"usage": 100, "open_escalations": 2, "invoice_overdue_days": 60},  # forced red
        {"usage": 10, "open_escalations": 1, "invoice_overdue_days": None},
    ]  # red anyway
    batch = score(
        c, table(rows), AS_OF, previous_grades=np.array(["green"] * 4, dtype=object)
    )  # hysteresis too
    assert batch.grade.tolist() == ["green", "yellow", "red", "red"]
    assert batch.score[0] == pytest.approx(100)
    assert batch.score[1] == pytest.approx(75)  # capped at the top of yellow
    assert batch.score[2] == pytest.approx(50)
    assert batch.critical.tolist() == [-1, 0, 1, 0]
    first = reasons_for(batch, 1)[0]
    assert first.kind == "critical" and first.measure == "critical:escalation"
    assert str(first).startswith("Critical: Escalation — open_escalations 2")
    assert first.points_lost == pytest.approx(25)
    assert reasons_for(batch, 2)[0].label == "Invoice overdue"
    assert "forced red" in str(reasons_for(batch, 2)[0])
    assert explain(batch, 2).critical == "overdue_invoice"
    assert reasons_for(batch, 0) == []


def test_a_forced_grade_applies_without_enough_data_a_cap_does_not() -> None:
    c = _with_critical(
        [
            {
                "name": "sponsor_lost",
                "when": {"metric": "sponsor_lost", "is": True},
                "grade": "red",
            },
            {"name": "escalation", "when": {"metric": "esc", "above": 0}, "at_most": "yellow"},
        ]
    )
    batch = score(
        c,
        table(
            [
                {"usage": None, "sponsor_lost": 1, "esc": 0},
                {"usage": None, "sponsor_lost": 0, "esc": 3},
            ]
        ),
        AS_OF,
    )
    assert batch.grade.tolist() == ["red", "insufficient_data"]
    assert math.isnan(batch.score[0])


def test_critical_yaml_errors_name_the_line() -> None:
    text = """
groups: {g: {label: G, weight: 1}}
measures:
  u: {label: U, group: g, weight: 1, metric: usage, linear: {from: 0, to: 100}}
critical:
  - name: escalation
    when: {metric: open_escalations, above: 0}
    at_most: purple
"""
    doc = parse_yaml(text, "card.yaml")
    with pytest.raises(ConfigError, match=r"card.yaml:8 critical\[0\]\.at_most"):
        validate(doc, Scorecard)
    doc = parse_yaml(text.replace("purple", "yellow\n    grade: red"), "card.yaml")
    with pytest.raises(ConfigError, match=r"card.yaml:6 critical\[0\]: give exactly one"):
        validate(doc, Scorecard)


@st.composite
def governed_cards(draw: st.DrawFn) -> Scorecard:
    n_groups = draw(st.integers(1, 3))
    groups = {
        f"g{k}": {
            "label": f"g{k}",
            "weight": draw(st.floats(0.5, 5)),
            "aggregate": draw(st.sampled_from(["mean", "min", "max"])),
        }
        for k in range(n_groups)
    }
    measures = {}
    for j in range(draw(st.integers(1, 6))):
        measures[f"m{j}"] = {
            "label": f"m{j}",
            "metric": f"x{j}",
            "group": f"g{draw(st.integers(0, n_groups - 1))}",
            "weight": draw(st.floats(0.1, 5)),
            **draw(normalizations()),
        }
    critical = [
        {
            "name": f"c{k}",
            "when": {
                "metric": f"x{draw(st.integers(0, len(measures) - 1))}",
                draw(st.sampled_from(["above", "below", "at_most"])): draw(st.floats(-20, 150)),
            },
            draw(st.sampled_from(["at_most", "grade"])): draw(
                st.sampled_from(["red", "yellow", "green"])
            ),
        }
        for k in range(draw(st.integers(0, 3)))
    ]
    return Scorecard.model_validate(
        {
            "groups": groups,
            "measures": measures,
            "critical": critical,
            "coverage_floor": draw(st.floats(0, 1)),
            "grades": {"hysteresis": draw(st.sampled_from([0, 2, 5]))},
        }
    )


@SETTINGS
@given(governed_cards(), st.data())
def test_the_vectorized_scorer_agrees_with_the_reference_on_modes_and_critical(c, data) -> None:
    rows = data.draw(accounts(c))
    previous = data.draw(st.sampled_from([None, "red", "yellow", "green"]))
    batch, plains = score_both(c, rows, previous)
    for i, plain in enumerate(plains):
        assert plain["grade"] == batch.grade[i]
        chosen = int(batch.critical[i])
        assert plain["critical"] == (None if chosen < 0 else c.critical[chosen].name)
        for g, value in plain["groups"].items():
            if value is None:
                assert math.isnan(batch.groups[g][i])
            else:
                assert math.isclose(value, batch.groups[g][i], abs_tol=1e-9)
        if plain["score"] is None:
            assert math.isnan(batch.score[i])
        else:
            assert math.isclose(plain["score"], batch.score[i], abs_tol=1e-9)
            # the points lost always add up to what separates the (uncapped) score from 100
            assert math.isclose(float(batch.lost[i].sum()), 100 - batch.uncapped[i], abs_tol=1e-6)


def test_a_critical_condition_on_an_unknown_metric_fails_at_its_line(tmp_path) -> None:
    from pathlib import Path

    from healthscore.config import load_config

    example = (
        Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml"
    ).read_text()
    text = example.replace(
        "  # Critical conditions cap",
        "  critical:\n"
        "    - name: escalation\n"
        "      when: {metric: open_escalation, above: 0}\n"
        "      at_most: yellow\n  # Critical conditions cap",
    )
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    line = text.splitlines().index("      when: {metric: open_escalation, above: 0}") + 1
    with pytest.raises(
        ConfigError,
        match=rf"healthscore.yaml:{line} "
        r"scorecard.critical.0.when.metric: unknown metric "
        r"'open_escalation'",
    ):
        load_config(path)
    path.write_text(text.replace("open_escalation,", "urgent_open_cases,"))
    assert load_config(path).scorecard.critical[0].when.metric == "urgent_open_cases"
