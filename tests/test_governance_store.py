"""Overrides in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthscore.governance.overrides import (
    OverrideRefused,
    active_overrides,
    clear_override,
    expiring_soon,
    list_overrides,
    record_crm_overrides,
    set_override,
)
from healthscore.governance.policy import OverridePolicy
from store import AccountRow, Store

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POLICY = OverridePolicy(
    allowed_roles=["account_owner", "lead"], roles={"lead": ["Lead@Example.com"]}
)


@pytest.fixture
def accounts(store: Store) -> Store:
    store.upsert_accounts(
        [
            AccountRow("A1", "salesforce", "Acme", owner_email="csm@example.com"),
            AccountRow("A2", "salesforce", "Beta", owner_email="other@x.io"),
        ]
    )
    return store


def test_set_replace_expire_and_clear(accounts: Store) -> None:
    acme = accounts.account("A1")
    first = set_override(
        accounts,
        POLICY,
        acme,
        grade="Yellow",
        reason=" slow rollout ",
        set_by="csm@example.com",
        now=NOW,
        expires=timedelta(days=10),
    )
    assert (first.grade, first.reason) == ("yellow", "slow rollout")
    later = NOW + timedelta(hours=1)
    second = set_override(
        accounts,
        POLICY,
        acme,
        grade="red",
        reason="escalation",
        set_by="lead@example.com",
        now=later,
        expires=timedelta(days=5),
    )
    assert active_overrides(accounts, later + timedelta(minutes=1)) == {"A1": second}
    states = {o.id: o.state(later) for o in list_overrides(accounts, "A1")}
    assert states == {first.id: "replaced", second.id: "active"}
    assert expiring_soon(active_overrides(accounts, later), later, timedelta(days=3)) == []
    soon = later + timedelta(days=3)
    assert [
        o.id for o in expiring_soon(active_overrides(accounts, soon), soon, timedelta(days=3))
    ] == [second.id]
    assert active_overrides(accounts, later + timedelta(days=5)) == {}  # expired by itself
    with pytest.raises(OverrideRefused):
        clear_override(accounts, POLICY, acme, by="other@x.io", now=later)
    assert clear_override(accounts, POLICY, acme, by="lead@example.com", now=later) == 1
    assert active_overrides(accounts, later) == {}


def test_refused_and_bad_values(accounts: Store) -> None:
    beta = accounts.account("A2")
    with pytest.raises(OverrideRefused, match=r"csm@example\.com may not override"):
        set_override(
            accounts, POLICY, beta, grade="red", reason="x", set_by="csm@example.com", now=NOW
        )
    with pytest.raises(OverrideRefused, match="no user given"):
        set_override(accounts, POLICY, beta, grade="red", reason="x", set_by=None, now=NOW)
    assert [o.state(NOW) for o in list_overrides(accounts, "A2")] == ["refused", "refused"]
    assert active_overrides(accounts, NOW) == {}
    with pytest.raises(Exception, match="at most 90d"):
        set_override(
            accounts,
            POLICY,
            beta,
            grade="red",
            reason="x",
            set_by="other@x.io",
            now=NOW,
            expires=timedelta(days=120),
        )


def test_crm_overrides_are_recorded_once_and_cleared(accounts: Store) -> None:
    until = NOW + timedelta(days=20)
    values = {
        "A1": {
            "grade": "Red",
            "reason": "exec left",
            "by": "lead@example.com",
            "set_at": NOW,
            "until": until,
        },
        "A2": {"grade": None, "set_at": None},
    }
    assert record_crm_overrides(accounts, POLICY, "salesforce", values, NOW) == {
        "applied": 1,
        "refused": 0,
        "cleared": 0,
    }
    assert record_crm_overrides(accounts, POLICY, "salesforce", values, NOW) == {
        "applied": 0,
        "refused": 0,
        "cleared": 0,
    }
    assert active_overrides(accounts, NOW)["A1"].expires_at == until
    emptied = {"A1": {"grade": "", "set_at": NOW}}
    assert record_crm_overrides(accounts, POLICY, "salesforce", emptied, NOW)["cleared"] == 1
    assert active_overrides(accounts, NOW) == {}
