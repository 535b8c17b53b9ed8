"""Usage window aggregates: hand-built histories, the plain oracle, the scorer, bad configs."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from scoring import score
from scoring.reference import plain_reference, plain_window, row_of, score_account
from scoring.scorecard import Window
from scoring.windows import UsageHistory, window_columns

from .scoring_helpers import card, table

D0 = date(2026, 3, 1)


def day(k: int) -> date:
    return D0 + timedelta(days=k)


def w(agg: str, within: str | None = None, **extra: object) -> Window:
    return Window.model_validate(
        {"metric": "logins", "agg": agg, **({"within": within} if within else {}), **extra}
    )


@pytest.fixture
def history() -> UsageHistory:
    """a: days 0..9 = 1..10 (day 5 missing); b: only zeros from day 3; c: nothing."""
    rows = [("a", "logins", day(k), float(k + 1)) for k in range(10) if k != 5]
    rows += [("b", "logins", day(k), 0.0) for k in range(3, 10)]
    return UsageHistory.from_rows(["a", "b", "c"], rows)


def test_sum_mean_max_active_days_count_a_missing_day_as_zero(history: UsageHistory) -> None:
    at = day(9)  # window of 5 days: days 5..9 → a: (missing) 7 8 9 10
    assert history.aggregate(w("sum", "5d"), at).tolist()[:2] == [34.0, 0.0]
    assert history.aggregate(w("mean", "5d"), at)[0] == pytest.approx(34 / 5)
    assert history.aggregate(w("max", "5d"), at)[0] == 10.0
    assert history.aggregate(w("active_days", "5d"), at)[:2].tolist() == [4.0, 0.0]
    # an account that never reported is missing, not zero
    assert all(
        math.isnan(history.aggregate(w(agg, "5d"), at)[2])
        for agg in ("sum", "mean", "max", "active_days")
    )


def test_the_window_edge_includes_the_day_of_t_and_n_minus_1_before(history: UsageHistory) -> None:
    # 2 days ending day 4: days 3, 4 → 4 + 5
    assert history.aggregate(w("sum", "2d"), day(4))[0] == 9.0
    # a moment during day 4 counts day 4 (its own date), not day 5
    moment = datetime(2026, 3, 5, 8, 30, tzinfo=UTC)
    assert history.aggregate(w("sum", "2d"), moment)[0] == 9.0
    # past the held range the days count as 0: days 9 and 10 → 10
    assert history.aggregate(w("sum", "2d"), day(10))[0] == 10.0


def test_t_before_any_data_is_missing(history: UsageHistory) -> None:
    for window in (w("sum", "7d"), w("last"), w("days_since"), w("max", "3d")):
        assert np.isnan(history.aggregate(window, day(-1))).all()
    # b has reported nothing by day 2: missing; a has (day 0): a value
    assert history.aggregate(w("sum", "7d"), day(2))[:2].tolist()[0] == 6.0
    assert math.isnan(history.aggregate(w("sum", "7d"), day(2))[1])


def test_last_days_since_and_vs_previous(history: UsageHistory) -> None:
    assert history.aggregate(w("last"), day(5))[0] == 5.0  # day 5 missing: day 4's value
    assert math.isnan(history.aggregate(w("last", "1d"), day(5))[0])  # not within a day
    assert history.aggregate(w("last"), day(5))[1] == 0.0  # a reported 0 is a value
    days_since = history.aggregate(w("days_since"), day(12))
    assert days_since[0] == 3.0  # last active day 9
    assert days_since[1] == 10.0  # only zeros since day 3: 12 - 3 + 1
    assert math.isnan(days_since[2])
    change = history.aggregate(w("sum", "3d", vs_previous=True), day(9))
    assert change[0] == pytest.approx((27 - 12) / 12 * 100)  # 8+9+10 vs (missing)+5+7
    assert math.isnan(change[1])  # previous window all zero: no % change


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[str, str, date, float | None]], int]:
    rows = []
    for a in range(draw(st.integers(1, 5))):
        for k in draw(st.sets(st.integers(0, 40), max_size=25)):
            value = draw(
                st.one_of(
                    st.sampled_from([0.0, 1.0, 3.0]),
                    st.floats(0, 50, allow_nan=False, width=32),
                    st.none(),
                )
            )
            rows.append((f"a{a}", "logins", day(k), value))
    return rows, draw(st.integers(-5, 50))


WINDOWS = st.builds(
    lambda agg, n, prev: Window.model_validate(
        {
            "metric": "logins",
            "agg": agg,
            **(
                {"within": f"{n}d"}
                if agg not in ("days_since",) and (agg != "last" or n % 2)
                else {}
            ),
            "vs_previous": prev and agg in ("sum", "mean", "max", "active_days"),
        }
    ),
    st.sampled_from(["sum", "mean", "max", "active_days", "last", "days_since"]),
    st.integers(1, 20),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), WINDOWS)
def test_vectorized_windows_agree_with_the_plain_day_by_day_oracle(case, window) -> None:
    rows, t = case
    ids = sorted({r[0] for r in rows} | {"never"})
    usage = UsageHistory.from_rows(ids, rows, start=D0, end=day(40))
    got = usage.aggregate(window, day(t))
    for i, account in enumerate(ids):
        days = {d: v for a, _, d, v in rows if a == account}
        want = plain_window(window, days, day(t))
        if want is None:
            assert math.isnan(got[i]), (account, window, t)
        else:
            assert got[i] == pytest.approx(want, rel=1e-5, abs=1e-3), (account, window, t)


def test_scorer_reads_windows_and_ratios_of_windows_like_the_reference() -> None:
    c = card(
        {
            "per_seat": {"metric": "logins_per_seat", "linear": {"from": 1, "to": 10}},
            "recency": {"metric": "idle_days", "better": "lower", "linear": {"from": 1, "to": 10}},
        },
        derived={
            "logins_7d": {"window": {"metric": "logins", "agg": "sum", "within": "7d"}},
            "logins_per_seat": {"ratio": ["logins_7d", "seats"]},
            "idle_days": {"window": {"metric": "logins", "agg": "days_since"}},
        },
        coverage_floor=0,
    )
    rows = [
        (a, "logins", day(k), float(v))
        for a, k, v in [("a0", 0, 5), ("a0", 6, 20), ("a1", 1, 2), ("a2", 2, 0)]
    ]
    usage = UsageHistory.from_rows(["a0", "a1", "a2", "a3"], rows)
    t = table([{"seats": 5}, {"seats": 2}, {"seats": 1}, {"seats": 4}])
    at = datetime(2026, 3, 7, 12, tzinfo=UTC)  # day 6
    t = type(t)(
        t.account_ids, t.columns, t.observed, t.labels, window_columns(c.usage_windows(), usage, at)
    )
    batch = score(c, t, at)
    assert batch.table.column("logins_7d").tolist()[:3] == [25.0, 2.0, 0.0]
    assert batch.table.column("logins_per_seat")[0] == 5.0
    assert batch.table.column("idle_days").tolist()[:3] == [0.0, 5.0, 5.0]
    assert math.isnan(batch.score[3])  # no usage at all: both measures missing
    for i in range(4):
        plain = score_account(c, row_of(t, i), at, reference=plain_reference(batch.reference))
        if plain["score"] is None:
            assert math.isnan(batch.score[i])
        else:
            assert plain["score"] == pytest.approx(batch.score[i], abs=1e-9)


BAD_WINDOWS = [
    ("{window: {metric: logins, agg: sum}}", "agg sum needs 'within'"),
    ("{window: {metric: logins, agg: days_since, within: 30d}}", "drop 'within'"),
    ("{window: {metric: logins, agg: last, vs_previous: true}}", "vs_previous compares two"),
    ("{window: {metric: logins, agg: sum, within: 36h}}", "within must be whole days"),
    ("{window: {metric: logins, agg: median, within: 7d}}", "scorecard.derived.x.window.agg"),
    ("{window: {metric: logins, agg: sum, within: 7d, every: 1d}}", "unknown field"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_WINDOWS)
def test_bad_window_configs_name_file_line_and_field(
    tmp_path: Path, spec: str, message: str
) -> None:
    text = (Path(load_config.__code__.co_filename).parent / "healthscore.example.yaml").read_text()
    text = text.replace(
        "  derived:                   # metrics computed from others (no formulas, no eval)\n",
        f"  derived:\n    x: {spec}\n",
    )
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    line = text.splitlines().index(f"    x: {spec}") + 1
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line} scorecard.derived.x" in str(err.value)
    assert message in str(err.value)


def test_a_ratio_may_read_a_window_but_not_another_derived_metric(tmp_path: Path) -> None:
    text = (Path(load_config.__code__.co_filename).parent / "healthscore.example.yaml").read_text()
    ok = text.replace(
        "    logins_per_seat: {ratio: [logins_30d, licensed_seats]}",
        "    logins_per_seat: {ratio: [usage_30d, licensed_seats]}\n"
        "    usage_30d: {window: {metric: logins, agg: sum, within: 30d}}",
    )
    (tmp_path / "ok.yaml").write_text(ok)
    card_ = load_config(tmp_path / "ok.yaml").scorecard
    assert set(card_.usage_windows()) == {"usage_30d"}
    assert "logins" not in card_.source_metrics()  # usage metrics are not signals
    bad = text.replace(
        "    logins_per_seat: {ratio: [logins_30d, licensed_seats]}",
        "    logins_per_seat: {ratio: [seat_utilization, licensed_seats]}",
    )
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ConfigError, match="is itself derived"):
        load_config(tmp_path / "bad.yaml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    histories(),
    st.lists(WINDOWS, min_size=1, max_size=3),
    st.lists(st.sampled_from(["higher", "lower"]), min_size=3, max_size=3),
    st.floats(0, 1),
)
def test_scores_on_window_measures_agree_with_the_plain_per_account_scorer(
    case, windows, better, floor
) -> None:
    rows, t = case
    ids = sorted({r[0] for r in rows} | {"never"})
    usage = UsageHistory.from_rows(ids, rows, start=D0, end=day(40))
    derived = {
        f"w{k}": {
            "window": {
                "metric": "logins",
                "agg": w.agg,
                **({"within": f"{w.days}d"} if w.days else {}),
                "vs_previous": w.vs_previous,
            }
        }
        for k, w in enumerate(windows)
    }
    measures = {
        f"m{k}": {"metric": f"w{k}", "better": better[k], "linear": {"from": 0, "to": 30}}
        for k in range(len(windows))
    }
    c = card(measures, derived=derived, coverage_floor=floor)
    at = datetime.combine(day(t), datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
    base = table([{"size": 1} for _ in ids])
    t_ = type(base)(
        ids, base.columns, base.observed, base.labels, window_columns(c.usage_windows(), usage, at)
    )
    batch = score(c, t_, at)
    for i in range(len(ids)):
        plain = score_account(c, row_of(t_, i), at, reference=plain_reference(batch.reference))
        assert plain["grade"] == batch.grade[i]
        if plain["score"] is None:
            assert math.isnan(batch.score[i])
        else:
            assert plain["score"] == pytest.approx(batch.score[i], abs=1e-9)
