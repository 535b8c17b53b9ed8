"""Mailchimp Marketing as an email-engagement source: httpx client against the emulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from connectors.mailchimp.client import MailchimpClient, base_url_for
from connectors.registry import Settings
from healthscore.core.errors import AuthError, ConfigError
from healthscore.core.retry import RetryPolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import MailchimpEmulator, generate_org
from store import Store
from tests.conftest import FAST_RETRY
from tests.email_helpers import (
    ACME,
    GLOBEX,
    NOW,
    Sleeps,
    email_config,
    org_accounts,
    signals,
    two_account_store,
)

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def mc() -> Iterator[MailchimpEmulator]:
    with MailchimpEmulator() as emu:
        yield emu


@pytest.fixture
def mc_store(db_url: str) -> Iterator[Store]:
    """SQLite and the real PostgreSQL (``db_url`` from conftest)."""
    yield from two_account_store(db_url)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


def pipeline(
    store: Store,
    emu: MailchimpEmulator,
    *,
    clock=lambda: NOW,
    retry=FAST_RETRY,
    max_connections: int = 10,
    **cfg: object,
) -> Pipeline:
    settings = Settings(
        database_url=store.url, mailchimp_api_key=emu.api_key, mailchimp_base_url=emu.base_url
    )
    client = MailchimpClient(
        emu.api_key, emu.base_url, retry=retry, max_connections=max_connections
    )
    return Pipeline(email_config(mailchimp=cfg), settings, store, mailchimp=client, clock=clock)


def opened(at, click: bool = False) -> list[dict]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    out = [{"action": "open", "timestamp": stamp, "ip": "203.0.113.7"}]
    if click:
        out.append({"action": "click", "timestamp": stamp, "url": "https://x.example"})
    return out


def test_base_url_comes_from_the_key_data_centre() -> None:
    assert base_url_for("0123456789abcdef-us6") == "https://us6.api.mailchimp.com/3.0"
    assert base_url_for("k-us6", "http://127.0.0.1:9/3.0/") == "http://127.0.0.1:9/3.0"
    with pytest.raises(ConfigError, match="MAILCHIMP_API_KEY does not end in a data centre") as err:
        base_url_for("0123456789abcdef")
    assert "0123456789abcdef" not in str(err.value)


def test_full_sync_rates_window_and_unmatched(mc: MailchimpEmulator, mc_store: Store) -> None:
    old = mc.add_campaign(NOW - 120 * DAY, "Spring news")  # outside the 90-day window
    mc.add_member(old, "ana@acme.example.com", opened(NOW - 119 * DAY))
    c1 = mc.add_campaign(NOW - 20 * DAY, "November onboarding")
    mc.add_member(c1, "ana@acme.example.com", opened(NOW - 19 * DAY, click=True))
    mc.add_member(c1, "bo@acme.example.com")
    mc.add_member(
        c1,
        "cy@acme.example.com",
        [{"action": "bounce", "type": "hard", "timestamp": "2026-10-31T12:00:05+00:00"}],
    )
    mc.add_member(c1, "gil@globex.example.com", opened(NOW - 19 * DAY))
    mc.add_member(c1, "fan@gmail.com", opened(NOW - 19 * DAY))
    mc.add_member(c1, "x@stranger.example.org")
    mc.unsubscribe(c1, "bo@acme.example.com", NOW - 19 * DAY)
    c2 = mc.add_campaign(NOW - 5 * DAY, "Renewal tips")
    mc.add_member(c2, "ana@acme.example.com")
    mc.add_member(c2, "bo@acme.example.com", opened(NOW - 4 * DAY))
    report = pipeline(mc_store, mc).sync("mailchimp")
    got = signals(mc_store, "mailchimp")
    # acme delivered: ana c1 (open+click), bo c1, ana c2, bo c2 (open); cy bounced
    assert got[ACME] == {
        "mailchimp_open_rate_90d": 0.5,
        "mailchimp_click_rate_90d": 0.25,
        "mailchimp_bounces_90d": 1.0,
        "mailchimp_unsubscribes_90d": 1.0,
        "mailchimp_recipients": 3.0,
    }
    assert got[GLOBEX]["mailchimp_open_rate_90d"] == 1.0
    assert report.campaigns == 2
    assert not mc.requests("GET", rf"/reports/{old}/")  # not even read
    assert {u.record_id: u.reason for u in mc_store.unmatched("mailchimp")} == {
        "fan@gmail.com": "no_key",
        "x@stranger.example.org": "no_match",
    }
    assert report.unmatched == 2
    auth = mc.requests("GET", r"/reports$")[0]
    assert auth.query["count"] == "1000" and "since_send_time" in auth.query


def test_members_page_with_count_and_offset(mc: MailchimpEmulator, mc_store: Store) -> None:
    cid = mc.add_campaign(NOW - 3 * DAY)
    for n in range(5):
        mc.add_member(cid, f"u{n}@acme.example.com", opened(NOW - 2 * DAY) if n < 2 else [])
    pipeline(mc_store, mc, page_size=2).sync("mailchimp")
    offsets = [r.query["offset"] for r in mc.requests("GET", r"/email-activity$")]
    assert offsets == ["0", "2", "4"]
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 0.4
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_recipients"] == 5.0


def test_incremental_resync_reads_only_new_activity(mc: MailchimpEmulator, mc_store: Store) -> None:
    c1 = mc.add_campaign(NOW - 3 * DAY)
    mc.add_member(c1, "ana@acme.example.com")
    mc.add_member(c1, "gil@globex.example.com", opened(NOW - 2 * DAY))
    clock = Clock()
    pipe = pipeline(mc_store, mc, clock=clock)
    pipe.sync("mailchimp")
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 0.0
    clock.now = NOW + 2 * HOUR
    mc.add_action(c1, "ana@acme.example.com", "open", NOW + HOUR)  # opened after the sync
    c2 = mc.add_campaign(NOW + HOUR / 2)  # and a new campaign went out
    mc.add_member(c2, "ana@acme.example.com")
    mc.clear_log()
    report = pipe.sync("mailchimp")
    reads = {r.path: r.query for r in mc.requests("GET", r"/email-activity$")}
    assert (
        reads[f"/3.0/reports/{c1}/email-activity"]["since"]
        == (NOW - timedelta(minutes=10)).isoformat()
    )  # known campaign: since cursor - overlap
    assert "since" not in reads[f"/3.0/reports/{c2}/email-activity"]  # new one: whole
    assert report.records == 1 + 1  # ana's new open on c1, ana on c2
    assert report.accounts_recomputed == 1
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 0.5
    assert signals(mc_store, "mailchimp")[GLOBEX]["mailchimp_open_rate_90d"] == 1.0
    clock.now += HOUR
    assert pipe.sync("mailchimp").signals_changed == 0


def test_too_many_connections_backs_off(mc: MailchimpEmulator, mc_store: Store) -> None:
    """Someone else holds the key's only connection: our request gets the real 429
    (problem+json, no headers) and backs off until it is free."""
    cid = mc.add_campaign(NOW - 3 * DAY)
    mc.add_member(cid, "ana@acme.example.com", opened(NOW - 2 * DAY))
    sleeps = Sleeps()
    backoff = RetryPolicy(attempts=6, base=0.1, factor=2.0, jitter=0.0, sleep=sleeps)
    pipe = pipeline(mc_store, mc, retry=backoff)
    mc.max_connections = 1
    mc.faults.add("slow", path=r"/ping", delay=1.0, times=1)
    other = threading.Thread(
        target=httpx.get,
        args=(f"{mc.base_url}/ping",),
        kwargs={"auth": ("someone", mc.api_key), "timeout": 5},
    )
    other.start()
    while not mc.peak_in_flight:
        time.sleep(0.001)
    report = pipe.sync("mailchimp")
    other.join()
    limited = [r for r in mc.requests() if r.status == 429]
    assert limited and report.rate_limited == len(limited)
    assert sleeps.waits == [0.1 * 2**n for n in range(len(limited))]  # exponential
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 1.0


def test_the_client_holds_at_most_max_connections(mc: MailchimpEmulator) -> None:
    mc.max_connections, mc.response_delay = 2, 0.1
    client = MailchimpClient(mc.api_key, mc.base_url, retry=FAST_RETRY, max_connections=2)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: client.get("/ping"), range(12)))
    assert mc.peak_in_flight == 2
    assert client.rate_limited == 0 and len(mc.requests("GET", r"/ping$")) == 12


def test_5xx_is_retried(mc: MailchimpEmulator, mc_store: Store) -> None:
    cid = mc.add_campaign(NOW - 3 * DAY)
    mc.add_member(cid, "ana@acme.example.com", opened(NOW - 2 * DAY))
    mc.faults.add("server_error", path=r"/email-activity", times=2)
    pipeline(mc_store, mc).sync("mailchimp")
    assert [r.status for r in mc.requests("GET", r"/email-activity$")] == [500, 500, 200]
    body = mc.requests("GET", r"/email-activity$")[0]
    assert body.status == 500
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 1.0


def test_bad_key_names_the_variable_never_the_secret(
    mc: MailchimpEmulator, mc_store: Store
) -> None:
    wrong = "ffffffffffffffffffffffffffffffff-us6"
    client = MailchimpClient(wrong, mc.base_url, retry=FAST_RETRY)
    with pytest.raises(AuthError) as err:
        client.get("/reports")
    assert "MAILCHIMP_API_KEY was rejected (API Key Invalid" in str(err.value)
    assert wrong not in str(err.value)
    other_dc = mc.api_key.replace("-us6", "-us9")  # right key, wrong data centre
    with pytest.raises(AuthError):
        MailchimpClient(other_dc, mc.base_url, retry=FAST_RETRY).get("/reports")
    bare = Pipeline(email_config(mailchimp={}), Settings(database_url=mc_store.url), mc_store)
    with pytest.raises(ConfigError, match="MAILCHIMP_API_KEY"):
        bare.sync("mailchimp")


def test_malformed_members_are_skipped_with_their_id(
    mc: MailchimpEmulator, mc_store: Store
) -> None:
    cid = mc.add_campaign(NOW - 3 * DAY)
    mc.add_member(cid, "ana@acme.example.com", opened(NOW - 2 * DAY))
    mc.add_raw_member(cid, {"email_id": "badhash1", "email_address": None, "activity": []})
    mc.add_raw_member(
        cid,
        {
            "email_id": "badhash2",
            "email_address": "bo@acme.example.com",
            "activity": [{"action": "open", "timestamp": "last tuesday"}],
        },
    )
    report = pipeline(mc_store, mc).sync("mailchimp")
    assert report.skipped_ids == [f"{cid}:badhash1", f"{cid}:badhash2"]
    assert signals(mc_store, "mailchimp")[ACME]["mailchimp_open_rate_90d"] == 1.0


def test_seeded_org_follows_the_archetypes(mc: MailchimpEmulator, mc_store: Store) -> None:
    org = generate_org(60, now=NOW)
    ids = org_accounts(mc_store, org)
    mc.seed(org, NOW)
    report = pipeline(mc_store, mc).sync("mailchimp")
    assert report.unmatched >= 3
    got = signals(mc_store, "mailchimp")
    by_kind: dict[str, list[float]] = {}
    for name, account in ids.items():
        rate = got.get(account, {}).get("mailchimp_open_rate_90d")
        if rate is not None:
            by_kind.setdefault(org.archetypes[name], []).append(rate)
    mean = {k: sum(v) / len(v) for k, v in by_kind.items()}
    assert mean["healthy"] > mean["declining"] > mean["about_to_churn"]
