"""Derived ``days_until`` (a date) and ``sum`` (several metrics): load-time errors, the
scorer against the plain reference, and both kinds live and point in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.registry import Settings
from healthscore.config import config_from_document
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.cycle import Pipeline
from healthscore.pipeline.point_in_time import snapshot_moment
from scoring import score
from scoring.explain import explain
from scoring.learn.candidates import Inventory, candidate_card, field_candidates
from store import AccountRow, SignalRow, Store
from store.attribute_history import AttributeValue

from .scoring_helpers import AS_OF, card, score_both, table

EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()
DERIVED = "    usage_vs_nps: {difference: [feature_adoption, nps]}"
NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def error_for(extra: str) -> tuple[str, int]:
    """Load the example with one more derived metric; the error and that line's number."""
    text = EXAMPLE.replace(DERIVED, f"{DERIVED}\n{extra}", 1)
    line = text[: text.index(extra)].count("\n") + 1
    with pytest.raises(ConfigError) as err:
        config_from_document(parse_yaml(text, "healthscore.yaml"))
    return str(err.value), line


def assert_same_scores(scores: np.ndarray, plain: list[dict]) -> None:
    """The vectorized scores against the plain reference scorer's (None: no score)."""
    for got, expected in zip(scores.tolist(), plain, strict=True):
        if expected["score"] is None:
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected["score"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    renewal_in: {days_until: renewal_dat}",
            "scorecard.derived.renewal_in.days_until: unknown metric 'renewal_dat'",
        ),
        (
            "    all_logins: {sum: [logins_30d, logins_prev_3d]}",
            "scorecard.derived.all_logins.sum: unknown metric 'logins_prev_3d'",
        ),
        (
            "    all_logins: {sum: []}",
            "scorecard.derived.all_logins.sum: sum needs at least two metrics",
        ),
        (
            "    all_logins: {sum: [logins_30d]}",
            "scorecard.derived.all_logins.sum: sum needs at least two metrics",
        ),
        (
            "    all_logins: {sum: [logins_30d, logins_30d]}",
            "scorecard.derived.all_logins.sum: sum names 'logins_30d' twice",
        ),
        (
            "    all_logins: {sum: logins_30d}",
            "scorecard.derived.all_logins.sum: Input should be a valid list",
        ),
        (
            "    renewal_in: {days_until: [renewal_date]}",
            "scorecard.derived.renewal_in.days_until: Input should be a valid string",
        ),
        (
            "    odd: {sum: [logins_30d, nps], days_until: renewal_date}",
            "give exactly one of ratio, change, days_since, count, difference, window, "
            "days_until, sum (got days_until, sum)",
        ),
        (
            "    seats_util: {ratio: [active_users_30d, licensed_seats]}\n"
            "    both: {sum: [seats_util, nps]}",
            "scorecard.derived.both.sum: 'seats_util' is itself derived",
        ),
    ],
)
def test_mistakes_stop_at_load_with_file_line_and_field(extra: str, expected: str) -> None:
    msg, line = error_for(extra)
    assert expected in msg, msg
    if "\n" not in extra:
        assert f"healthscore.yaml:{line} " in msg


def test_days_until_counts_calendar_days_and_goes_negative_once_past() -> None:
    day = 86400.0
    midnight = datetime(2026, 11, 1, tzinfo=UTC).timestamp()  # AS_OF is 1 Nov, 12:00
    rows = [
        {"renewal": midnight + 30 * day},
        {"renewal": midnight},  # today: 0
        {"renewal": midnight - 3 * day + 3600},  # three days ago, in the morning
        {"renewal": "2026-11-11"},  # an ISO date attribute (text)
        {"renewal": None},
    ]
    c = card(
        {"r": {"metric": "days_to_renewal", "linear": {"from": 0, "to": 60}}},
        derived={"days_to_renewal": {"days_until": "renewal"}},
    )
    batch, plain = score_both(c, rows, None)
    values = batch.table.column("days_to_renewal")
    assert values[:4].tolist() == [30.0, 0.0, -3.0, 10.0]
    assert np.isnan(values[4])
    assert_same_scores(batch.score, plain)


def test_sum_adds_the_present_parts_and_is_missing_only_when_all_are() -> None:
    rows = [
        {"a": 1.0, "b": 2.0, "c": 3.0},
        {"a": 1.0, "b": None, "c": 3.0},
        {"a": None, "b": None, "c": None},
        {"a": 0.0, "b": float("inf"), "c": None},  # an infinity is missing, not a sum
    ]
    c = card(
        {"s": {"metric": "total", "linear": {"from": 0, "to": 10}}},
        derived={"total": {"sum": ["a", "b", "c"]}},
    )
    batch, plain = score_both(c, rows, None)
    total = batch.table.column("total")
    assert total[[0, 1, 3]].tolist() == [6.0, 4.0, 0.0]
    assert np.isnan(total[2])
    assert batch.grade[2] == "insufficient_data"
    assert_same_scores(batch.score, plain)


