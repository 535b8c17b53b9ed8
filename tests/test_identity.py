"""Identity resolution: external id, then domain; free mail ignored; ambiguity reported."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from connectors.identity import DOMAIN, IdentityIndex, domain_of
from connectors.salesforce.sync import sync_accounts
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, generate_org
from store import AccountRow, Store


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane@Acme.com", "acme.com"),
        ("https://www.acme.com/about", "acme.com"),
        ("acme.com", "acme.com"),
        ("http://eu.acme.co.uk:8080", "eu.acme.co.uk"),
        ("", None),
        (None, None),
        ("not a domain", None),
        ("localhost", None),
    ],
)
def test_domain_of(raw: str | None, expected: str | None) -> None:
    assert domain_of(raw) == expected


INDEX = IdentityIndex(
    [
        ("domain", "acme.com", "A1"),
        ("domain", "globex.com", "G1"),
        ("domain", "shared.io", "S1"),
        ("domain", "shared.io", "S2"),
        ("hubspot:company", "hs-77", "G1"),
    ],
    account_ids=["A1", "G1", "S1", "S2"],
)


def test_external_id_wins_over_domain() -> None:
    m = INDEX.resolve(external=[("hubspot:company", "hs-77")], domains=["acme.com"])
    assert (m.account_id, m.method) == ("G1", "external_id")
    m = INDEX.resolve(external=[("account", "S2")], domains=["shared.io"])
    assert (m.account_id, m.method) == ("S2", "external_id")


def test_domain_of_an_email_and_of_a_subdomain() -> None:
    assert INDEX.resolve(domains=["bob@acme.com"]).account_id == "A1"
    assert INDEX.resolve(domains=["https://eu.app.acme.com"]).account_id == "A1"
    assert (
        INDEX.resolve(external=[("hubspot:company", "unknown")], domains=["x@globex.com"]).method
        == "domain"
    )


def test_free_mail_is_never_a_company() -> None:
    m = INDEX.resolve(domains=["someone@gmail.com", "other@outlook.com"])
    assert not m.matched and m.reason == "no_key"
    # a free-mail address is skipped, a later company address still matches
    assert INDEX.resolve(domains=["a@gmail.com", "b@acme.com"]).account_id == "A1"


def test_a_shared_domain_is_ambiguous_not_guessed() -> None:
    m = INDEX.resolve(domains=["ops@shared.io"])
    assert not m.matched and m.reason == "ambiguous"
    assert "shared.io belongs to 2 accounts: S1, S2" in m.detail


def test_unknown_domain_is_unmatched_with_the_domain_named() -> None:
    m = INDEX.resolve(domains=["x@initech.com"])
    assert (m.reason, m.detail) == ("no_match", "no account with domain initech.com")


def test_store_keeps_keys_and_unmatched_records(store: Store) -> None:
    store.upsert_accounts(
        [
            AccountRow("A1", "salesforce", "Acme"),
            AccountRow("B1", "salesforce", "Beta", deleted=True),
        ]
    )
    store.set_account_keys(DOMAIN, {"A1": ["acme.com", "acme.io"], "B1": ["beta.com"]})
    store.set_account_keys(DOMAIN, {"A1": ["acme.com"]})  # replaced, not added
    assert store.account_keys(DOMAIN) == [("domain", "acme.com", "A1")]  # B1 is deleted
    store.record_unmatched(
        "zendesk", "ticket", {"t1": ("no_match", "initech.com"), "t2": ("ambiguous", "shared.io")}
    )
    store.record_unmatched("zendesk", "ticket", {}, matched=["t1"])
    assert [(u.record_id, u.reason) for u in store.unmatched("zendesk")] == [("t2", "ambiguous")]
    assert store.unmatched_counts() == {"zendesk": 1}


def test_salesforce_sync_records_account_domains(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(12, seed=5, now=datetime(2026, 11, 23, tzinfo=UTC)))
    pipeline = make_pipeline()
    sync_accounts(pipeline.context)
    keys = pipeline.store.account_keys(DOMAIN)
    assert len(keys) == 12 and all(v.endswith(".example.com") for _, v, _ in keys)
    index = IdentityIndex(keys)
    account = pipeline.store.accounts()[0]
    website = sf_emu.record("Account", account.id)["Website"]
    assert index.resolve(domains=[f"ceo@{domain_of(website)}"]).account_id == account.id
