"""Point-in-time scoring through the live code path, multi-snapshot history, backfill."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.registry import Settings
from healthscore.config import Config, config_from_document
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.backfill import backfill
from healthscore.pipeline.cycle import Pipeline
from healthscore.pipeline.point_in_time import snapshot_moment
from store import AccountRow, SignalRow, Store
from store.engine import upsert
from store.models import ScoreRun, UsageDaily

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
T = snapshot_moment(date(2026, 3, 10))
EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


def example_with_usage(extra_weight: int = 3) -> Config:
    text = EXAMPLE.replace(
        "    usage_vs_nps: {difference: [feature_adoption, nps]}",
        "    usage_vs_nps: {difference: [feature_adoption, nps]}\n"
        "    usage_logins_7d: {window: {metric: logins, agg: sum, within: 7d}}\n"
        "    usage_idle_days: {window: {metric: logins, agg: days_since}}",
    )
    text = text.replace(
        "  measures:\n",
        "  measures:\n"
        "    usage_logins:\n"
        "      label: Logins (7d, usage)\n"
        "      group: engagement\n"
        f"      weight: {extra_weight}\n"
        "      metric: usage_logins_7d\n"
        "      linear: {from: 0, to: 50}\n"
        "    usage_idle:\n"
        "      label: Days since active\n"
        "      group: engagement\n"
        "      weight: 1\n"
        "      metric: usage_idle_days\n"
        "      better: lower\n"
        "      linear: {from: 0, to: 20}\n",
        1,
    )
    return config_from_document(parse_yaml(text, "healthscore.yaml"))


def insert_usage(store: Store, rows: Iterable[tuple[str, str, date, float | None]]) -> None:
    """Test helper: usage_daily rows as a usage loader would write them."""
    with store.session() as s:
        upsert(
            s,
            UsageDaily.__table__,
            [
                {"account_id": a, "metric": m, "day": d, "value": v, "source": "test"}
                for a, m, d, v in rows
            ],
            ["account_id", "metric", "day"],
            ["value"],
        )


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


@pytest.fixture
def pipeline(store: Store) -> Pipeline:
    store.upsert_accounts(
        [
            AccountRow(
                id=f"A{i}", crm="salesforce", name=f"Acme {i}", attributes={"plan_tier": "Growth"}
            )
            for i in range(3)
        ]
    )
    signals = []
    for i in range(3):
        base = {
            "licensed_seats": 10.0,
            "active_users_30d": 6.0 + i,
            "nps": 9.0 - i,
            "feature_adoption_pct": 50.0,
            "onboarding_complete": 1.0,
            "customer_since": datetime(2024, 1, 1, tzinfo=UTC).timestamp(),
            "last_login_at": at(1).timestamp(),
            "urgent_open_cases": 0.0,
        }
        signals += [SignalRow(f"A{i}", m, v, at(1), "salesforce") for m, v in base.items()]
    store.record_signals(signals)
    # later changes: A0's NPS drops on the 20th, A1's seats grow on the 5th
    store.record_signals(
        [
            SignalRow("A0", "nps", 2.0, at(20), "salesforce"),
            SignalRow("A1", "licensed_seats", 40.0, at(5), "salesforce"),
        ]
    )
    insert_usage(
        store,
        [
            (f"A{i}", "logins", date(2026, 2, 20) + timedelta(days=k), float((k + i) % 5))
            for i in range(2)
            for k in range(40)
        ],
    )
    return Pipeline(
        example_with_usage(), Settings(database_url=store.url), store, clock=lambda: NOW
    )


def test_as_of_uses_the_values_observed_by_then_and_usage_up_to_that_day(
    pipeline: Pipeline,
) -> None:
    batch = pipeline.compute(as_of=T)
    nps = batch.measure_names.index("nps")
    a0 = batch.index("A0")
    assert batch.raw[a0, nps] == 9.0  # the drop to 2 came on the 20th
    assert pipeline.compute().raw[a0, nps] == 2.0  # live: today's value
    logins = batch.measure_names.index("usage_logins")
    # A0, 4..10 March (T's day and the 6 before) = k 12..18 → 2 3 4 0 1 2 3
    assert batch.raw[a0, logins] == 15.0
    assert np.isnan(batch.raw[batch.index("A2"), logins])  # no usage rows: missing
    seats = batch.table.column("licensed_seats")
    assert seats[batch.index("A1")] == 40.0  # changed on the 5th, before T


def test_a_signal_or_usage_day_after_t_leaves_the_as_of_score_unchanged(pipeline: Pipeline) -> None:
    before = pipeline.compute(as_of=T)
    store = pipeline.store
    later = T + timedelta(microseconds=1)
    store.record_signals(
        [
            SignalRow("A1", "nps", 0.0, later, "salesforce"),
            SignalRow("A2", "urgent_open_cases", 5.0, at(11), "salesforce"),
            SignalRow("A2", "brand_new_metric", 1.0, at(11), "salesforce"),
        ]
    )
    insert_usage(
        store,
        [("A0", "logins", date(2026, 3, 11), 500.0), ("A2", "logins", date(2026, 3, 11), 7.0)],
    )
    after = pipeline.compute(as_of=T)
    assert after.account_ids == before.account_ids
    np.testing.assert_array_equal(after.score, before.score)
    np.testing.assert_array_equal(after.points, before.points)
    assert after.grade.tolist() == before.grade.tolist()
    # …while the live score sees them
    live = pipeline.compute()
    assert live.raw[live.index("A1"), live.measure_names.index("nps")] == 0.0


def test_score_at_dates_loads_once_and_matches_compute_as_of(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [date(2026, 3, 3), date(2026, 3, 10), date(2026, 3, 25)]
    singles = [pipeline.compute(as_of=snapshot_moment(d)) for d in days]
    calls = {"history": 0, "usage": 0}
    history_rows, usage_series = pipeline.store.history_rows, pipeline.store.usage_series

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pipeline.store, "history_rows", counted("history", history_rows))
    monkeypatch.setattr(pipeline.store, "usage_series", counted("usage", usage_series))
    snapshots = list(pipeline.score_at_dates(days, hysteresis=False))
    assert calls == {"history": 1, "usage": 1}
    assert [m for m, _ in snapshots] == [snapshot_moment(d) for d in days]
    for (_, batch), single in zip(snapshots, singles, strict=True):
        np.testing.assert_array_equal(batch.score, single.score)


def test_accounts_that_had_not_started_or_had_churned_are_left_out(store: Store) -> None:
    from healthscore.pipeline.outcomes import Outcome

    config = example_with_usage()
    spec = {"path": "accounts.csv", "attributes": ["plan_tier"]}
    sources = config.sources.model_copy(
        update={
            "salesforce": config.sources.salesforce.model_copy(update={"enabled": False}),
            "accounts_file": type(config.sources)
            .model_fields["accounts_file"]
            .annotation.__args__[0]
            .model_validate(spec),
        }
    )
    config = config.model_copy(update={"sources": sources})
    store.upsert_accounts(
        [
            AccountRow(
                id=a, crm="file", name=a, attributes={"start_date": s, "plan_tier": "Growth"}
            )
            for a, s in (("old", "2025-01-01"), ("new", "2026-03-15"), ("gone", "2025-06-01"))
        ]
    )
    pipeline = Pipeline(config, Settings(database_url=store.url), store, clock=lambda: NOW)
    outcomes = {"gone": Outcome("gone", churn_date=date(2026, 3, 10))}
    got = {
        m.date(): b.account_ids
        for m, b in pipeline.score_at_dates(
            [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 20)], outcomes=outcomes
        )
    }
    assert got == {
        date(2026, 3, 9): ["gone", "old"],
        date(2026, 3, 10): ["old"],
        date(2026, 3, 20): ["new", "old"],
    }


def test_backfill_fills_past_snapshots_once_and_replaces_on_a_new_scorecard(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store
    live, _ = pipeline.score()  # a live run first: the backfill must not shadow it
    report = backfill(pipeline, date(2026, 3, 1), date(2026, 3, 29), timedelta(days=7))
    assert (report.saved, report.skipped, report.replaced) == (5, 0, 0)
    runs = store.runs()
    assert len(runs) == 6
    assert len(store.score_history("A0")) == 6
    assert set(store.backfilled()) == {
        snapshot_moment(date(2026, 3, d)) for d in (1, 8, 15, 22, 29)
    }
    again = backfill(pipeline, date(2026, 3, 1), date(2026, 3, 29), timedelta(days=7))
    assert (again.saved, again.skipped, again.replaced) == (0, 5, 0)
    assert len(store.runs()) == 6
    # the live run stays each account's latest score
    assert {s.run_id for s in store.scores_as_of(NOW).values()} == {live.run_id}
    # backfilled rows carry the 7-day delta against the previous snapshot
    history = [s for s in store.score_history("A0") if s.reasons.get("backfilled")]
    assert history[1].reasons["delta_7d"] == pytest.approx(
        history[1].score - history[0].score, abs=0.01
    )
    pipeline.config = example_with_usage(extra_weight=9)
    replaced = backfill(pipeline, date(2026, 3, 1), date(2026, 3, 29), timedelta(days=7))
    assert (replaced.saved, replaced.skipped, replaced.replaced) == (0, 0, 5)
    assert len(store.runs()) == 6
    assert len(store.score_history("A0")) == 6
    versions = {v for _, v in store.backfilled().values()}
    assert versions == {pipeline.config.scorecard.version}
    with store.session() as s:
        assert s.query(ScoreRun).count() == 6


def test_backfill_dry_run_saves_nothing_and_rejects_today(pipeline: Pipeline) -> None:
    report = backfill(
        pipeline, date(2026, 3, 1), date(2026, 3, 15), timedelta(days=7), dry_run=True
    )
    assert report.saved == 3 and pipeline.store.runs() == []
    with pytest.raises(ConfigError, match="past date"):
        backfill(pipeline, date(2026, 3, 1), NOW.date(), timedelta(days=7))
    with pytest.raises(ConfigError, match="whole days"):
        backfill(pipeline, date(2026, 3, 1), date(2026, 3, 15), timedelta(hours=12))


def test_a_start_date_metric_leaves_accounts_out_before_they_started(pipeline: Pipeline) -> None:
    store = pipeline.store
    store.record_signals(
        [
            SignalRow(
                "A2",
                "customer_since",
                datetime(2026, 3, 15, tzinfo=UTC).timestamp(),
                NOW,
                "salesforce",
            )
        ]
    )
    got = [b.account_ids for _, b in pipeline.score_at_dates([date(2026, 3, 10)])]
    assert got == [["A0", "A1", "A2"]]  # no start field configured: everyone
    config = pipeline.config
    pipeline.config = config.model_copy(
        update={"scoring": config.scoring.model_copy(update={"start_field": "customer_since"})}
    )
    got = {
        m.date(): b.account_ids
        for m, b in pipeline.score_at_dates([date(2026, 3, 10), date(2026, 3, 20)])
    }
    assert got == {date(2026, 3, 10): ["A0", "A1"], date(2026, 3, 20): ["A0", "A1", "A2"]}
    text = EXAMPLE.replace("  trend_window: 7d", "  trend_window: 7d\n  start_field: since")
    with pytest.raises(
        ConfigError,
        match=r"healthscore.yaml:\d+ scoring.start_field: unknown "
        r"field 'since'",
    ):
        config_from_document(parse_yaml(text, "healthscore.yaml"))


def test_a_live_run_reads_recent_days_and_gets_the_whole_history_aggregates(store: Store) -> None:
    """load_usage(recent=True) reads only the windows' days plus a summary per account."""
    from healthscore.pipeline.point_in_time import load_usage, recent_days
    from scoring.windows import window_columns

    windows = {
        f"w{k}": spec
        for k, spec in enumerate(
            [
                {"metric": "logins", "agg": "sum", "within": "7d", "vs_previous": True},
                {"metric": "logins", "agg": "max", "within": "5d"},
                {"metric": "logins", "agg": "active_days", "within": "10d"},
                {"metric": "logins", "agg": "last"},
                {"metric": "logins", "agg": "last", "within": "3d"},
                {"metric": "logins", "agg": "days_since"},
                {"metric": "logins", "agg": "mean", "within": "14d"},
            ]
        )
    }
    config = example_with_usage()
    derived = {
        **{n: d.model_dump(by_alias=True) for n, d in config.scorecard.derived.items()},
        **{n: {"window": w} for n, w in windows.items()},
    }
    card = type(config.scorecard).model_validate(
        {**config.scorecard.model_dump(by_alias=True), "derived": derived}
    )
    assert recent_days(card) == 14
    rng = np.random.default_rng(5)
    ids = [f"A{i}" for i in range(30)]
    rows = []
    for i, a in enumerate(ids):
        first = int(rng.integers(0, 80))
        for k in range(first, 100):
            if rng.random() < (0.6 if i % 3 else 0.05):  # every third account is sparse
                value = float(rng.integers(0, 4)) if i % 5 else 0.0  # every fifth: zeros
                rows.append((a, "logins", date(2026, 1, 1) + timedelta(days=k), value))
    insert_usage(store, rows)
    until = date(2026, 1, 1) + timedelta(days=95)
    full = load_usage(store, card, ids, until)
    recent = load_usage(store, card, ids, until, recent=True)
    assert full is not None and recent is not None
    assert recent.days == 14 and full.days > 80
    want = window_columns(card.usage_windows(), full, until)
    got = window_columns(card.usage_windows(), recent, until)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], equal_nan=True, err_msg=key)
    # snapshots from 30 days before: the days they span, and the facts of the days before
    span = load_usage(store, card, ids, until, first_moment=until - timedelta(days=30))
    assert span is not None and span.days == 30 + 14
    for back in range(0, 31, 3):
        moment = until - timedelta(days=back)
        want = window_columns(card.usage_windows(), full, moment)
        got = window_columns(card.usage_windows(), span, moment)
        for key in want:
            np.testing.assert_allclose(
                got[key], want[key], equal_nan=True, err_msg=f"{key} at {moment}"
            )


def test_a_history_loaded_from_a_moment_refuses_earlier_ones(pipeline: Pipeline) -> None:
    history = pipeline.history(until=T, since=T)
    assert history.usage is not None and history.usage.days == 7  # the 7-day window only
    history.table_at(T)
    with pytest.raises(ValueError, match="usage history loaded for moments from 2026-03-10"):
        history.table_at(T - timedelta(days=1))
