"""Properties of the scorer over random scorecards and accounts (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scoring import Scorecard, score

from .scoring_helpers import AS_OF, card, score_both, table

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
values = st.one_of(st.none(), st.floats(-50, 250, allow_nan=False), st.sampled_from([0.0, 1.0]))


@st.composite
def normalizations(draw: st.DrawFn, monotone: bool = False) -> dict[str, Any]:
    better = "higher" if monotone else draw(st.sampled_from(["higher", "lower"]))
    kind = draw(
        st.sampled_from(
            ["linear", "log", "bands", "boolean"] + ([] if monotone else ["percentile"])
        )
    )
    if kind in ("linear", "log"):
        low = draw(st.floats(0.5 if kind == "log" else -20, 50))
        high = low + draw(st.floats(1, 150))
        return {"better": better, "linear": {"from": low, "to": high, "log": kind == "log"}}
    if kind == "bands":
        edges = sorted(draw(st.sets(st.integers(-10, 120), min_size=1, max_size=3)))
        pts = sorted(
            draw(st.lists(st.integers(0, 100), min_size=len(edges) + 1, max_size=len(edges) + 1)),
            reverse=better == "lower",
        )
        return {
            "better": better,
            "bands": [{"below": e, "points": p} for e, p in zip(edges, pts, strict=False)]
            + [{"points": pts[-1]}],
        }
    if kind == "boolean":
        lo, hi = sorted(draw(st.lists(st.integers(0, 100), min_size=2, max_size=2)))
        return {"better": better, "boolean": {"if_true": hi, "if_false": lo}}
    return {"better": better, "percentile": True}


@st.composite
def scorecards(draw: st.DrawFn, monotone: bool = False, floor: float | None = None) -> Scorecard:
    n_groups = draw(st.integers(1, 3))
    groups = {f"g{k}": draw(st.floats(0.5, 5)) for k in range(n_groups)}
    measures = {}
    for j in range(draw(st.integers(1, 6))):
        measures[f"m{j}"] = {
            "metric": f"x{j}",
            "group": f"g{draw(st.integers(0, n_groups - 1))}",
            "weight": draw(st.floats(0.1, 5)),
            **draw(normalizations(monotone)),
        }
    segments = []
    if draw(st.booleans()):
        segments = [
            {
                "name": "big",
                "when": [{"field": "size", "at_least": 100}],
                "weights": {"m0": draw(st.floats(0, 5))},
            }
        ]
    return card(
        measures,
        groups=groups,
        segments=segments,
        coverage_floor=draw(st.floats(0, 1)) if floor is None else floor,
        grades={"hysteresis": draw(st.sampled_from([0, 2, 5]))},
    )


@st.composite
def accounts(draw: st.DrawFn, c: Scorecard, n: int | None = None) -> list[dict[str, Any]]:
    size = n or draw(st.integers(1, 12))
    metrics = [m.metric for m in c.measures.values()]
    return [
        {**{x: draw(values) for x in metrics}, "size": draw(st.sampled_from([None, 10, 500]))}
        for _ in range(size)
    ]


@st.composite
def scored(draw: st.DrawFn, **kwargs: Any) -> tuple[Scorecard, list[dict[str, Any]]]:
    c = draw(scorecards(**kwargs))
    return c, draw(accounts(c))


@SETTINGS
@given(scored())
def test_score_is_always_within_0_and_100(case) -> None:
    c, rows = case
    batch = score(c, table(rows), AS_OF)
    present = ~np.isnan(batch.score)
    assert ((batch.score[present] >= 0) & (batch.score[present] <= 100)).all()
    assert ((batch.coverage >= 0) & (batch.coverage <= 1 + 1e-12)).all()
    assert set(batch.grade.tolist()) <= {"red", "yellow", "green", "insufficient_data"}


@SETTINGS
@given(scored(monotone=True, floor=0.0), st.data())
def test_raising_a_higher_is_better_metric_never_lowers_the_score(case, data) -> None:
    c, rows = case
    j = data.draw(st.integers(0, len(c.measures) - 1))
    metric = list(c.measures.values())[j].metric
    i = data.draw(st.integers(0, len(rows) - 1))
    assume(rows[i][metric] is not None)
    raised = [dict(r) for r in rows]
    raised[i][metric] = rows[i][metric] + data.draw(st.floats(0, 100))
    before = score(c, table(rows), AS_OF).score[i]
    after = score(c, table(raised), AS_OF).score[i]
    if not math.isnan(before):
        assert after >= before - 1e-9


@SETTINGS
@given(st.data())
def test_a_missing_measure_at_its_groups_weighted_mean_changes_nothing(data) -> None:
    weights = data.draw(st.lists(st.floats(0.1, 5), min_size=2, max_size=5))
    other_group = data.draw(st.booleans())
    measures = {
        f"m{j}": {"metric": f"x{j}", "weight": w, "linear": {"from": 0, "to": 100}}
        for j, w in enumerate(weights)
    }
    groups = {"g": 2.0}
    if other_group:
        measures["o"] = {"metric": "o", "group": "h", "linear": {"from": 0, "to": 100}}
        groups["h"] = 1.0
    c = card(measures, groups=groups, coverage_floor=0)
    k = data.draw(st.integers(0, len(weights) - 1))
    row = {f"x{j}": data.draw(st.floats(0, 100)) for j in range(len(weights))}
    row["o"] = data.draw(st.floats(0, 100))
    others = [j for j in range(len(weights)) if j != k]
    row[f"x{k}"] = sum(row[f"x{j}"] * weights[j] for j in others) / sum(weights[j] for j in others)
    all_present = score(c, table([row]), AS_OF).score[0]
    one_missing = score(c, table([{**row, f"x{k}": None}]), AS_OF).score[0]
    assert math.isclose(all_present, one_missing, rel_tol=1e-9, abs_tol=1e-9)


@SETTINGS
@given(scored(), st.data())
def test_one_account_alone_equals_its_row_in_the_batch(case, data) -> None:
    c, rows = case
    t = table(rows)
    previous = np.array(
        data.draw(
            st.lists(
                st.sampled_from([None, "red", "yellow", "green"]),
                min_size=len(rows),
                max_size=len(rows),
            )
        ),
        dtype=object,
    )
    batch = score(c, t, AS_OF, previous_grades=previous)
    i = data.draw(st.integers(0, len(rows) - 1))
    one = score(c, t.take([i]), AS_OF, previous_grades=previous[[i]], reference=batch.reference)
    assert np.array_equal(one.score, batch.score[[i]], equal_nan=True)
    assert np.array_equal(one.points, batch.points[[i]], equal_nan=True)
    assert np.array_equal(one.lost, batch.lost[[i]])
    assert one.grade.tolist() == batch.grade[[i]].tolist()
    assert one.coverage.tolist() == batch.coverage[[i]].tolist()
    assert one.top.tolist() == batch.top[[i]].tolist()


@SETTINGS
@given(scored(), st.data())
def test_the_vectorized_scorer_agrees_with_the_plain_per_account_loop(case, data) -> None:
    c, rows = case
    previous = data.draw(st.sampled_from([None, "red", "yellow", "green"]))
    batch, plains = score_both(c, rows, previous)
    for i, plain in enumerate(plains):
        assert plain["grade"] == batch.grade[i]
        assert plain["segment"] == batch.segment_name(i)
        assert math.isclose(plain["coverage"], batch.coverage[i], abs_tol=1e-9)
        if plain["score"] is None:
            assert math.isnan(batch.score[i])
        else:
            assert math.isclose(plain["score"], batch.score[i], abs_tol=1e-9)
