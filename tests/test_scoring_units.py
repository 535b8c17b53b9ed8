"""Each normalization, derived metric, segment rule and grade rule on edge values."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from scoring import assign_grades, explain, score
from scoring.scorecard import Grades
from scoring.table import SignalTable, history_key

from .scoring_helpers import AS_OF, card, table


def points_of(spec: dict, values: list, **extra) -> list[float]:
    c = card({"m": {"metric": "x", **spec}}, **extra)
    batch = score(c, table([{"x": v} for v in values]), AS_OF)
    return [None if math.isnan(p) else round(float(p), 6) for p in batch.points[:, 0]]


# -- linear ------------------------------------------------------------------------------------
def test_linear_clamps_and_interpolates() -> None:
    assert points_of({"linear": {"from": 10, "to": 60}}, [-5, 0, 10, 35, 60, 1e9]) == [
        0,
        0,
        0,
        50,
        100,
        100,
    ]


def test_linear_lower_is_better_flips_the_line() -> None:
    assert points_of(
        {"better": "lower", "linear": {"from": 3, "to": 30}}, [0, 3, 16.5, 30, 99]
    ) == [100, 100, 50, 0, 0]


def test_log_scale_is_linear_in_log_and_clamps_non_positive() -> None:
    got = points_of({"linear": {"from": 1, "to": 100, "log": True}}, [0, -4, 1, 10, 100, 1000])
    assert got == [0, 0, 0, 50, 100, 100]


def test_nan_and_inf_inputs_are_missing_not_errors() -> None:
    assert points_of({"linear": {"from": 0, "to": 1}}, [None, math.inf, -math.inf, 0.5]) == [
        None,
        None,
        None,
        50,
    ]


# -- bands -------------------------------------------------------------------------------------
BANDS = {"bands": [{"below": 0.3, "points": 0}, {"below": 0.6, "points": 50}, {"points": 100}]}


def test_bands_edges_belong_to_the_upper_band() -> None:
    assert points_of(BANDS, [-1, 0, 0.2999, 0.3, 0.59, 0.6, 5]) == [0, 0, 0, 50, 50, 100, 100]


def test_custom_points_per_band_lower_is_better() -> None:
    spec = {
        "better": "lower",
        "bands": [{"below": 1, "points": 100}, {"below": 3, "points": 40}, {"points": 0}],
    }
    assert points_of(spec, [0, 1, 2, 3, 10, None]) == [100, 40, 40, 0, 0, None]


# -- booleans, categories, percentile -------------------------------------------------------------
def test_boolean_points() -> None:
    assert points_of({"boolean": {"if_true": 90, "if_false": 10}}, [1, 0, None, 2]) == [
        90,
        10,
        None,
        90,
    ]


def test_categories_are_case_insensitive_and_unknown_is_missing() -> None:
    c = card({"tier": {"metric": "plan", "categories": {"Enterprise": 100, "Growth": 60}}})
    batch = score(
        c,
        table([{"plan": "enterprise"}, {"plan": "Growth"}, {"plan": "Free"}, {"plan": None}]),
        AS_OF,
    )
    assert [None if math.isnan(p) else p for p in batch.points[:, 0]] == [100, 60, None, None]
    assert explain(batch, 1).measures[0].value == "Growth"


def test_percentile_is_a_mid_rank_within_the_segment() -> None:
    c = card(
        {"p": {"metric": "x", "percentile": True}},
        segments=[{"name": "big", "when": [{"field": "seats", "at_least": 100}]}],
    )
    rows = [
        {"x": 1, "seats": 10},
        {"x": 2, "seats": 10},
        {"x": 3, "seats": 10},
        {"x": 3, "seats": 10},
        {"x": 100, "seats": 500},
        {"x": 200, "seats": 500},
    ]
    batch = score(c, table(rows), AS_OF)
    # small segment [1, 2, 3, 3]: 1 → 12.5, 2 → 37.5, 3 (tied) → 75; big [100, 200]: 25, 75
    assert batch.points[:, 0].tolist() == [12.5, 37.5, 75.0, 75.0, 25.0, 75.0]
    assert [batch.segment_name(i) for i in range(6)] == ["default"] * 4 + ["big"] * 2


def test_percentile_lower_is_better_and_missing_values_do_not_count() -> None:
    assert points_of({"better": "lower", "percentile": True}, [1, None, 3]) == [75, None, 25]


# -- staleness ---------------------------------------------------------------------------------
def test_a_stale_value_counts_as_missing() -> None:
    c = card(
        {
            "nps": {"metric": "nps", "linear": {"from": 0, "to": 10}, "stale_after": "90d"},
            "use": {"metric": "use", "linear": {"from": 0, "to": 1}},
        }
    )
    t = table([{"nps": 10, "use": 0.5}, {"nps": 10, "use": 0.5}])
    t.observed["nps"][0] = (AS_OF - timedelta(days=91)).timestamp()
    t.observed["nps"][1] = (AS_OF - timedelta(days=89)).timestamp()
    batch = score(c, t, AS_OF)
    assert math.isnan(batch.points[0, 0]) and batch.stale[0, 0]
    assert batch.score.tolist() == [50.0, 75.0]
    assert explain(batch, 0).measures[0].value == "stale"


# -- derived metrics ---------------------------------------------------------------------------
def derived_values(derived: dict, rows: list[dict], t: SignalTable | None = None) -> list:
    c = card({"m": {"metric": "d", "linear": {"from": -1e9, "to": 1e9}}}, derived={"d": derived})
    batch = score(c, t or table(rows), AS_OF)
    return [None if math.isnan(v) else round(float(v), 6) for v in batch.raw[:, 0]]


def test_ratio_division_by_zero_or_missing_is_missing() -> None:
    rows = [
        {"a": 10, "b": 4},
        {"a": 1, "b": 0},
        {"a": 0, "b": 0},
        {"a": None, "b": 2},
        {"a": -3, "b": 2},
    ]
    assert derived_values({"ratio": ["a", "b"]}, rows) == [2.5, None, None, None, -1.5]


def test_change_vs_a_prior_window_metric() -> None:
    rows = [
        {"now": 150, "prev": 100},
        {"now": 50, "prev": 100},
        {"now": 5, "prev": 0},
        {"now": -10, "prev": -20},
    ]
    assert derived_values({"change": {"of": "now", "vs": "prev"}}, rows) == [50, -50, None, 50]


def test_change_over_history_and_count_in_window() -> None:
    t = table([{"users": 12}, {"users": 9}, {"users": 5}])
    rows = [  # (account, metric, value, observed_at)
        ("a0", "users", 10.0, AS_OF - timedelta(days=40)),
        ("a0", "users", 11.0, AS_OF - timedelta(days=31)),
        ("a0", "users", 12.0, AS_OF - timedelta(days=2)),
        ("a1", "users", 9.0, AS_OF - timedelta(days=5)),  # no value 30 days ago
        ("a2", "users", 0.0, AS_OF - timedelta(days=35)),
        ("a0", "ticket", 1.0, AS_OF - timedelta(days=3)),
        ("a0", "ticket", 2.0, AS_OF - timedelta(days=29)),
        ("a0", "ticket", 3.0, AS_OF - timedelta(days=31)),  # outside the window
        ("a2", "ticket", 1.0, AS_OF + timedelta(days=1)),  # after as_of: not yet seen
    ]
    needs = [("as_of", "users", timedelta(days=30)), ("count", "ticket", timedelta(days=30))]
    t = t.with_history(needs, rows, AS_OF)
    assert t.history[history_key("as_of", "users", timedelta(days=30))][0] == 11.0
    assert derived_values({"change": {"of": "users", "over": "30d"}}, [], t) == [
        round(1 / 11 * 100, 6),
        None,
        None,
    ]
    assert derived_values({"count": {"metric": "ticket", "within": "30d"}}, [], t) == [2, 0, 0]


def test_days_since_a_date_and_a_missing_date() -> None:
    when = (AS_OF - timedelta(days=12)).timestamp()
    assert derived_values({"days_since": "last"}, [{"last": when}, {"last": None}]) == [12, None]


def test_difference_of_two_measures_points() -> None:
    c = card(
        {
            "usage": {"metric": "u", "linear": {"from": 0, "to": 100}, "weight": 0},
            "nps": {"metric": "n", "linear": {"from": 0, "to": 10}, "weight": 0},
            "gap": {"metric": "gap", "better": "lower", "linear": {"from": 0, "to": 50}},
        },
        derived={"gap": {"difference": ["usage", "nps"]}},
    )
    batch = score(c, table([{"u": 90, "n": 2}, {"u": 20, "n": 9}, {"u": 90, "n": None}]), AS_OF)
    assert batch.raw[:2, 2].tolist() == pytest.approx([70, -70])
    assert batch.points[:2, 2].tolist() == pytest.approx([0, 100])
    assert math.isnan(batch.raw[2, 2])


# -- weights, coverage, segments ---------------------------------------------------------------
def two_groups(**extra):
    return card(
        {
            "a": {"metric": "a", "group": "x", "weight": 3, "linear": {"from": 0, "to": 100}},
            "b": {"metric": "b", "group": "x", "weight": 1, "linear": {"from": 0, "to": 100}},
            "c": {"metric": "c", "group": "y", "weight": 1, "linear": {"from": 0, "to": 100}},
        },
        groups={"x": 3, "y": 1},
        **extra,
    )


def test_missing_weight_moves_within_the_group_then_across_groups() -> None:
    batch = score(
        two_groups(coverage_floor=0),
        table(
            [
                {"a": 100, "b": 0, "c": 20},  # x = 75, y = 20 → (75·3 + 20)/4 = 61.25
                {"a": None, "b": 40, "c": 20},  # x = 40 (b carries the group) → (120 + 20)/4 = 35
                {"a": 80, "b": 80, "c": None},  # y empty → x alone = 80
            ]
        ),
        AS_OF,
    )
    assert batch.score.tolist() == [61.25, 35.0, 80.0]
    assert batch.coverage.tolist() == pytest.approx([1.0, 0.4375, 0.75])
    assert batch.groups["y"][2] != batch.groups["y"][2]  # NaN: an empty group
    assert batch.weight.sum(axis=1) == pytest.approx([1, 1, 1])


def test_below_the_coverage_floor_is_insufficient_data_not_red() -> None:
    batch = score(two_groups(coverage_floor=0.5), table([{"a": None, "b": 0, "c": 0}]), AS_OF)
    assert batch.grade.tolist() == ["insufficient_data"]
    assert math.isnan(batch.score[0])


def test_no_data_at_all_is_insufficient() -> None:
    batch = score(two_groups(coverage_floor=0.0), table([{"a": None}]), AS_OF)
    assert batch.grade.tolist() == ["insufficient_data"]


def test_first_matching_segment_wins_and_reweights() -> None:
    c = two_groups(
        segments=[
            {
                "name": "onboarding",
                "when": [{"field": "age", "below": 90}],
                "weights": {"a": 0},
                "group_weights": {"y": 3},
            },
            {"name": "enterprise", "when": [{"field": "tier", "in": ["Enterprise", "Strategic"]}]},
        ]
    )
    rows = [
        {"a": 0, "b": 100, "c": 0, "age": 10, "tier": "Enterprise"},
        {"a": 0, "b": 100, "c": 0, "age": 400, "tier": "enterprise"},
        {"a": 0, "b": 100, "c": 0, "age": None, "tier": None},
    ]
    batch = score(c, table(rows), AS_OF)
    assert [batch.segment_name(i) for i in range(3)] == ["onboarding", "enterprise", "default"]
    # onboarding: x = b alone = 100, y = 0, groups 3:3 → 50; default: x = 25 → (75 + 0)/4
    assert batch.score.tolist() == [50.0, 18.75, 18.75]
    why = explain(batch, 1).segment_why
    assert "tier in Enterprise, Strategic" in why and "did not match: onboarding" in why
    assert explain(batch, 2).segment_why == "no segment matched (onboarding, enterprise)"


# -- grades ------------------------------------------------------------------------------------
def test_default_grade_bands_on_the_rounded_score() -> None:
    got = assign_grades(Grades(hysteresis=0), np.array([0, 50.4, 50.6, 75.4, 75.6, 100, np.nan]))
    assert got.tolist() == ["red", "red", "yellow", "yellow", "green", "green", "insufficient_data"]


def test_hysteresis_keeps_the_previous_grade_near_a_border() -> None:
    g = Grades(hysteresis=3)
    scores = np.array([52.0, 54.0, 48.0, 47.0, 73.0, 72.0, 52.0])
    prev = np.array(["red", "red", "yellow", "yellow", "green", "green", None], dtype=object)
    assert assign_grades(g, scores, prev).tolist() == [
        "red",
        "yellow",
        "yellow",
        "red",
        "green",
        "yellow",
        "yellow",
    ]


def test_top_reasons_are_points_lost_against_the_maximum() -> None:
    c = card(
        {
            "seats": {
                "metric": "s",
                "label": "Seat utilization",
                "weight": 3,
                "linear": {"from": 0, "to": 1},
                "unit": "%",
            },
            "nps": {"metric": "n", "label": "NPS", "linear": {"from": 0, "to": 10}},
        }
    )
    batch = score(c, table([{"s": 0.22, "n": 9}]), AS_OF)
    reasons = explain(batch, 0).reasons
    assert [str(r) for r in reasons] == ["Seat utilization 22% (−58)", "NPS 9 (−2)"]
    assert 100 - batch.score[0] == pytest.approx(sum(r.points_lost for r in reasons))
