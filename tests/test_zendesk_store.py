"""The store methods the Zendesk sync adds, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from store import AccountRow, SignalRow

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_records_by_id_relink_and_accounts_without(store) -> None:
    store.upsert_accounts(
        [
            AccountRow("A", "salesforce", "A"),
            AccountRow("B", "salesforce", "B"),
            AccountRow("C", "salesforce", "C", deleted=True),
        ]
    )
    store.upsert_source_records(
        "zendesk",
        "tickets",
        [
            ("1", None, {"org": "10", "subject": "x"}, False, NOW),
            ("2", "A", {"org": "11"}, False, NOW),
            ("3", "A", {"org": "11"}, False, NOW),
            ("4", "B", {"org": "12"}, False, NOW),
        ],
    )
    assert store.source_records_by_id("zendesk", "tickets", ["1", "4", "9"]) == {
        "1": (None, {"org": "10", "subject": "x"}),
        "4": ("B", {"org": "12"}),
    }
    # org 10 found its account, org 11 moved from A to B, org 12 lost its account
    touched = store.relink_source_records(
        "zendesk", "tickets", "org", {"10": "A", "11": "B", "12": None}
    )
    assert touched == {"A", "B"}
    by_id = store.source_records_by_id("zendesk", "tickets", ["1", "2", "3", "4"])
    assert {rid: acct for rid, (acct, _) in by_id.items()} == {
        "1": "A",
        "2": "B",
        "3": "B",
        "4": None,
    }
    assert store.relink_source_records("zendesk", "tickets", "org", {"10": "A"}) == set()
    store.record_signals([SignalRow("A", "zendesk_tickets_30d", 1.0, NOW, "zendesk")])
    assert store.accounts_without("zendesk_tickets_30d", "zendesk") == ["B"]
    assert store.account_ids() == ["A", "B"]


def test_ratings_follow_their_tickets_account(store) -> None:
    store.upsert_accounts([AccountRow("A", "salesforce", "A"), AccountRow("B", "salesforce", "B")])
    store.upsert_source_records(
        "zendesk",
        "tickets",
        [
            ("1", "A", {"org": "10"}, False, NOW),
            ("2", "B", {"org": "11"}, False, NOW),
            ("3", None, {"org": "12"}, False, NOW),
        ],
    )
    store.upsert_source_records(
        "zendesk",
        "satisfaction_ratings",
        [
            ("r1", None, {"ticket_id": "1"}, False, NOW),  # read before its ticket was kept
            ("r2", "A", {"ticket_id": "2"}, False, NOW),  # its ticket moved to B since
            ("r3", "B", {"ticket_id": "3"}, False, NOW),  # its ticket has no account now
            ("r4", "A", {"ticket_id": "99"}, False, NOW),  # its ticket is not kept
            ("r5", "B", {"ticket_id": "2"}, False, NOW),
        ],
    )  # already right
    assert store.follow_parent_records(
        "zendesk", "satisfaction_ratings", "tickets", "ticket_id"
    ) == {"A", "B"}
    by_id = store.source_records_by_id(
        "zendesk", "satisfaction_ratings", ["r1", "r2", "r3", "r4", "r5"]
    )
    assert {rid: acct for rid, (acct, _) in by_id.items()} == {
        "r1": "A",
        "r2": "B",
        "r3": None,
        "r4": None,
        "r5": "B",
    }
    # nothing left to move: nothing touched, nothing written
    assert (
        store.follow_parent_records("zendesk", "satisfaction_ratings", "tickets", "ticket_id")
        == set()
    )
    # tickets of another object with the same id are not parents
    store.upsert_source_records("zendesk", "other", [("1", "B", {}, False, NOW)])
    assert (
        store.follow_parent_records("zendesk", "satisfaction_ratings", "tickets", "ticket_id")
        == set()
    )


def test_unowned_records_find_their_account(store) -> None:
    store.upsert_accounts([AccountRow("A", "salesforce", "A"), AccountRow("B", "salesforce", "B")])
    store.upsert_source_records(
        "zendesk",
        "tickets",
        [
            ("1", None, {"org": "10"}, False, NOW),
            ("2", None, {"org": "11"}, False, NOW),
            ("3", "B", {"org": "10"}, False, NOW),  # owned: left alone
            ("4", None, {"org": "12"}, False, NOW),
        ],
    )  # its organization has no link
    assert store.link_unowned_records("zendesk", "tickets", "org", {"10": "A", "11": "B"}) == {
        "A",
        "B",
    }
    by_id = store.source_records_by_id("zendesk", "tickets", ["1", "2", "3", "4"])
    assert {rid: acct for rid, (acct, _) in by_id.items()} == {
        "1": "A",
        "2": "B",
        "3": "B",
        "4": None,
    }
    assert store.link_unowned_records("zendesk", "tickets", "org", {"10": "A"}) == set()
