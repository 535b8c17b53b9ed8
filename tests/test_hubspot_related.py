"""HubSpot deals, tickets and contacts through hubspot-api-client against the emulators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from connectors.hubspot import HubSpotClient
from connectors.hubspot.companies import search_window
from connectors.hubspot.related_signals import RelatedRules
from connectors.hubspot.related_sync import OBJECTS, HubSpotRelatedReport, hubspot_owner_emails
from connectors.hubspot.source import sync_companies
from connectors.hubspot.source import sync_related as related_step
from connectors.registry import Settings
from connectors.salesforce.sync import sync_accounts
from healthscore.core.quota import LocalQuota
from healthscore.core.retry import RetryPolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SalesforceEmulator
from sandbox.hubspot import SearchLimits
from tests.conftest import FAST_RETRY
from tests.test_hubspot_connector import seed_both

N = 12  # accounts (and companies): the first half matched by id, the rest by domain
STAGES = ("closedwon", "closedlost", "contractsent", "qualifiedtobuy")
PRIORITIES = ("LOW", "HIGH", "MEDIUM", "URGENT")
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def hs_emu() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(search_per_second=1000, requests_per_10s=10_000) as emu:
        emu.define_property(
            "deals",
            "dealtype",
            "enumeration",
            options=[
                {"label": "New Business", "value": "newbusiness"},
                {"label": "Existing Business", "value": "existingbusiness"},
            ],
        )
        yield emu


@pytest.fixture
def build(hs_pipeline: Callable[..., Pipeline]) -> Callable[..., Pipeline]:
    """Pipelines on one store, against the emulators (with deal types defined)."""
    return hs_pipeline


def sync_related(
    pipeline: Pipeline,
    *,
    full: bool = False,
    objects: tuple[str, ...] = OBJECTS,
    rules: RelatedRules | None = None,
) -> HubSpotRelatedReport:
    """The product's related step (``connectors.hubspot.source.sync_related``), with the
    default reading rules unless a test sets its own."""
    return related_step(
        pipeline.context, full=full, objects=list(objects), rules=rules or RelatedRules()
    )


def world(
    sf_emu: SalesforceEmulator,
    hs_emu: HubSpotEmulator,
    pipeline: Pipeline,
    *,
    shared_domain: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """Accounts and matched companies: (company ids, company id → account id)."""
    sf_ids, company_ids = seed_both(sf_emu, hs_emu, n=N)
    if shared_domain:  # account 1 gets account 0's website: that domain is ambiguous
        website = sf_emu.record("Account", sf_ids[0])["Website"]
        sf_emu.update("Account", sf_ids[1], {"Website": website})
    sync_accounts(pipeline.context)
    sync_companies(pipeline.context)
    accounts = {v: a for _, v, a in pipeline.store.account_keys("hubspot:company")}
    assert len(accounts) == N
    return company_ids, accounts


@contextmanager
def stamped(hs_emu: HubSpotEmulator, ago: timedelta) -> Iterator[None]:
    """Writes inside are stamped ``ago`` back: seed data 2 h back stays out of the next
    sync's overlap; changes 1 s back are not at the very instant a sync starts (the emulator
    rounds to the millisecond, and such a change is left for the sync after)."""
    hs_emu.set_time(datetime.now(UTC) - ago)
    try:
        yield
    finally:
        hs_emu.set_time(None)


SEEDED, CHANGED = timedelta(hours=2), timedelta(seconds=1)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def deal_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for k in range(count):
        turn = k // N  # each company gets a mix of stages, types and dates
        rows.append(
            {
                "dealname": f"Deal {k}",
                "amount": str(1000 + k),
                "dealstage": STAGES[turn % 4],
                "dealtype": "existingbusiness" if turn % 3 == 0 else "newbusiness",
                "closedate": iso(TODAY + timedelta(days=(turn * 97) % 800 - 600)),
            }
        )
    return rows


def ticket_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for k in range(count):
        turn = k // N
        stage = ("1", "2", "3", "4")[turn % 4]
        row = {
            "subject": f"Ticket {k}",
            "hs_pipeline": "0",
            "hs_pipeline_stage": stage,
            "hs_ticket_priority": PRIORITIES[(turn * 3) % 4],
            "createdate": iso(TODAY - timedelta(days=(turn * 7) % 60)),
        }
        if stage == "4":
            row["closed_date"] = iso(TODAY)
        rows.append(row)
    return rows


def create(
    hs_emu: HubSpotEmulator, obj: str, rows: list[dict[str, str]], company_ids: list[str]
) -> list[str]:
    ids = hs_emu.create_many(obj, rows)
    for k, rid in enumerate(ids):
        hs_emu.associate(obj, rid, "companies", company_ids[k % len(company_ids)])
    return ids


def signals(pipeline: Pipeline) -> dict[tuple[str, str], float | None]:
    return {(a, m): v for a, m, v, _ in pipeline.store.latest_signals()}


def test_full_sync_of_deals_tickets_and_contacts_across_pages(sf_emu, hs_emu, build) -> None:
    pipeline = build()
    company_ids, account_of = world(sf_emu, hs_emu, pipeline)
    deals = deal_rows(250)
    create(hs_emu, "deals", deals, company_ids)
    create(hs_emu, "tickets", ticket_rows(230), company_ids)
    domains = [hs_emu.record("companies", c)["properties"]["domain"] for c in company_ids]
    create(
        hs_emu,
        "contacts",
        [
            {
                "email": f"p{k}@{domains[k % N]}",
                "hs_email_optout": "true" if k % 5 == 0 else "false",
            }
            for k in range(210)
        ],
        company_ids,
    )
    report = sync_related(pipeline)
    for obj, count in (("deals", 250), ("tickets", 230), ("contacts", 210)):
        done = report.objects[obj]
        assert (done.records, done.matched, done.mode) == (count, count, "list")
        # list pages of 100 with the companies inline, plus one page of archived records
        assert (done.requests, done.association_requests) == (-(-count // 100) + 1, 0)
    assert report.requests == 3 + 1 + 3 + 1 + 3 + 1
    assert pipeline.store.cursor("hubspot", "deals") is not None

    values = signals(pipeline)
    account = account_of[company_ids[0]]
    mine = [d for k, d in enumerate(deals) if k % N == 0]
    open_ = [d for d in mine if d["dealstage"] not in ("closedwon", "closedlost")]
    renewals = [d["closedate"] for d in open_ if d["dealtype"] == "existingbusiness"]
    year_ago = TODAY - timedelta(days=364)
    won = [
        d
        for d in mine
        if d["dealstage"] == "closedwon"
        and datetime.fromisoformat(d["closedate"].replace("Z", "+00:00")) >= year_ago
    ]
    assert values[(account, "hubspot_open_deal_amount")] == sum(float(d["amount"]) for d in open_)
    assert (
        values[(account, "hubspot_renewal_next_at")]
        == datetime.fromisoformat(min(renewals).replace("Z", "+00:00")).timestamp()
    )
    assert values[(account, "hubspot_deals_won_365d")] == len(won)
    tickets = [t for k, t in enumerate(ticket_rows(230)) if k % N == 0]
    assert values[(account, "hubspot_tickets_open")] == sum(
        1 for t in tickets if t["hs_pipeline_stage"] != "4"
    )
    assert values[(account, "hubspot_tickets_high_open")] == sum(
        1
        for t in tickets
        if t["hs_pipeline_stage"] != "4" and t["hs_ticket_priority"] in ("HIGH", "URGENT")
    )
    assert values[(account, "hubspot_tickets_30d")] == sum(
        1 for t in tickets if t["createdate"] >= iso(datetime.now(UTC) - timedelta(days=30))
    )
    assert values[(account, "hubspot_contacts")] == len(range(0, 210, N))
    assert values[(account, "hubspot_email_opted_out")] == sum(
        1 for k in range(0, 210, N) if k % 5 == 0
    )
    assert {a for (a, m) in values if m == "hubspot_tickets_open"} == set(account_of.values())
    # owners: id → email, for the accounts' owner emails
    owners = hubspot_owner_emails(pipeline.client("hubspot"))
    assert owners and all("@" in email for email in owners.values())


def test_incremental_resync_reads_only_changes_and_a_closed_ticket_counts(
    sf_emu, hs_emu, build
) -> None:
    pipeline = build()
    with stamped(hs_emu, SEEDED):
        company_ids, account_of = world(sf_emu, hs_emu, pipeline)
        deal_ids = create(hs_emu, "deals", deal_rows(250), company_ids)
        ticket_ids = create(
            hs_emu,
            "tickets",
            [{"subject": f"T{k}", "hs_pipeline_stage": "1"} for k in range(40)],
            company_ids,
        )
    sync_related(pipeline, objects=("deals", "tickets"))
    account = account_of[company_ids[0]]
    assert signals(pipeline)[(account, "hubspot_tickets_open")] == 4  # tickets 0, 12, 24, 36

    with stamped(hs_emu, CHANGED):
        hs_emu.update(
            "tickets", ticket_ids[12], {"hs_pipeline_stage": "4", "closed_date": iso(TODAY)}
        )
        for rid in deal_ids[:3]:
            hs_emu.update("deals", rid, {"amount": "5"})
    hs_emu.clear_log()
    report = sync_related(pipeline, objects=("deals", "tickets"))
    deals, tickets = report.objects["deals"], report.objects["tickets"]
    # one search request, then each changed record's companies read through v4
    assert (deals.records, deals.mode, deals.requests, deals.association_requests) == (
        3,
        "search",
        4,
        3,
    )
    assert (tickets.records, tickets.requests) == (1, 2)
    assert len(hs_emu.requests("GET", r"^/crm/v4/objects/deals/\d+/associations/companies")) == 3
    assert hs_emu.requests("GET", r"^/crm/v3/objects/deals/?$") == []  # no list walk
    assert signals(pipeline)[(account, "hubspot_tickets_open")] == 3
    assert (tickets.accounts_recomputed, deals.accounts_recomputed) == (1, 3)

    # the overlap re-reads those changes, already kept as they are: one search each, no more
    unchanged = sync_related(pipeline, objects=("deals", "tickets"))
    assert unchanged.requests == 2 and unchanged.objects["deals"].unchanged == 3
    assert unchanged.objects["deals"].signals_changed == 0

    # many changes: a list walk of the 250 deals (3 pages) beats 150 association reads
    with stamped(hs_emu, CHANGED):
        for rid in deal_ids[100:250]:
            hs_emu.update("deals", rid, {"amount": "7"})
    many = sync_related(pipeline, objects=("deals",)).objects["deals"]
    assert (many.mode, many.records, many.requests) == ("search→list", 250, 1 + 1 + 3)


def test_contacts_free_mail_is_unmatched_shared_domain_ambiguous_domains_learned(
    sf_emu, hs_emu, build
) -> None:
    pipeline = build()
    with stamped(hs_emu, SEEDED):
        company_ids, account_of = world(sf_emu, hs_emu, pipeline, shared_domain=True)
        shared = hs_emu.record("companies", company_ids[0])["properties"]["domain"]
        jane = hs_emu.create("contacts", {"email": "jane@acme-labs.test"})
        hs_emu.associate("contacts", jane, "companies", company_ids[2])
        gmail = hs_emu.create("contacts", {"email": "bob@gmail.com"})
        gmail_at_company = hs_emu.create("contacts", {"email": "kim@gmail.com"})
        hs_emu.associate("contacts", gmail_at_company, "companies", company_ids[3])
        both = hs_emu.create("contacts", {"email": f"sam@{shared}"})
        eve = hs_emu.create("contacts", {"email": "eve@acme-labs.test"})
    learner = account_of[company_ids[2]]
    report = sync_related(pipeline, objects=("contacts",))
    contacts = report.objects["contacts"]
    assert (contacts.matched, contacts.unmatched, contacts.ambiguous) == (2, 2, 1)
    unmatched = {
        u.record_id: u for u in pipeline.store.unmatched("hubspot") if u.object == "contacts"
    }
    assert unmatched[gmail].reason == "no_key"
    assert (
        unmatched[both].reason == "ambiguous" and "belongs to 2 accounts" in unmatched[both].detail
    )
    assert unmatched[eve].reason == "no_match"  # acme-labs.test was nobody's domain yet
    # jane (through her company) taught the account acme-labs.test; gmail.com is never learned
    domains = {(v, a) for _, v, a in pipeline.store.account_keys("domain")}
    assert ("acme-labs.test", learner) in domains
    assert not any(v == "gmail.com" for v, _ in domains)
    assert report.domains_learned == 1
    # the next sync matches eve from the kept copy (no HubSpot change, no extra request)
    again = sync_related(pipeline, objects=("contacts",)).objects["contacts"]
    assert again.rematched == 1 and again.requests == 1
    assert eve not in {u.record_id for u in pipeline.store.unmatched("hubspot")}
    assert signals(pipeline)[(learner, "hubspot_contacts")] == 2
    # a CRM sync that rewrites the account's domains does not lose the learned one
    pipeline.store.set_account_keys("domain", {learner: ["only-crm.example"]})
    sync_related(pipeline, objects=("contacts",))
    assert ("acme-labs.test", learner) in {
        (v, a) for _, v, a in pipeline.store.account_keys("domain")
    }


def test_rate_limit_is_retried(sf_emu, hs_emu, build) -> None:
    waits: list[float] = []
    pipeline = build(retry=RetryPolicy(attempts=5, max_wait=60, sleep=waits.append))
    with stamped(hs_emu, SEEDED):
        company_ids, _ = world(sf_emu, hs_emu, pipeline)
        ids = create(hs_emu, "deals", deal_rows(30), company_ids)
    sync_related(pipeline, objects=("deals",))
    with stamped(hs_emu, CHANGED):
        hs_emu.update("deals", ids[0], {"amount": "1"})
    hs_emu.faults.add("rate_limit", method="POST", path=r"/crm/v3/objects/deals/search", times=1)
    hs_emu.faults.add("rate_limit", method="GET", path=r"/crm/v4/objects/deals/", times=1)
    report = sync_related(pipeline, objects=("deals",)).objects["deals"]
    assert report.records == 1
    statuses = [r.status for r in hs_emu.requests(path=r"/deals")]
    assert statuses.count(429) == 2 and statuses[-1] == 200
    assert len(waits) == 2 and all(w >= 1.0 for w in waits)


def test_a_malformed_deal_is_skipped_and_reported(sf_emu, hs_emu, build) -> None:
    pipeline = build()
    company_ids, account_of = world(sf_emu, hs_emu, pipeline)
    hs_emu.define_property("deals", "contract_value")  # free text: anything can be typed
    rows = [
        {"dealname": f"D{k}", "dealstage": "contractsent", "contract_value": "1000"}
        for k in range(2 * N)
    ]
    rows[0]["contract_value"] = "12k"
    ids = create(hs_emu, "deals", rows, company_ids)
    rules = RelatedRules(amount_property="contract_value")
    report = sync_related(pipeline, objects=("deals",), rules=rules).objects["deals"]
    assert report.skipped_ids == [ids[0]] and report.matched == 2 * N - 1
    values = signals(pipeline)
    assert values[(account_of[company_ids[0]], "hubspot_open_deal_amount")] == 1000
    assert values[(account_of[company_ids[1]], "hubspot_open_deal_amount")] == 2000


def test_an_archived_deal_stops_counting_at_the_deleted_records_check(
    sf_emu, hs_emu, build
) -> None:
    pipeline = build()
    with stamped(hs_emu, SEEDED):
        company_ids, account_of = world(sf_emu, hs_emu, pipeline)
        ids = create(
            hs_emu,
            "deals",
            [
                {"dealname": f"D{k}", "dealstage": "contractsent", "amount": "100"}
                for k in range(2 * N)
            ],
            company_ids,
        )
    sync_related(pipeline, objects=("deals",))
    account = account_of[company_ids[0]]
    assert signals(pipeline)[(account, "hubspot_open_deal_amount")] == 200
    hs_emu.archive("deals", ids[0])
    # search never returns archived records: until the check is due, the deal still counts
    report = sync_related(pipeline, objects=("deals",)).objects["deals"]
    assert (report.records, report.archived) == (0, 0)
    assert signals(pipeline)[(account, "hubspot_open_deal_amount")] == 200
    later = datetime.now(UTC) + timedelta(hours=25)  # deleted_check_every: 24 h
    pipeline.clock = lambda: later
    report = sync_related(pipeline, objects=("deals",)).objects["deals"]
    assert report.archived == 1
    assert signals(pipeline)[(account, "hubspot_open_deal_amount")] == 100


def test_the_search_walker_crosses_the_result_cap_without_loss_or_duplicates() -> None:
    limits = SearchLimits(result_cap=50)
    with HubSpotEmulator(
        search_per_second=1000, requests_per_10s=10_000, search_limits=limits
    ) as emu:
        moment = datetime.now(UTC) - timedelta(hours=1)
        with stamped(emu, timedelta(hours=1)):  # 120 deals share one hs_lastmodifieddate
            crowded = emu.create_many("deals", [{"dealname": f"D{k}"} for k in range(120)])
        with stamped(emu, timedelta(minutes=50)):
            later = emu.create_many("deals", [{"dealname": f"L{k}"} for k in range(70)])
        client = HubSpotClient(
            Settings(hubspot_access_token=emu.access_token, hubspot_base_url=emu.base_url),
            retry=FAST_RETRY,
            quota=LocalQuota(1000, 1000),
            search_quota=LocalQuota(1000, 1000),
        )
        pages = list(
            search_window(
                client,
                "deals",
                ["dealname"],
                modified="hs_lastmodifieddate",
                lower=moment - timedelta(minutes=1),
                started=datetime.now(UTC),
                limit=20,
                cap=limits.result_cap,
            )
        )
        ids = [r.id for page in pages for r in page.results]
        assert sorted(ids) == sorted(crowded + later) and len(ids) == len(set(ids))
        assert len(pages) == len(emu.requests("POST", r"/search$"))
