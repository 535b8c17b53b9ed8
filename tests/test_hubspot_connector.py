"""The HubSpot connector through hubspot-api-client against the HubSpot emulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from connectors.hubspot import ensure_properties
from connectors.hubspot.source import sync_companies
from connectors.salesforce.sync import sync_accounts
from healthscore.core.errors import AuthError
from healthscore.core.retry import RetryPolicy
from sandbox import HubSpotEmulator, SalesforceEmulator, generate_org
from tests.conftest import METRICS, hubspot_config

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def seed_both(
    sf_emu: SalesforceEmulator, hs_emu: HubSpotEmulator, n: int = 30
) -> tuple[list[str], list[str]]:
    """Both CRMs from one org; the first half of the companies carry the Salesforce id."""
    org = generate_org(n, seed=21, now=NOW)
    sf_ids = sf_emu.seed(org)
    company_ids = hs_emu.seed(org, account_ids=sf_ids)
    for cid in company_ids[n // 2 :]:  # the rest are matched by domain only
        hs_emu.update("companies", cid, {"salesforce_account_id": ""})
    return sf_ids, company_ids


def test_companies_match_by_id_then_domain_and_odd_ones_are_reported(
    sf_emu, hs_emu, hs_pipeline
) -> None:
    sf_ids, _ = seed_both(sf_emu, hs_emu)
    # a second Salesforce account on an existing domain makes that domain ambiguous
    shared = sf_emu.record("Account", sf_ids[-1])["Website"]
    sf_emu.update("Account", sf_ids[-2], {"Website": shared})
    hs_emu.create("companies", {"name": "Initech", "domain": "initech.example"})
    hs_emu.create("companies", {"name": "Freelancer", "domain": "gmail.com"})
    pipeline = hs_pipeline()
    sync_accounts(pipeline.context)
    report = sync_companies(pipeline.context)
    assert report.records == 32
    # 15 by id, 13 by domain; the last company's domain now belongs to two accounts
    # (ambiguous); the second-to-last kept a domain no account has any more, Initech is
    # unknown, and a gmail.com company has no company domain at all
    assert (report.matched, report.ambiguous, report.unmatched) == (28, 1, 3)
    reasons = sorted(u.reason for u in pipeline.store.unmatched("hubspot"))
    assert reasons == ["ambiguous", "no_key", "no_match", "no_match"]
    details = " ".join(u.detail for u in pipeline.store.unmatched("hubspot"))
    assert "initech.example" in details and "belongs to 2 accounts" in details
    assert pipeline.store.signal_counts()["hubspot"] > 0
    assert {s for _, m, _, _ in pipeline.store.latest_signals() for s in [m]} >= set(METRICS)


def test_incremental_resync_reads_only_changes_in_one_request(sf_emu, hs_emu, hs_pipeline) -> None:
    now = datetime.now(UTC)
    hs_emu.set_time(now - timedelta(hours=2))
    _, company_ids = seed_both(sf_emu, hs_emu)
    hs_emu.set_time(now - timedelta(hours=1))
    hs_emu.update("companies", company_ids[0], {"nps_score": "7"})
    pipeline = hs_pipeline()
    sync_accounts(pipeline.context)
    first = sync_companies(pipeline.context)
    assert (first.records, first.requests) == (30, 1)  # full: one list page
    hs_emu.set_time(None)
    hs_emu.update("companies", company_ids[3], {"nps_score": "2"})
    hs_emu.clear_log()
    changed = sync_companies(pipeline.context)
    # from the first sync's start minus the overlap: only the new change, one request
    assert (changed.records, changed.requests, changed.signals_changed) == (1, 1, 1)
    unchanged = sync_companies(pipeline.context)
    assert (unchanged.requests, unchanged.signals_changed) == (1, 0)
    assert len(hs_emu.requests("POST", r"/search$")) == 2


def test_search_cap_of_10000_is_crossed_without_loss_or_duplicates(
    sf_emu, hs_emu, hs_pipeline
) -> None:
    moment = datetime.now(UTC) - timedelta(hours=2)
    hs_emu.set_time(moment - timedelta(hours=1))
    seed_both(sf_emu, hs_emu, n=10)
    pipeline = hs_pipeline(hubspot_config(overlap=timedelta(0)))
    sync_accounts(pipeline.context)
    pipeline.clock = lambda: moment - timedelta(minutes=1)  # the first sync ran back then
    sync_companies(pipeline.context)
    pipeline.clock = lambda: datetime.now(UTC)
    hs_emu.set_time(moment)  # 10,300 companies share one hs_lastmodifieddate
    ids = hs_emu.create_many(
        "companies", [{"name": f"Bulk {i}", "domain": f"b{i}.example"} for i in range(10_300)]
    )
    hs_emu.set_time(moment + timedelta(seconds=5))
    more = hs_emu.create_many(
        "companies", [{"name": f"Late {i}", "domain": f"l{i}.example"} for i in range(150)]
    )
    hs_emu.set_time(None)
    report = sync_companies(pipeline.context)
    assert report.records == 10_450
    assert report.unmatched == 10_450
    seen = {u.record_id for u in pipeline.store.unmatched("hubspot")}
    assert set(ids) | set(more) <= seen


def test_rate_limit_and_server_errors_are_retried(sf_emu, hs_emu, hs_pipeline) -> None:
    seed_both(sf_emu, hs_emu)
    waits: list[float] = []
    pipeline = hs_pipeline(retry=RetryPolicy(attempts=5, max_wait=60, sleep=waits.append))
    sync_accounts(pipeline.context)
    hs_emu.faults.add("rate_limit", method="GET", path=r"/crm/v3/objects/companies", times=1)
    hs_emu.faults.add("server_error", method="GET", path=r"/crm/v3/objects/companies", times=1)
    report = sync_companies(pipeline.context)
    assert report.records == 30
    statuses = [r.status for r in hs_emu.requests("GET", r"/crm/v3/objects/companies")]
    assert 429 in statuses and any(s >= 500 for s in statuses) and statuses[-1] == 200
    # the 429's Retry-After (whole seconds) was honoured, then the 5xx backed off
    assert len(waits) == 2 and waits[0] >= 1.0


def test_rejected_token_names_the_variable(sf_emu, hs_emu, hs_pipeline) -> None:
    seed_both(sf_emu, hs_emu)
    pipeline = hs_pipeline()
    hs_emu.expire_tokens()
    with pytest.raises(AuthError, match="HUBSPOT_ACCESS_TOKEN was rejected"):
        sync_companies(pipeline.context)


def test_a_malformed_company_is_skipped_and_the_rest_goes_on(sf_emu, hs_emu, hs_pipeline) -> None:
    _, company_ids = seed_both(sf_emu, hs_emu)
    hs_emu.define_property("companies", "seats_note")  # free text: anything can be typed
    for cid in company_ids:
        hs_emu.update("companies", cid, {"seats_note": "12"})
    hs_emu.update("companies", company_ids[0], {"seats_note": "twelve"})
    pipeline = hs_pipeline(hubspot_config(metrics={"seats_noted": "seats_note"}))
    sync_accounts(pipeline.context)
    report = sync_companies(pipeline.context)
    assert report.skipped_ids == [company_ids[0]]
    assert report.matched == 29


def test_a_merged_company_loses_its_key(sf_emu, hs_emu, hs_pipeline) -> None:
    _, company_ids = seed_both(sf_emu, hs_emu)
    pipeline = hs_pipeline()
    sync_accounts(pipeline.context)
    sync_companies(pipeline.context)
    keys = {v for _, v, _ in pipeline.store.account_keys("hubspot:company")}
    assert company_ids[1] in keys
    hs_emu.archive("companies", company_ids[1])
    hs_emu.update("companies", company_ids[2], {"hs_merged_object_ids": company_ids[1]})
    sync_companies(pipeline.context)
    keys = {v for _, v, _ in pipeline.store.account_keys("hubspot:company")}
    assert company_ids[1] not in keys and company_ids[2] in keys


def test_health_fields_are_mirrored_100_per_request_and_only_when_changed(
    sf_emu, hs_emu, hs_pipeline
) -> None:
    org = generate_org(230, seed=8, now=NOW)
    sf_ids = sf_emu.seed(org)
    hs_emu.seed(org, account_ids=sf_ids)
    pipeline = hs_pipeline()
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    first = pipeline.run_cycle()
    assert first.writes.get("hubspot") is not None
    assert first.writes.get("hubspot").records_updated == 230
    assert (
        first.writes.get("hubspot").requests
        == math.ceil(230 / 100)
        == len(hs_emu.requests("POST", r"/companies/batch/update$"))
    )
    company = hs_emu.records("companies")[0]["properties"]
    account = sf_emu.record("Account", company["salesforce_account_id"])
    assert float(company["healthscore_score"]) == account["Health_Score__c"]
    assert company["healthscore_grade"] == account["Health_Grade__c"].lower().replace(" ", "_")
    hs_emu.clear_log()
    second = hs_pipeline().run_cycle()
    assert second.writes.get("hubspot") is not None
    assert (
        second.writes.get("hubspot").records_updated,
        second.writes.get("hubspot").requests,
    ) == (0, 0)
    assert hs_emu.requests("POST", r"/batch/update$") == []


def test_a_company_hubspot_rejects_stays_pending(sf_emu, hs_emu, hs_pipeline) -> None:
    org = generate_org(20, seed=9, now=NOW)
    sf_ids = sf_emu.seed(org)
    company_ids = hs_emu.seed(org, account_ids=sf_ids)
    pipeline = hs_pipeline()
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    pipeline.sync_all()
    hs_emu.archive("companies", company_ids[4])  # gone by the time we write
    hubspot_write = pipeline.score_and_act().writes.get("hubspot")
    assert hubspot_write is not None
    assert hubspot_write.records_updated == 19 and hubspot_write.pending == 1
    assert pipeline.store.pending_writes("hubspot")[0].account_id == sf_ids[4]


def test_setup_creates_missing_properties_once(hs_emu, hs_pipeline) -> None:
    pipeline = hs_pipeline()
    fields = pipeline.config.sources.hubspot.write_back
    created = ensure_properties(pipeline.client("hubspot"), fields)
    assert "healthscore_score" in created and "group healthscore" in created
    assert ensure_properties(pipeline.client("hubspot"), fields) == []
    assert hs_emu.get_property("companies", "healthscore_grade")["type"] == "enumeration"
