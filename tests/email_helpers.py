"""Helpers shared by the SendGrid, Mailchimp and webhook tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.identity import DOMAIN, domain_of
from healthscore.config import Config, load_config
from healthscore.core.retry import RetryPolicy
from sandbox.synthetic import SyntheticOrg
from store import AccountRow, Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ACME, GLOBEX = "001ACME000000001", "001GLOBEX0000001"


class Sleeps:
    """A RetryPolicy sleep that really sleeps (capped) and remembers each wait."""

    def __init__(self, cap: float = 3.0) -> None:
        self.waits: list[float] = []
        self.cap = cap

    def __call__(self, seconds: float) -> None:
        import time

        self.waits.append(seconds)
        time.sleep(min(seconds, self.cap))


def patient(sleeps: Sleeps | None = None) -> RetryPolicy:
    """Retries that honour waits of a few seconds (the sandbox's rate-limit windows)."""
    return RetryPolicy(attempts=6, base=0.01, max_wait=10.0, jitter=0.0, sleep=sleeps or Sleeps())


def add_accounts(store: Store, domains: dict[str, str]) -> None:
    """Accounts (id → domain) with their domain keys, as a CRM sync would leave them."""
    store.upsert_accounts(AccountRow(id=a, crm="salesforce", name=f"Account {a}") for a in domains)
    store.set_account_keys(DOMAIN, {a: [d] for a, d in domains.items()})


def two_account_store(db_url: str) -> Iterator[Store]:
    """A store holding ACME and GLOBEX with their domains (the body of a store fixture)."""
    store = Store(db_url)
    add_accounts(store, {ACME: "acme.example.com", GLOBEX: "globex.example.com"})
    yield store
    store.close()


def org_accounts(store: Store, org: SyntheticOrg) -> dict[str, str]:
    """The synthetic org's accounts in the store; returns account Name → id."""
    ids = {a["Name"]: f"001SYN{i:09d}" for i, a in enumerate(org.accounts)}
    add_accounts(store, {ids[a["Name"]]: domain_of(a["Website"]) or "" for a in org.accounts})
    return ids


def email_config(
    sendgrid: dict[str, Any] | None = None, mailchimp: dict[str, Any] | None = None
) -> Config:
    config = load_config()
    sources = config.sources
    update: dict[str, Any] = {}
    if sendgrid is not None:
        update["sendgrid"] = sources.sendgrid.model_copy(update={"enabled": True, **sendgrid})
    if mailchimp is not None:
        update["mailchimp"] = sources.mailchimp.model_copy(update={"enabled": True, **mailchimp})
    return config.model_copy(update={"sources": sources.model_copy(update=update)})


def signals(store: Store, source: str) -> dict[str, dict[str, float | None]]:
    """account → metric → current value, of one source."""
    from sqlalchemy import select

    from store.models import SignalLatest

    out: dict[str, dict[str, float | None]] = {}
    with store.session() as s:
        for account, metric, value in s.execute(
            select(SignalLatest.account_id, SignalLatest.metric, SignalLatest.value).where(
                SignalLatest.source == source
            )
        ):
            out.setdefault(account, {})[metric] = value
    return out
