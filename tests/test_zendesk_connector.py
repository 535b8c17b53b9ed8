"""The Zendesk source through httpx against the Zendesk emulator (real HTTP, real pipeline)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from connectors.registry import Settings
from connectors.salesforce.sync import sync_accounts
from connectors.zendesk import METRICS, ZendeskClient
from connectors.zendesk.sync import ORG_KEY
from healthscore.core.errors import AuthError, ConfigError
from healthscore.core.retry import RetryPolicy
from sandbox import SalesforceEmulator, ZendeskEmulator, generate_org
from tests.zendesk_helpers import PipelineFactory, zendesk_config


@pytest.fixture
def zd_emu() -> Iterator[ZendeskEmulator]:
    # the minute lasts 0.1 s: Zendesk's limits, ten times per second
    with ZendeskEmulator(limit_scale=600) as emu:
        yield emu


@pytest.fixture
def zd(
    sf_emu: SalesforceEmulator, zd_emu: ZendeskEmulator, tmp_path: Path
) -> Iterator[PipelineFactory]:
    factory = PipelineFactory(sf_emu, zd_emu, tmp_path)
    yield factory
    factory.close()


def seed(zd: PipelineFactory, n: int = 30, now: datetime | None = None) -> list[str]:
    org = generate_org(n, seed=11, now=now)
    ids = zd.sf.seed(org)
    zd.zd.seed(org, now, account_ids=ids)
    return ids


def exports(emu: ZendeskEmulator) -> list:
    return emu.requests("GET", r"/incremental/tickets/cursor")


def test_full_sync_matches_organizations_and_sets_every_signal(zd) -> None:
    ids = seed(zd)
    pipeline = zd()
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    assert (report.organizations, report.matched, report.unmatched) == (32, 30, 2)
    assert report.tickets == zd.zd.ticket_count and report.skipped == 0
    assert report.ratings > 0 and report.rate_limited == 0
    # one organizations page, one export page, one ratings page (each under its page size)
    assert (report.requests, report.export_requests) == (1 + 1 + report.ratings // 100 + 1, 1)
    reasons = {u.detail.split(":")[0]: u.reason for u in pipeline.store.unmatched("zendesk")}
    assert reasons == {"Initech (trial)": "no_match", "Freelance helpdesk": "no_key"}
    latest = {
        (a, m): v for a, m, v, _ in pipeline.store.latest_signals() if m.startswith("zendesk_")
    }
    for account in ids:
        for metric in METRICS[:4]:
            assert latest[(account, metric)] is not None
    assert {m for _, m in latest} == set(METRICS)
    assert pipeline.store.signal_counts()["zendesk"] > 0
    # the cursor Zendesk gave is kept for the next run
    assert pipeline.store.cursor("zendesk", "tickets") == "cursor:" + report.cursor


def test_troubled_accounts_look_troubled(zd) -> None:
    org = generate_org(60, seed=5)
    ids = zd.sf.seed(org)
    zd.zd.seed(org, account_ids=ids)
    pipeline = zd()
    sync_accounts(pipeline.context)
    pipeline.sync("zendesk")
    kind = {a: org.archetypes[o["Name"]] for a, o in zip(ids, org.accounts, strict=True)}
    sums: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for account, metric, value, _ in pipeline.store.latest_signals():
        if metric.startswith("zendesk_") and value is not None:
            group = "troubled" if kind[account] in ("declining", "about_to_churn") else "fine"
            sums[(group, metric)] += value
            counts[(group, metric)] += 1

    def mean(group: str, metric: str) -> float:
        return sums[(group, metric)] / counts[(group, metric)]

    for metric in (
        "zendesk_tickets_30d",
        "zendesk_urgent_open",
        "zendesk_reopened_90d",
        "zendesk_repeated_topic_90d",
    ):
        assert mean("troubled", metric) > mean("fine", metric), metric
    assert mean("troubled", "zendesk_csat_90d") < mean("fine", "zendesk_csat_90d")


def test_incremental_resync_reads_only_changed_tickets_and_advances_the_cursor(zd) -> None:
    now = datetime.now(UTC)
    zd.zd.set_time(now - timedelta(hours=2))
    ids = seed(zd, now=now - timedelta(hours=2))
    zd.zd.set_time(None)
    pipeline = zd()
    sync_accounts(pipeline.context)
    first = pipeline.sync("zendesk")
    assert exports(zd.zd)[0].query["start_time"]
    # one ticket of the first account turns urgent (ten minutes ago, so the export shows it)
    org_of = {a: o for _, o, a in pipeline.store.account_keys(ORG_KEY)}
    ticket = zd.zd.add_ticket(
        int(org_of[ids[0]]), "Outage in EU", priority="urgent", created=now - timedelta(minutes=10)
    )
    zd.zd.set_time(now - timedelta(minutes=10))
    zd.zd.update_ticket(ticket, status="open")
    zd.zd.set_time(None)
    zd.zd.clear_log()
    before = dict(((a, m), v) for a, m, v, _ in pipeline.store.latest_signals())
    second = pipeline.sync("zendesk")
    assert (second.tickets, second.export_requests, second.organizations) == (1, 1, 0)
    (call,) = exports(zd.zd)
    assert call.query["cursor"] == first.cursor and "start_time" not in call.query
    assert second.cursor != first.cursor
    assert pipeline.store.cursor("zendesk", "tickets") == "cursor:" + second.cursor
    assert second.accounts_recomputed == 1
    after = {(a, m): v for a, m, v, _ in pipeline.store.latest_signals()}
    assert after[(ids[0], "zendesk_urgent_open")] == before[(ids[0], "zendesk_urgent_open")] + 1
    third = pipeline.sync("zendesk")
    assert (third.tickets, third.signals_changed, third.cursor) == (0, 0, second.cursor)


def test_paging_reads_every_record_once_in_the_fewest_pages(zd) -> None:
    seed(zd)
    pipeline = zd(zendesk_config(export_page_size=50, page_size=10))
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    tickets, orgs = zd.zd.ticket_count, zd.zd.organization_count
    assert report.tickets == tickets and report.organizations == orgs
    assert len(exports(zd.zd)) == -(-tickets // 50)
    assert len(zd.zd.requests("GET", r"/organizations")) == -(-orgs // 10)
    assert len(zd.zd.requests("GET", r"/satisfaction_ratings")) == -(-report.ratings // 10)
    kept = pipeline.store.source_records_by_id(
        "zendesk", "tickets", [str(i) for i in range(1, tickets + 1)]
    )
    assert len(kept) == tickets
    cursors = [r.query.get("page[after]") for r in zd.zd.requests("GET", r"/organizations")]
    assert cursors[0] is None and len(set(cursors)) == len(cursors)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_429_waits_retry_after_and_is_counted(zd) -> None:
    seed(zd, n=10)
    zd.zd.fault_retry_after = 7
    zd.zd.faults.add("rate_limit", path=r"/incremental/", times=1)
    zd.zd.faults.add("rate_limit", path=r"/organizations", times=1)
    sleeps = Sleeps()
    pipeline = zd(client=zd.client(retry=RetryPolicy(max_wait=30, jitter=0.0, sleep=sleeps)))
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    assert report.rate_limited == 2 and report.tickets == zd.zd.ticket_count
    assert sleeps.waits == [7.0, 7.0]
    limited = [r for r in zd.zd.requests() if r.status == 429]
    assert [r.fault for r in limited] == ["rate_limit", "rate_limit"]


def test_429_bodies_are_zendesks_and_carry_retry_after(zd_emu) -> None:
    zd_emu.set_rate_limits(export_requests_per_minute=1, limit_scale=1)
    auth = (f"{zd_emu.email}/token", zd_emu.api_token)
    start = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    url = zd_emu.api_url + "incremental/tickets/cursor.json"
    with httpx.Client(auth=auth) as http:
        ok = http.get(url, params={"start_time": start})
        limited = http.get(url, params={"start_time": start})
    assert ok.status_code == 200 and ok.headers["X-Rate-Limit"] == "700"
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"] == "APIRateLimitExceeded"
    zd_emu.set_rate_limits(requests_per_minute=1, export_requests_per_minute=10)
    with httpx.Client(auth=auth) as http:
        http.get(zd_emu.api_url + "organizations.json")
        account = http.get(zd_emu.api_url + "organizations.json")
    assert account.status_code == 429 and account.headers["Retry-After"]
    assert account.text == "Number of allowed API requests per minute exceeded"


def test_5xx_is_retried(zd) -> None:
    seed(zd, n=10)
    zd.zd.faults.add("server_error", path=r"/incremental/", times=2)
    zd.zd.faults.add("server_error", path=r"/satisfaction_ratings", times=1)
    pipeline = zd()
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    assert report.tickets == zd.zd.ticket_count
    assert [r.status for r in exports(zd.zd)] == [503, 503, 200]
    ratings = zd.zd.requests("GET", r"/satisfaction_ratings")
    assert [r.status for r in ratings] == [503, 200] and report.ratings > 0


def test_bad_credentials_name_the_variable_never_the_secret(zd) -> None:
    seed(zd, n=5)
    wrong = zd.settings.model_copy(update={"zendesk_api_token": SecretStr("wrong-token-123")})
    pipeline = zd(client=zd.client(settings=wrong))
    sync_accounts(pipeline.context)
    with pytest.raises(AuthError) as err:
        pipeline.sync("zendesk")
    message = str(err.value)
    assert "ZENDESK_API_TOKEN" in message and "ZENDESK_EMAIL" in message
    assert "Couldn't authenticate you" in message and "wrong-token-123" not in message
    assert pipeline.store.cursor("zendesk", "tickets") is None
    with pytest.raises(ConfigError, match="ZENDESK_EMAIL, ZENDESK_API_TOKEN, ZENDESK_SUBDOMAIN"):
        ZendeskClient(Settings(redis_url=""))


def test_non_admin_gets_a_clear_error(zd) -> None:
    seed(zd, n=5)
    zd.zd.admin = False
    pipeline = zd()
    sync_accounts(pipeline.context)
    with pytest.raises(AuthError, match="must be an admin"):
        pipeline.sync("zendesk")


def test_malformed_tickets_are_skipped_and_reported_with_their_id(zd, caplog) -> None:
    seed(zd, n=10)
    zd.zd.set_time(datetime.now(UTC) - timedelta(minutes=30))
    zd.zd.add_raw_ticket(
        {
            "id": 991,
            "subject": "broken",
            "updated_at": "yesterday-ish",
            "created_at": "2026-11-01T00:00:00Z",
        }
    )
    zd.zd.add_raw_ticket({"subject": "no id at all", "updated_at": "2026-11-01T00:00:00Z"})
    zd.zd.set_time(None)
    pipeline = zd()
    sync_accounts(pipeline.context)
    with caplog.at_level(logging.WARNING):
        report = pipeline.sync("zendesk")
    assert report.skipped == 2 and report.skipped_ids == ["991", "<no id>"]
    assert report.tickets == zd.zd.ticket_count  # read, two of them not kept
    kept = pipeline.store.source_records_by_id(
        "zendesk", "tickets", [str(i) for i in range(1, zd.zd.ticket_count + 1)]
    )
    assert len(kept) == zd.zd.ticket_count - 2 and "991" not in kept
    assert "Zendesk ticket 991 skipped" in caplog.text
    assert pipeline.store.cursor("zendesk", "tickets") == "cursor:" + report.cursor


def test_client_paces_itself_under_the_export_limit(sf_emu, tmp_path) -> None:
    """10 export requests per (scaled) minute: the client never draws a 429 from it."""
    scale = 30.0  # the minute lasts 2 s
    with ZendeskEmulator(limit_scale=scale) as emu:
        zd = PipelineFactory(sf_emu, emu, tmp_path)
        org = generate_org(12, seed=3)
        emu.seed(org, account_ids=zd.sf.seed(org))
        pipeline = zd(zendesk_config(export_page_size=2))  # ~30 export pages
        sync_accounts(pipeline.context)
        report = pipeline.sync("zendesk")
        calls = exports(emu)
        zd.close()
    pages = -(-emu.ticket_count // 2)
    assert len(calls) == report.export_requests == pages
    assert all(c.status == 200 for c in emu.requests()), "no 429 under normal operation"
    assert report.rate_limited == 0
    rate = 10 * scale / 60  # requests per second the export allows, after its burst of 10
    times = [c.at for c in calls]
    for i, t in enumerate(times):  # every stretch of the log stays inside the bucket
        within = [u for u in times[i:] if u - t <= 1.0]
        assert len(within) <= 10 + rate * 1.0 + 1
    floor = (pages - 10) / rate
    took = times[-1] - times[0]
    assert floor * 0.95 <= took <= floor * 2 + 2.0  # paced, not stalled (a busy CI box)


def test_start_time_too_recent_waits_for_the_next_run_from_the_same_start(zd) -> None:
    now = datetime.now(UTC)
    zd.zd.set_time(now - timedelta(minutes=10))  # Zendesk's clock is behind ours
    seed(zd, n=4, now=now - timedelta(minutes=10))
    pipeline = zd(zendesk_config(backfill=timedelta(0)), clock=lambda: now)
    sync_accounts(pipeline.context)
    first = pipeline.sync("zendesk")
    assert first.start_time_too_recent and first.tickets == 0
    start = exports(zd.zd)[0].query["start_time"]
    assert int(start) == int((now - timedelta(seconds=61)).timestamp())  # ours was valid
    assert exports(zd.zd)[0].status == 400
    assert pipeline.store.cursor("zendesk", "tickets") == f"start:{start}"
    # Zendesk catches up; a ticket changes after our start time
    org_of = {a: o for _, o, a in pipeline.store.account_keys(ORG_KEY)}
    zd.zd.set_time(now + timedelta(minutes=1))
    zd.zd.add_ticket(int(next(iter(org_of.values()))), "Late ticket")
    zd.zd.set_time(now + timedelta(minutes=3))
    second = pipeline.sync("zendesk")
    assert not second.start_time_too_recent and second.tickets == 1
    assert exports(zd.zd)[-1].query["start_time"] == start
    assert pipeline.store.cursor("zendesk", "tickets") == "cursor:" + second.cursor


def test_too_recent_start_time_gets_zendesks_400_body(zd_emu) -> None:
    with httpx.Client(auth=(f"{zd_emu.email}/token", zd_emu.api_token)) as http:
        r = http.get(
            zd_emu.api_url + "incremental/tickets/cursor.json",
            params={"start_time": int(datetime.now(UTC).timestamp()) - 10},
        )
        wrong = http.get(zd_emu.api_url + "organizations.json", auth=("x/token", "y"))
    assert r.status_code == 400
    assert r.json() == {
        "error": "InvalidValue",
        "description": "Too recent start_time. Use a start_time older than 1 minute",
    }
    assert wrong.status_code == 401 and wrong.json() == {"error": "Couldn't authenticate you"}


def test_organizations_match_by_external_id_then_domain_and_late_matches_move_tickets(zd) -> None:
    ids = seed(zd, n=6)
    emu = zd.zd
    # external id wins over a domain that belongs to another account
    other_domain = emu.data.orgs[emu.data.org_ids[1]]["domain_names"]
    by_id = emu.add_organization("Odd one", other_domain, external_id=ids[4])
    by_domain = emu.add_organization("Sub team", ["eu." + other_domain[0]])
    late = emu.add_organization("Found later", ["later-found.example"])
    emu.set_time(datetime.now(UTC) - timedelta(minutes=5))
    emu.add_ticket(late, "Cannot log in", priority="urgent")
    emu.set_time(None)
    config = zendesk_config(organizations_every=timedelta(0))
    pipeline = zd(config)
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    links = {int(o): a for _, o, a in pipeline.store.account_keys(ORG_KEY)}
    assert links[by_id] == ids[4] and links[by_domain] == ids[1]
    assert late not in links
    reasons = {u.record_id: u.reason for u in pipeline.store.unmatched("zendesk")}
    assert reasons[str(late)] == "no_match" and report.unmatched == 3
    # the CRM learns the domain; the next listing matches it and its ticket follows
    zd.sf.update("Account", ids[2], {"Website": "https://later-found.example"})
    sync_accounts(pipeline.context)
    urgent_before = {
        a: v for a, m, v, _ in pipeline.store.latest_signals() if m == "zendesk_urgent_open"
    }
    again = pipeline.sync("zendesk")
    assert again.matched == report.matched + 1
    assert str(late) not in {u.record_id for u in pipeline.store.unmatched("zendesk")}
    urgent = {a: v for a, m, v, _ in pipeline.store.latest_signals() if m == "zendesk_urgent_open"}
    assert urgent[ids[2]] == urgent_before[ids[2]] + 1


def test_settings_build_the_zendesk_url_and_refuse_plain_http(tmp_path) -> None:
    s = Settings(
        zendesk_subdomain="acme",
        zendesk_email="a@acme.com",
        zendesk_api_token="zd-secret-value",
        redis_url="",
    )
    assert s.require_zendesk()[2] == "https://acme.zendesk.com/api/v2/"
    with pytest.raises(ValueError, match="https"):
        Settings(zendesk_base_url="http://acme.zendesk.com/api/v2/")
    assert "zd-secret-value" not in repr(s) + str(s.zendesk_api_token)
    client = ZendeskClient(s)
    assert client.base_url == "https://acme.zendesk.com/api/v2/"
    client.close()


def test_sync_all_includes_zendesk_when_enabled(zd) -> None:
    seed(zd, n=5)
    pipeline = zd()
    pipeline.sync_all()
    assert pipeline.store.signal_counts()["zendesk"] > 0


def test_tickets_of_an_organization_created_after_the_listing_find_their_account(zd) -> None:
    ids = seed(zd, n=4)
    pipeline = zd()
    sync_accounts(pipeline.context)
    pipeline.sync("zendesk")  # organizations listed: not due again for an hour
    emu = zd.zd
    zd.sf.update("Account", ids[3], {"Website": "https://brand-new.example"})
    sync_accounts(pipeline.context)
    org = emu.add_organization("Brand new", ["brand-new.example"])
    emu.set_time(datetime.now(UTC) - timedelta(minutes=5))
    emu.add_ticket(org, "First ticket", priority="urgent")
    emu.set_time(None)

    def urgent() -> float | None:
        return {
            a: v for a, m, v, _ in pipeline.store.latest_signals() if m == "zendesk_urgent_open"
        }[ids[3]]

    before = urgent()
    report = pipeline.sync("zendesk")
    assert report.tickets == 1 and report.organizations == zd.zd.organization_count
    assert urgent() == before + 1


@pytest.mark.parametrize(
    "slow",
    [
        r"/organizations",  # tickets are kept before their organization is matched
        r"/incremental/tickets",  # ratings are kept before their ticket
    ],
)
def test_the_order_the_three_reads_finish_in_does_not_change_a_signal(
    sf_emu, zd_emu, tmp_path, slow
) -> None:
    """Organizations and CSAT are read in a thread of their own while the export runs: whichever
    ends first, every ticket and rating ends with its account and every signal is the same."""
    ids = None
    results = []
    for name in ("quick", "slow"):
        (tmp_path / name).mkdir()
        factory = PipelineFactory(sf_emu, zd_emu, tmp_path / name)
        if ids is None:
            ids = seed(factory)
        if name == "slow":
            zd_emu.faults.add("slow", path=slow, delay=0.5)
        pipeline = factory()
        sync_accounts(pipeline.context)
        report = pipeline.sync("zendesk")
        zd_emu.faults.clear()
        store = factory.store
        tickets = store.source_records("zendesk", "tickets", ids)
        ratings = store.source_records("zendesk", "satisfaction_ratings", ids)
        latest = {(a, m): v for a, m, v, _ in store.latest_signals() if m.startswith("zendesk_")}
        results.append(
            (
                report.matched,
                sum(map(len, tickets.values())),
                sum(map(len, ratings.values())),
                latest,
            )
        )
        factory.close()
    quick, delayed = results
    assert quick[1] > 0 and quick[2] > 0  # tickets and ratings were linked to accounts
    assert delayed == quick


def test_a_recompute_in_chunks_computed_ahead_gives_the_same_signals(
    sf_emu, zd_emu, tmp_path, monkeypatch
) -> None:
    """A large recompute is computed by the database a few chunks ahead (on a connection of
    its own, in a second thread) while the previous chunk is written: the signals are those
    of a recompute in one chunk."""
    import connectors.zendesk.sync as zendesk_sync

    ids = None
    results = {}
    now = datetime.now(UTC)
    for chunk in (1000, 7):  # one chunk in this thread; several, computed ahead
        monkeypatch.setattr(zendesk_sync, "RECOMPUTE_CHUNK", chunk)
        (tmp_path / str(chunk)).mkdir()
        factory = PipelineFactory(sf_emu, zd_emu, tmp_path / str(chunk))
        if ids is None:
            ids = seed(factory, now=now)
        pipeline = factory(clock=lambda: now)
        sync_accounts(pipeline.context)
        report = pipeline.sync("zendesk")
        assert report.accounts_recomputed == len(ids)
        results[chunk] = {
            (a, m): v for a, m, v, _ in factory.store.latest_signals() if m.startswith("zendesk_")
        }
        factory.close()
    assert len(results[1000]) == 5 * len(ids)
    assert results[7] == results[1000]
