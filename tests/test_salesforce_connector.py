"""The Salesforce connector through simple-salesforce against the HTTPS emulator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote_plus

import pytest

from connectors.registry import Settings
from connectors.salesforce import SalesforceClient, build_soql
from connectors.salesforce.sync import sync_accounts
from healthscore.core.errors import AuthError, ConfigError, FatalError, RateLimited
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, generate_org
from tests.conftest import FAST_RETRY, fast_config

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def queries(emu: SalesforceEmulator) -> list[str]:
    return [unquote_plus(r.query["q"]) for r in emu.requests("GET", r"/query(All)?/?$")]


def test_full_sync_pages_through_every_account(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(4100, seed=3, now=NOW))
    pipeline = make_pipeline()
    report = sync_accounts(pipeline.context)
    assert (report.records, report.skipped) == (4100, 0)
    assert len(pipeline.store.accounts()) == 4100
    # 2,000 per page: the first query plus two nextRecordsUrl pages
    assert len(sf_emu.requests("GET", r"/queryAll/?$")) == 1
    assert len(sf_emu.requests("GET", r"/queryAll/.+-\d+$")) == 2
    (soql,) = queries(sf_emu)
    assert "WHERE" not in soql and soql.endswith("ORDER BY SystemModstamp, Id")
    assert "Owner.Email" in soql


def test_incremental_resync_reads_from_the_cursor_minus_overlap(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    ids = sf_emu.seed(generate_org(30, seed=4, now=NOW))
    pipeline = make_pipeline()
    sync_accounts(pipeline.context)
    cursor = datetime.fromisoformat(pipeline.store.cursor("salesforce", "Account") or "")
    sf_emu.update("Account", ids[5], {"Logins_30d__c": 3.0})
    sf_emu.clear_log()
    report = sync_accounts(pipeline.context)
    (soql,) = queries(sf_emu)
    since = (cursor - pipeline.config.sources.salesforce.overlap).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"WHERE SystemModstamp >= {since}" in soql
    assert report.signals_changed == 1
    assert pipeline.store.latest_signals()  # the new value is stored
    values = {(a, m): v for a, m, v, _ in pipeline.store.latest_signals()}
    assert values[(ids[5], "logins_30d")] == 3.0
    new_cursor = datetime.fromisoformat(pipeline.store.cursor("salesforce", "Account") or "")
    assert new_cursor > cursor


def test_a_malformed_record_is_logged_with_its_id_and_skipped(
    sf_emu: SalesforceEmulator,
    make_pipeline: Callable[..., Pipeline],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = sf_emu.seed(generate_org(20, seed=5, now=NOW))
    sf_emu.update("Account", ids[8], {"Name": ""})
    pipeline = make_pipeline()
    with caplog.at_level(logging.WARNING):
        report = sync_accounts(pipeline.context)
    assert (report.records, report.skipped) == (20, 1)
    assert report.skipped_ids == [ids[8]]
    assert f"skipped Salesforce Account {ids[8]}: Name is empty" in caplog.text
    assert len(pipeline.store.accounts()) == 19


def test_deleted_accounts_are_marked_and_not_scored(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    ids = sf_emu.seed(generate_org(10, seed=6, now=NOW))
    pipeline = make_pipeline()
    sync_accounts(pipeline.context)
    sf_emu.delete("Account", ids[0])
    report = sync_accounts(pipeline.context)
    assert report.deleted == 1
    assert ids[0] not in {a.id for a in pipeline.store.accounts()}
    scoring, _ = pipeline.score(dry_run=True)
    assert scoring.scored == 9


def test_missing_health_field_says_exactly_what_to_create(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(5, seed=7, now=NOW))
    sf_emu.remove_field("Account", "Health_Trend__c")
    sf_emu.remove_field("Account", "Licensed_Seats__c")
    with pytest.raises(ConfigError) as err:
        sync_accounts(make_pipeline().context)
    msg = str(err.value)
    assert (
        "sources.salesforce.metrics.licensed_seats: Account has no field Licensed_Seats__c" in msg
    )
    assert "Health_Trend__c  (Text(40))" in msg and "create these custom fields" in msg
    assert "Health_Score__c" not in msg  # only what is missing


def test_expired_session_is_refreshed_once(sf_emu: SalesforceEmulator, settings: Settings) -> None:
    sf_emu.seed(generate_org(5, seed=8, now=NOW))
    client = SalesforceClient(settings, retry=FAST_RETRY)
    client.describe("Account")
    sf_emu.expire_tokens()
    assert client.describe("Account", max_age=0)["name"] == "Account"  # not from the cache
    assert len(sf_emu.requests("POST", r"/services/oauth2/token")) == 2


def test_bad_credentials_give_a_clear_error_without_the_secret(
    sf_emu: SalesforceEmulator, settings: Settings
) -> None:
    bad = Settings(**{**settings.model_dump(), "salesforce_client_secret": "wrong-secret"})
    with pytest.raises(AuthError) as err:
        SalesforceClient(bad, retry=FAST_RETRY).describe("Account")
    assert "Salesforce login failed (client_credentials flow" in str(err.value)
    assert "invalid_client" in str(err.value)
    assert "wrong-secret" not in str(err.value)


def test_request_limit_is_a_rate_limit_not_an_auth_failure(
    sf_emu: SalesforceEmulator, settings: Settings
) -> None:
    client = SalesforceClient(settings, retry=FAST_RETRY)
    sf_emu.faults.add("rate_limit", method="GET", path=r"/describe")
    with pytest.raises(RateLimited, match="daily API allocation used up"):
        client.describe("Account")


def test_server_errors_are_retried_then_reported(
    sf_emu: SalesforceEmulator, settings: Settings
) -> None:
    client = SalesforceClient(settings, retry=FAST_RETRY)
    sf_emu.faults.add("server_error", method="GET", path=r"/describe", times=3)
    assert client.describe("Account")["name"] == "Account"
    assert [r.status for r in sf_emu.requests("GET", r"/describe")] == [503, 503, 503, 200]


def test_tls_is_verified(sf_emu: SalesforceEmulator, settings: Settings) -> None:
    untrusting = Settings(
        **{
            **settings.model_dump(),
            "salesforce_ca_bundle": None,
            "salesforce_client_secret": sf_emu.client_secret,
        }
    )
    with pytest.raises(FatalError, match=r"TLS|certificate|SSL"):
        SalesforceClient(untrusting, retry=FAST_RETRY).sf  # noqa: B018


def test_soql_uses_only_configured_field_names() -> None:
    source = fast_config().sources.salesforce
    soql = build_soql(source, datetime(2026, 11, 1, 8, 30, tzinfo=UTC))
    assert "WHERE SystemModstamp >= 2026-11-01T08:30:00Z ORDER BY" in soql
    with pytest.raises(ValueError, match="not a Salesforce field name"):
        type(source).model_validate({**source.model_dump(), "metrics": {"x": "Name' OR Id != '"}})
