"""HubSpot marketing email events as an engagement source (SDK api_request → emulator)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from connectors.hubspot import HubSpotClient
from connectors.hubspot.email_events import pull_email_events
from connectors.registry import Settings, sources_model
from healthscore.config import Config, load_config
from healthscore.core.errors import AuthError
from healthscore.core.quota import LocalQuota
from healthscore.core.retry import RetryPolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmailEmulator
from store import Store
from tests.conftest import FAST_RETRY
from tests.email_helpers import (
    ACME,
    GLOBEX,
    NOW,
    Sleeps,
    patient,
    signals,
    two_account_store,
)

DAY = timedelta(days=1)


@pytest.fixture
def hs() -> Iterator[HubSpotEmailEmulator]:
    with HubSpotEmailEmulator(search_per_second=1000, requests_per_10s=10_000) as emu:
        yield emu


@pytest.fixture
def hs_store(db_url: str) -> Iterator[Store]:
    yield from two_account_store(db_url)


def config() -> Config:
    base = load_config()
    sources = base.sources.model_copy(
        update={
            "hubspot": base.sources.hubspot.model_copy(update={"enabled": True}),
            "hubspot_email": base.sources.hubspot_email.model_copy(update={"enabled": True}),
        }
    )
    return base.model_copy(update={"sources": sources})


def client(
    emu: HubSpotEmailEmulator, *, token: str | None = None, retry: RetryPolicy = FAST_RETRY
) -> HubSpotClient:
    settings = Settings(
        hubspot_access_token=token or emu.access_token, hubspot_base_url=emu.base_url
    )
    return HubSpotClient(
        settings, retry=retry, quota=LocalQuota(1000, 1000), search_quota=LocalQuota(1000, 1000)
    )


def pipeline(
    store: Store,
    emu: HubSpotEmailEmulator,
    *,
    clock: Callable = lambda: NOW,
    retry: RetryPolicy = FAST_RETRY,
) -> Pipeline:
    return Pipeline(
        config(),
        Settings(database_url=store.url),
        store,
        hubspot=client(emu, retry=retry),
        clock=clock,
    )


def test_sync_rates_unmatched_and_filtered_opens(hs: HubSpotEmailEmulator, hs_store: Store) -> None:
    hs.send_email("ana@acme.example.com", NOW - 2 * DAY, opened=True, clicked=True)
    hs.send_email("ana@acme.example.com", NOW - 3 * DAY, bot_open=True)  # a bot: not an open
    hs.send_email("bo@acme.example.com", NOW - 4 * DAY, unsubscribed=True)
    hs.send_email("cy@acme.example.com", NOW - 4 * DAY, bounced=True)
    hs.send_email("gil@globex.example.com", NOW - 4 * DAY, opened=True)
    hs.send_email("gil@globex.example.com", NOW - 100 * DAY, opened=True)  # too old
    hs.send_email("fan@gmail.com", NOW - 4 * DAY, opened=True)
    report = pipeline(hs_store, hs).sync("hubspot_email")
    got = signals(hs_store, "hubspot_email")
    assert got[ACME] == {
        "hubspot_email_open_rate_90d": round(1 / 3, 4),
        "hubspot_email_click_rate_90d": round(1 / 3, 4),
        "hubspot_email_bounces_90d": 1.0,
        "hubspot_email_unsubscribes_90d": 1.0,
        "hubspot_email_recipients": 3.0,
    }
    assert got[GLOBEX]["hubspot_email_open_rate_90d"] == 1.0
    assert [u.record_id for u in hs_store.unmatched("hubspot_email")] == ["fan@gmail.com"]
    assert report.unmatched == 1
    query = hs.requests("GET", r"/email/public/v1/events$")[0].query
    assert query["excludeFilteredEvents"] == "true" and query["limit"] == "1000"
    window_opens = NOW.replace(hour=0, minute=0) - 90 * DAY  # 00:00 UTC, 90 days before
    assert int(query["startTimestamp"]) == int(window_opens.timestamp() * 1000)


def test_pages_follow_the_offset_token(hs: HubSpotEmailEmulator) -> None:
    for n in range(4):
        hs.send_email(f"u{n}@acme.example.com", NOW - (n + 1) * DAY)  # SENT + DELIVERED
    pages = list(pull_email_events(client(hs), NOW - 10 * DAY, NOW, limit=3))
    assert [len(p) for p in pages] == [3, 3, 2]
    offsets = [r.query.get("offset") for r in hs.requests("GET", r"/email/public")]
    assert offsets[0] is None and all(offsets[1:])
    created = [e["created"] for p in pages for e in p]
    assert created == sorted(created, reverse=True)  # newest first, none twice


def test_incremental_resync_starts_at_the_cursor(hs: HubSpotEmailEmulator, hs_store: Store) -> None:
    sid = hs.send_email("ana@acme.example.com", NOW - 2 * DAY)
    clock = {"now": NOW}
    pipe = pipeline(hs_store, hs, clock=lambda: clock["now"])
    pipe.sync("hubspot_email")
    assert signals(hs_store, "hubspot_email")[ACME]["hubspot_email_open_rate_90d"] == 0.0
    hs.add_email_event(
        "OPEN",
        "ana@acme.example.com",
        NOW + timedelta(minutes=20),
        sent_by=sid,
        filteredEvent=False,
    )
    clock["now"] = NOW + timedelta(hours=1)
    hs.clear_log()
    report = pipe.sync("hubspot_email")
    query = hs.requests("GET", r"/email/public/v1/events$")[0].query
    assert int(query["startTimestamp"]) == int((NOW - timedelta(minutes=10)).timestamp() * 1000)
    assert report.records == 1
    assert signals(hs_store, "hubspot_email")[ACME]["hubspot_email_open_rate_90d"] == 1.0


def test_429_and_5xx_are_retried(hs: HubSpotEmailEmulator, hs_store: Store) -> None:
    hs.send_email("ana@acme.example.com", NOW - 2 * DAY, opened=True)
    hs.faults.add("rate_limit", path=r"/email/", times=1)
    hs.faults.add("server_error", path=r"/email/", times=1)
    sleeps = Sleeps()
    pipeline(hs_store, hs, retry=patient(sleeps)).sync("hubspot_email")
    statuses = [r.status for r in hs.requests("GET", r"/email/public")]
    assert statuses == [429, 500, 200]
    assert 1.0 <= sleeps.waits[0] <= 1.5  # the 429's Retry-After
    assert signals(hs_store, "hubspot_email")[ACME]["hubspot_email_open_rate_90d"] == 1.0


def test_bad_token_names_the_variable(hs: HubSpotEmailEmulator) -> None:
    with pytest.raises(AuthError, match="HUBSPOT_ACCESS_TOKEN was rejected") as err:
        list(pull_email_events(client(hs, token="pat-na1-wrong"), NOW - DAY, NOW))
    assert "pat-na1-wrong" not in str(err.value)


def test_malformed_events_are_skipped_with_their_id(
    hs: HubSpotEmailEmulator, hs_store: Store
) -> None:
    hs.send_email("ana@acme.example.com", NOW - 2 * DAY, opened=True)
    hs.add_email_event("OPEN", "ana@acme.example.com", NOW - DAY)  # no sentBy: which message?
    bad = hs.add_email_event("TELEPORT", "bo@acme.example.com", NOW - DAY, sent_by="x")
    report = pipeline(hs_store, hs).sync("hubspot_email")
    assert len(report.skipped_ids) == 2 and bad["id"] in report.skipped_ids
    assert signals(hs_store, "hubspot_email")[ACME]["hubspot_email_open_rate_90d"] == 1.0


def test_needs_the_hubspot_source() -> None:
    with pytest.raises(ValueError, match=r"hubspot_email needs hubspot\.enabled"):
        sources_model().model_validate(
            {"salesforce": {"metrics": {}}, "hubspot_email": {"enabled": True}}
        )
