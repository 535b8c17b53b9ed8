"""SendGrid as an email-engagement source: httpx client against the SendGrid emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from connectors.email.engagement import engagement, fact
from connectors.registry import Settings
from connectors.sendgrid import SendGridClient, pull_activity
from healthscore.core.errors import AuthError, ConfigError, FatalError, RateLimited
from healthscore.pipeline.cycle import Pipeline
from sandbox import SendGridEmulator, generate_org
from store import Store
from tests.conftest import FAST_RETRY
from tests.email_helpers import (
    ACME,
    GLOBEX,
    NOW,
    Sleeps,
    email_config,
    org_accounts,
    patient,
    signals,
    two_account_store,
)


@pytest.fixture
def sg() -> Iterator[SendGridEmulator]:
    with SendGridEmulator() as emu:
        yield emu


@pytest.fixture
def sg_store(db_url: str) -> Iterator[Store]:
    """SQLite and the real PostgreSQL (``db_url`` from conftest)."""
    yield from two_account_store(db_url)


def pipeline(
    store: Store, emu: SendGridEmulator, *, clock=lambda: NOW, retry=FAST_RETRY, **cfg: object
) -> Pipeline:
    settings = Settings(
        database_url=store.url, sendgrid_api_key=emu.api_key, sendgrid_base_url=emu.base_url
    )
    client = SendGridClient(emu.api_key, emu.base_url, retry=retry)
    config = email_config(sendgrid={"per_recipient": "activity_api", **cfg})
    return Pipeline(config, settings, store, sendgrid=client, clock=clock)


def test_rates_on_a_hand_built_dataset() -> None:
    day = timedelta(days=1)
    rows = [
        fact(
            "m1", "ana@acme.example.com", NOW - 2 * day, delivered=True, opened=True, clicked=True
        ),
        fact("m2", "ana@acme.example.com", NOW - 3 * day, delivered=True, opened=True),
        fact("m3", "bo@acme.example.com", NOW - 4 * day, delivered=True),
        fact("m4", "bo@acme.example.com", NOW - 5 * day, delivered=True),
        fact("m5", "cy@acme.example.com", NOW - 6 * day, bounced=True),
        fact("m6", "old@acme.example.com", NOW - 120 * day, delivered=True, opened=True),
        # a second fact of m3 (a later open event) merges into it
        fact("m3", "bo@acme.example.com", NOW - 1 * day, opened=True),
        # a click without a recorded open still counts as an open
        fact("m7", "di@acme.example.com", NOW - 7 * day, clicked=True),
        fact(None, "bo@acme.example.com", NOW - 1 * day, suppression="unsubscribe"),
        fact(None, "cy@acme.example.com", NOW - 6 * day, suppression="bounce"),
        fact(None, "zz@acme.example.com", NOW - 200 * day, suppression="bounce"),
    ]
    got = engagement(rows, NOW, "sendgrid_")
    # delivered: m1 m2 m3 m4 m7 (m5 bounced, m6 outside 90 days); opened: m1 m2 m3 m7
    assert got == {
        "sendgrid_open_rate_90d": 0.8,
        "sendgrid_click_rate_90d": 0.4,
        "sendgrid_bounces_90d": 1.0,
        "sendgrid_unsubscribes_90d": 1.0,
        "sendgrid_recipients": 4.0,
    }
    assert engagement([], NOW, "x_")["x_open_rate_90d"] is None  # no mail is not 0 %
    only = engagement(rows, NOW, "sendgrid_", categories=["renewal"])
    assert only["sendgrid_recipients"] == 0  # none of these carries the category


def test_full_sync_rates_and_unmatched_recipients(sg: SendGridEmulator, sg_store: Store) -> None:
    day = timedelta(days=1)
    sg.add_message("ana@acme.example.com", NOW - 2 * day, opened=True, clicked=True)
    sg.add_message("ana@acme.example.com", NOW - 3 * day, opened=True)
    sg.add_message("bo@acme.example.com", NOW - 4 * day, unsubscribed=True)
    sg.add_message("cy@acme.example.com", NOW - 5 * day, bounced=True)
    sg.add_message("ed@eu.globex.example.com", NOW - 5 * day)  # a subdomain matches too
    sg.add_message("fan@gmail.com", NOW - 5 * day, opened=True)
    sg.add_message("x@stranger.example.org", NOW - 5 * day, opened=True)
    report = pipeline(sg_store, sg).sync("sendgrid")
    got = signals(sg_store, "sendgrid")
    assert got[ACME] == {
        "sendgrid_open_rate_90d": round(2 / 3, 4),
        "sendgrid_click_rate_90d": round(1 / 3, 4),
        "sendgrid_bounces_90d": 1.0,
        "sendgrid_unsubscribes_90d": 1.0,
        "sendgrid_recipients": 3.0,
    }
    assert got[GLOBEX]["sendgrid_open_rate_90d"] == 0.0
    assert report.unmatched == 2 and report.skipped == 0
    unmatched = {u.record_id: u.reason for u in sg_store.unmatched("sendgrid")}
    assert unmatched == {"fan@gmail.com": "no_key", "x@stranger.example.org": "no_match"}
    assert report.baseline["open_rate_90d"] == round(4 / 6, 4)  # org-wide, outsiders too
    assert sg_store.cursor("sendgrid", "activity") == NOW.isoformat()


def test_incremental_resync_reads_from_the_cursor(sg: SendGridEmulator, sg_store: Store) -> None:
    msg = sg.add_message("ana@acme.example.com", NOW - timedelta(days=2))
    sg.add_message("gil@globex.example.com", NOW - timedelta(days=2), opened=True)
    moments = iter([NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)])
    current = {"t": NOW}

    def clock():
        return current["t"]

    pipe = pipeline(sg_store, sg, clock=clock)
    pipe.sync("sendgrid")
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 0.0
    current["t"] = next(moments) + timedelta(hours=1)
    sg.add_event(msg, "open", NOW + timedelta(minutes=30))  # opened after the first sync
    sg.clear_log()
    report = pipe.sync("sendgrid")
    query = sg.requests("GET", r"/v3/messages$")[0].query["query"]
    since = (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")  # cursor - overlap
    assert f'BETWEEN TIMESTAMP "{since}"' in query
    assert report.records == 1  # only the message with a new event
    assert report.accounts_recomputed == 1
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0
    assert signals(sg_store, "sendgrid")[GLOBEX]["sendgrid_open_rate_90d"] == 1.0
    current["t"] += timedelta(hours=1)
    assert pipe.sync("sendgrid").signals_changed == 0  # nothing new: nothing changes


def test_suppressions_page_with_limit_and_offset(sg: SendGridEmulator, sg_store: Store) -> None:
    for n in range(5):
        sg.add_message(f"u{n}@acme.example.com", NOW - timedelta(days=n + 1), bounced=True)
    report = pipeline(sg_store, sg, page_size=2).sync("sendgrid")
    offsets = [r.query["offset"] for r in sg.requests("GET", r"/suppression/bounces$")]
    assert offsets == ["0", "2", "4"]
    assert report.records == 5 + 5  # five activity messages, five bounces
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_bounces_90d"] == 5.0


def test_activity_windows_are_halved_until_each_answer_is_short(sg: SendGridEmulator) -> None:
    for n in range(7):
        sg.add_message(f"u{n}@acme.example.com", NOW - timedelta(hours=n * 5 + 1))
    client = SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY)
    seen = [
        m["msg_id"]
        for page in pull_activity(client, NOW - timedelta(days=3), NOW, limit=3)
        for m in page
    ]
    assert len(set(seen)) == 7
    assert len(sg.requests("GET", r"/v3/messages$")) > 3


def test_429_waits_until_x_ratelimit_reset(sg: SendGridEmulator, sg_store: Store) -> None:
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), opened=True)
    sg.configure_limits(600, window=2.0)
    sg.faults.add("rate_limit", path=r"/suppression/bounces", times=1)
    sleeps = Sleeps()
    before = time.time()
    pipeline(sg_store, sg, retry=patient(sleeps)).sync("sendgrid")
    limited = [r for r in sg.requests() if r.status == 429]
    assert len(limited) == 1 and limited[0].path == "/v3/suppression/bounces"
    # X-RateLimit-Reset (epoch seconds) is ~2 s ahead: the wait is until then, not a backoff
    assert len(sleeps.waits) == 1 and 0.9 <= sleeps.waits[0] <= 3.0
    assert time.time() - before >= sleeps.waits[0]
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0


def test_a_reset_too_far_away_goes_up_instead_of_sleeping(
    sg: SendGridEmulator, sg_store: Store
) -> None:
    sg.faults.add("rate_limit", path=r"/v3/messages", times=1)  # window 60 s: reset ~60 s
    with pytest.raises(RateLimited) as err:
        pipeline(sg_store, sg, retry=patient()).sync("sendgrid")
    assert err.value.retry_after is not None and 55 <= err.value.retry_after <= 61
    assert sg_store.cursor("sendgrid", "activity") is None  # not advanced: nothing complete


def test_real_window_limit_no_retry_after(sg: SendGridEmulator, sg_store: Store) -> None:
    """Another client spent the endpoint's window: ours gets a real 429 and waits for the
    reset; then its own ``Remaining: 0`` makes it wait before asking (no second 429)."""
    sg.configure_limits(2, window=1.5)
    for n in range(4):
        sg.add_message(f"u{n}@acme.example.com", NOW - timedelta(days=1), bounced=True)
    other = SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY)
    other.get("/v3/suppression/bounces", {"limit": 1})
    other.get("/v3/suppression/bounces", {"limit": 1})
    sleeps = Sleeps()
    report = pipeline(sg_store, sg, retry=patient(sleeps), page_size=1).sync("sendgrid")
    bounces = sg.requests("GET", r"/suppression/bounces$")
    assert [r.status for r in bounces].count(429) == 1
    assert "Retry-After" not in str(bounces[-1].headers)
    assert all(0 < w <= 2.5 for w in sleeps.waits) and len(sleeps.waits) >= 2
    assert report.rate_limited == 1
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_bounces_90d"] == 4.0


def test_5xx_is_retried(sg: SendGridEmulator, sg_store: Store) -> None:
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), opened=True)
    sg.faults.add("server_error", path=r"/v3/messages", times=2)
    pipeline(sg_store, sg).sync("sendgrid")
    statuses = [r.status for r in sg.requests("GET", r"/v3/messages$")]
    assert statuses == [500, 500, 200]
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0


def test_bad_key_names_the_variable_never_the_secret(sg: SendGridEmulator, sg_store: Store) -> None:
    secret = "SG.wrong-key-do-not-print"
    client = SendGridClient(secret, sg.base_url, retry=FAST_RETRY)
    with pytest.raises(AuthError) as err:
        client.get("/v3/suppression/bounces")
    assert "SENDGRID_API_KEY" in str(err.value) and secret not in str(err.value)
    assert "authorization required" in str(err.value)
    config = email_config(sendgrid={})
    bare = Pipeline(config, Settings(database_url=sg_store.url, sendgrid_api_key=None), sg_store)
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        bare.sync("sendgrid")
    assert sg_store.cursor("sendgrid", "activity") is None


def test_activity_api_without_the_add_on_is_a_clear_error(sg_store: Store) -> None:
    with SendGridEmulator(activity_enabled=False) as emu:
        with pytest.raises(AuthError, match="SENDGRID_API_KEY lacks the access"):
            pipeline(sg_store, emu).sync("sendgrid")
        pipeline(sg_store, emu, per_recipient="webhook").sync("sendgrid")  # the default


def test_malformed_records_are_skipped_with_their_id(sg: SendGridEmulator, sg_store: Store) -> None:
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), opened=True)
    sg.raw_activity.append(
        {
            "msg_id": "bad-msg-1",
            "to_email": "not an address",
            "last_event_time": "2026-11-19T10:00:00Z",
            "status": "delivered",
            "opens_count": 1,
            "clicks_count": 0,
        }
    )
    sg.raw_activity.append(
        {
            "msg_id": "bad-msg-2",
            "to_email": "bo@acme.example.com",
            "last_event_time": "2026-11-19T10:00:00Z",
            "status": "delivered",
            "opens_count": "many",
            "clicks_count": 0,
        }
    )
    sg.bounces.append({"email": "cy@acme.example.com", "created": "yesterday"})
    report = pipeline(sg_store, sg).sync("sendgrid")
    assert report.skipped_ids == ["bad-msg-1", "bad-msg-2", "bounces:cy@acme.example.com"]
    assert signals(sg_store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0


def test_other_4xx_is_fatal(sg: SendGridEmulator) -> None:
    client = SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY)
    with pytest.raises(FatalError, match="limit must be"):
        client.get("/v3/suppression/bounces", {"limit": 9999})


def test_seeded_org_follows_the_archetypes(sg: SendGridEmulator, sg_store: Store) -> None:
    org = generate_org(60, now=NOW)
    ids = org_accounts(sg_store, org)
    sg.seed(org, NOW)
    report = pipeline(sg_store, sg).sync("sendgrid")
    assert report.unmatched >= 3  # the seed's free-mail and unknown-domain readers
    got = signals(sg_store, "sendgrid")
    by_kind: dict[str, list[float]] = {}
    for name, account in ids.items():
        rate = got.get(account, {}).get("sendgrid_open_rate_90d")
        if rate is not None:
            by_kind.setdefault(org.archetypes[name], []).append(rate)
    mean = {k: sum(v) / len(v) for k, v in by_kind.items()}
    assert mean["healthy"] > mean["declining"] > mean["about_to_churn"]
