"""The store on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthscore.core.errors import ConfigError
from store import AccountRow, SignalRow, Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_schema_creation_is_safe_to_run_twice(db_url: str) -> None:
    first = Store(db_url)
    first.upsert_accounts([AccountRow("001A", "salesforce", "Acme")])
    second = Store(db_url)  # migrates again on open
    assert [a.name for a in second.accounts()] == ["Acme"]
    first.close()
    second.close()


def test_accounts_upsert_updates_and_hides_deleted(store: Store) -> None:
    store.upsert_accounts(
        [
            AccountRow("001A", "salesforce", "Acme", "kim@x.test", "Kim", {"plan_tier": "Growth"}),
            AccountRow("001B", "salesforce", "Beta"),
        ]
    )
    store.upsert_accounts(
        [
            AccountRow("001A", "salesforce", "Acme Corp", deleted=False),
            AccountRow("001B", "salesforce", "Beta", deleted=True),
        ]
    )
    live = store.accounts()
    assert [(a.id, a.name) for a in live] == [("001A", "Acme Corp")]
    assert len(store.accounts(include_deleted=True)) == 2


def test_signals_store_only_changes_and_keep_history(store: Store) -> None:
    store.upsert_accounts([AccountRow("001A", "salesforce", "Acme")])
    sig = SignalRow("001A", "logins_30d", 40.0, T0, "salesforce")
    assert store.record_signals([sig]) == 1
    assert store.record_signals([sig]) == 0  # re-reading the same record adds nothing
    assert (
        store.record_signals(
            [SignalRow("001A", "logins_30d", 40.0, T0 + timedelta(1), "salesforce")]
        )
        == 0
    )
    assert (
        store.record_signals(
            [SignalRow("001A", "logins_30d", 12.0, T0 + timedelta(2), "salesforce")]
        )
        == 1
    )
    history = store.signal_history("001A")
    assert [(h.value, h.observed_at) for h in history] == [(40.0, T0), (12.0, T0 + timedelta(2))]
    assert store.latest_signals() == [("001A", "logins_30d", 12.0, T0 + timedelta(2))]


def test_values_of_one_source_and_moment_are_recorded_as_signals_are(store: Store) -> None:
    store.upsert_accounts([AccountRow("001A", "salesforce", "Acme")])
    store.record_signals([SignalRow("001A", "nps", 9.0, T0, "salesforce")])
    values = [("001A", "nps", 9.0), ("001A", "csat", None), ("001B", "nps", 3.0)]
    # nps of 001A is held by salesforce, not by survey: every value is new for survey
    assert store.record_signal_values("survey", T0 + timedelta(1), values) == 3
    assert store.record_signal_values("survey", T0 + timedelta(2), values) == 0  # no change
    assert store.record_signal_values("survey", T0 + timedelta(3), [("001A", "nps", 4.0)]) == 1
    assert store.record_signal_values("survey", T0, [("001A", "nps", 1.0)]) == 0  # older
    latest = {(a, m, s): (v, t) for a, m, s, v, t in _latest_with_source(store)}
    assert latest == {
        ("001A", "nps", "salesforce"): (9.0, T0),
        ("001A", "nps", "survey"): (4.0, T0 + timedelta(3)),
        ("001A", "csat", "survey"): (None, T0 + timedelta(1)),
        ("001B", "nps", "survey"): (3.0, T0 + timedelta(1)),
    }
    assert [(h.source, h.value) for h in store.signal_history("001A") if h.metric == "nps"] == [
        ("salesforce", 9.0),
        ("survey", 9.0),
        ("survey", 4.0),
    ]


def _latest_with_source(store: Store) -> list[tuple]:
    from store.models import SignalLatest

    with store.session() as s:
        return [
            (r.account_id, r.metric, r.source, r.value, r.observed_at)
            for r in s.query(SignalLatest)
        ]


def test_an_older_observation_does_not_replace_a_newer_one(store: Store) -> None:
    store.upsert_accounts([AccountRow("001A", "salesforce", "Acme")])
    store.record_signals([SignalRow("001A", "nps", 9.0, T0 + timedelta(5), "salesforce")])
    assert store.record_signals([SignalRow("001A", "nps", 2.0, T0, "salesforce")]) == 0
    assert store.latest_signals()[0][2] == 9.0


def test_cursor_round_trip(store: Store) -> None:
    assert store.cursor("salesforce", "Account") is None
    store.set_cursor("salesforce", "Account", "2026-11-01T00:00:00+00:00")
    store.set_cursor("salesforce", "Account", "2026-11-02T00:00:00+00:00")
    assert store.cursor("salesforce", "Account") == "2026-11-02T00:00:00+00:00"


def test_scores_as_of_and_intents_saved_once(store: Store) -> None:
    intent = {
        "key": "entered_red:001A:run1",
        "rule": "entered_red",
        "kind": "slack",
        "account_id": "001A",
        "target": "C1",
        "payload": {"name": "Acme"},
    }
    run1 = store.start_run("v1", started_at=T0)
    store.save_scores(
        run1,
        [
            {
                "account_id": "001A",
                "scored_at": T0,
                "score": 40.0,
                "grade": "red",
                "coverage": 1.0,
                "groups": {},
                "reasons": {},
            }
        ],
        [intent],
    )
    run2 = store.start_run("v1", started_at=T0 + timedelta(days=8))
    store.save_scores(
        run2,
        [
            {
                "account_id": "001A",
                "scored_at": T0 + timedelta(days=8),
                "score": 70.0,
                "grade": "yellow",
                "coverage": 1.0,
                "groups": {},
                "reasons": {},
            }
        ],
        [intent],
    )  # same key again: ignored
    assert store.scores_as_of(T0 + timedelta(days=1))["001A"].score == 40.0
    assert store.scores_as_of(T0 + timedelta(days=9))["001A"].score == 70.0
    assert store.scores_as_of(T0 + timedelta(days=9), exclude_run=run2)["001A"].score == 40.0
    assert [a.key for a in store.actions()] == ["entered_red:001A:run1"]
    assert [r.accounts_scored for r in store.runs()] == [1, 1]


def test_action_delivery_states(store: Store) -> None:
    assert store.claim_action(
        "k1", rule="r", kind="slack", account_id="001A", target="C1", payload={}
    )
    assert not store.claim_action(
        "k1", rule="r", kind="slack", account_id="001A", target="C1", payload={}
    )
    assert store.begin_delivery("k1")
    assert not store.begin_delivery("k1")  # a second worker cannot take it
    store.finish_delivery("k1", "sent", response_id="C1/123.4")
    (row,) = store.actions()
    assert (row.status, row.attempts, row.response_id) == ("sent", 1, "C1/123.4")


def test_pending_writes_stay_until_completed(store: Store) -> None:
    store.queue_writes("salesforce", {"001A": {"score": 40.0}, "001B": {"score": 90.0}})
    store.queue_writes("salesforce", {"001A": {"score": 41.0}})  # newest value wins
    store.fail_writes("salesforce", {"001A": "UNABLE_TO_LOCK_ROW: busy"})
    store.complete_writes("salesforce", {"001B": {"score": 90.0}})
    (left,) = store.pending_writes("salesforce")
    assert (left.account_id, left.fields, left.attempts) == ("001A", {"score": 41.0}, 1)
    assert "UNABLE_TO_LOCK_ROW" in (left.last_error or "")
    assert store.crm_state("salesforce") == {"001B": {"score": 90.0}}


def test_naive_datetimes_are_refused(store: Store) -> None:
    store.upsert_accounts([AccountRow("001A", "salesforce", "Acme")])
    with pytest.raises(Exception, match="naive datetime"):
        store.record_signals([SignalRow("001A", "x", 1.0, datetime(2026, 1, 1), "salesforce")])


def test_bad_database_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Store("not a url")
    with pytest.raises(ConfigError, match="DATABASE_URL: cannot reach the database"):
        Store("postgresql://nobody@127.0.0.1:1/none")
