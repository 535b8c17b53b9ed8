"""The action log's new reads and writes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from store import Store
from store.models import utcnow


def test_claims_bundles_keys_and_per_target_counts(store: Store) -> None:
    def claim(key: str, kind: str, target: str | None, **kw: object) -> bool:
        return store.claim_action(
            key, rule="r", kind=kind, account_id="001", target=target, payload={"k": key}, **kw
        )  # type: ignore[arg-type]

    assert claim("r:001:1:email:a", "email_send", "Ana@x.example")
    assert not claim("r:001:1:email:a", "email_send", "ana@x.example")  # the key holds
    assert claim("r:001:1:email:b", "email_send", "ana@x.example")
    assert claim(
        "r:002:1:email:c",
        "email_send",
        "bo@x.example",
        status="skipped",
        error="opted out of email in the CRM",
    )
    assert store.target_counts("email_send", utcnow() - timedelta(days=7)) == {
        "ana@x.example": 2
    }  # case-insensitive; a skipped one is no email
    assert store.target_counts("email_send", utcnow() + timedelta(seconds=5)) == {}
    assert store.action_keys("email_send") == {
        "r:001:1:email:a",
        "r:001:1:email:b",
        "r:002:1:email:c",
    }

    for n in range(3):
        assert claim(f"r:00{n}:1:digest", "digest", "C1")
    items = [f"r:00{n}:1:digest" for n in range(3)]
    assert store.bundle_actions(
        "r:digest:2026-11-26:C1",
        rule="r",
        kind="slack",
        target="C1",
        payload={"digest": True},
        item_keys=items,
    )
    assert not store.bundle_actions(
        "r:digest:2026-11-26:C1", rule="r", kind="slack", target="C1", payload={}, item_keys=["x"]
    )
    bundled = store.actions(kind="digest")
    assert {(a.status, a.response_id) for a in bundled} == {("bundled", "r:digest:2026-11-26:C1")}
    (digest,) = store.actions(kind="slack")
    assert (digest.status, digest.account_id, digest.target) == ("pending", "*", "C1")