def test_a_sum_is_as_old_as_its_oldest_present_part() -> None:
    t = table([{"a": 1.0, "b": 2.0}])
    old = AS_OF.timestamp() - 40 * 86400
    t.observed["a"][:] = old
    c = card(
        {"s": {"metric": "total", "linear": {"from": 0, "to": 10}, "stale_after": "30d"}},
        derived={"total": {"sum": ["a", "b"]}},
    )
    batch = score(c, t, AS_OF)
    assert batch.table.observed_at("total")[0] == old
    assert bool(batch.stale[0, 0])


@pytest.fixture
def pipeline(store: Store) -> Pipeline:
    """The example card with days to renewal (an attribute with a history) and a sum."""
    text = EXAMPLE.replace(
        DERIVED,
        f"{DERIVED}\n"
        "    days_to_renewal: {days_until: renewal_date}\n"
        "    logins_both: {sum: [logins_30d, logins_prev_30d]}",
        1,
    ).replace(
        "  measures:\n",
        "  measures:\n"
        "    renewal:\n"
        "      label: Days to renewal\n"
        "      group: roi\n"
        "      weight: 1\n"
        "      metric: days_to_renewal\n"
        "      linear: {from: 0, to: 120}\n"
        "      unit: days\n"
        "    logins_60d:\n"
        "      label: Logins (60 days)\n"
        "      group: engagement\n"
        "      weight: 1\n"
        "      metric: logins_both\n"
        "      linear: {from: 0, to: 200}\n",
        1,
    )
    config = config_from_document(parse_yaml(text, "healthscore.yaml"))
    store.upsert_accounts(
        [
            AccountRow(
                f"A{i}",
                "salesforce",
                f"Acme {i}",
                attributes={"plan_tier": "Growth", "renewal_date": "2026-06-30"},
            )
            for i in range(2)
        ]
    )
    seen = datetime(2026, 3, 1, tzinfo=UTC)
    store.record_signals(
        [
            SignalRow("A0", "logins_30d", 40.0, seen, "salesforce"),
            SignalRow("A0", "logins_prev_30d", 60.0, seen, "salesforce"),
            SignalRow("A1", "logins_prev_30d", 25.0, seen, "salesforce"),
            SignalRow("A1", "logins_30d", 10.0, seen + timedelta(days=20), "salesforce"),
        ]
    )
    store.write_attribute_history(
        [
            AttributeValue("A0", "renewal_date", date(2025, 1, 1), date(2026, 3, 31)),
            AttributeValue("A0", "renewal_date", date(2026, 3, 25), date(2027, 3, 31)),
        ]
    )
    with store.session() as s:  # the accounts were synced before the history's last row
        from store.models import Account

        for account in s.query(Account):
            account.updated_at = datetime(2026, 3, 20, tzinfo=UTC)
    return Pipeline(config, Settings(database_url=store.url), store, clock=lambda: NOW)


def test_both_kinds_live_point_in_time_and_in_explain(pipeline: Pipeline) -> None:
    live = pipeline.compute()
    days = live.table.column("days_to_renewal")
    # A0: renewed on the 25th (history, newer than the sync) → 31 Mar 2027; A1: no history
    assert days[live.index("A0")] == (date(2027, 3, 31) - date(2026, 4, 1)).days
    assert days[live.index("A1")] == (date(2026, 6, 30) - date(2026, 4, 1)).days
    total = live.table.column("logins_both")
    assert total.tolist() == [100.0, 35.0]
    when = snapshot_moment(date(2026, 3, 10))
    past = pipeline.compute(as_of=when)
    # on the 10th, A0's renewal date was the 31st of March (21 days ahead); A1 had only
    # its prior-window logins by then
    assert past.table.column("days_to_renewal")[past.index("A0")] == 21.0
    assert past.table.column("logins_both").tolist() == [100.0, 25.0]
    ((_, snapshot),) = pipeline.score_at_dates([date(2026, 3, 10)], hysteresis=False)
    np.testing.assert_array_equal(snapshot.score, past.score)
    lines = {line.name: line for line in explain(past, past.index("A0")).measures}
    assert lines["renewal"].value.startswith("21")
    assert lines["logins_60d"].value.startswith("100")


def test_fit_offers_days_to_each_date_field() -> None:
    inventory = Inventory(dates=("renewal_date", "customer_since"), start="customer_since")
    age, cand = field_candidates(inventory)
    assert age.derived == {"account_age_days": {"days_since": "customer_since"}}
    assert cand.derived == {"days_to_renewal_date": {"days_until": "renewal_date"}}
    assert cand.label == "Days to renewal date"
    t = table([{"renewal_date": "2026-11-21"}, {"renewal_date": None}])
    batch = score(candidate_card([cand]), t, AS_OF)
    assert batch.table.column("days_to_renewal_date")[0] == 20.0
