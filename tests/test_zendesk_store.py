"""The store methods the Zendesk sync adds, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from store import AccountRow, SignalRow

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_records_by_id_relink_and_accounts_without(store) -> None:
    store.upsert_accounts([AccountRow("A", "salesforce", "A"), AccountRow("B", "salesforce", "B"),
                           AccountRow("C", "salesforce", "C", deleted=True)])
    store.upsert_source_records("zendesk", "tickets", [
        ("1", None, {"org": "10", "subject": "x"}, False, NOW),
        ("2", "A", {"org": "11"}, False, NOW),
        ("3", "A", {"org": "11"}, False, NOW),
        ("4", "B", {"org": "12"}, False, NOW)])
    assert store.source_records_by_id("zendesk", "tickets", ["1", "4", "9"]) == {
        "1": (None, {"org": "10", "subject": "x"}), "4": ("B", {"org": "12"})}
    # org 10 found its account, org 11 moved from A to B, org 12 lost its account
    touched = store.relink_source_records("zendesk", "tickets", "org",
                                          {"10": "A", "11": "B", "12": None})
    assert touched == {"A", "B"}
    by_id = store.source_records_by_id("zendesk", "tickets", ["1", "2", "3", "4"])
    assert {rid: acct for rid, (acct, _) in by_id.items()} == {
        "1": "A", "2": "B", "3": "B", "4": None}
    assert store.relink_source_records("zendesk", "tickets", "org", {"10": "A"}) == set()
    store.record_signals([SignalRow("A", "zendesk_tickets_30d", 1.0, NOW, "zendesk")])
    assert store.accounts_without("zendesk_tickets_30d", "zendesk") == ["B"]
    assert store.account_ids() == ["A", "B"]
