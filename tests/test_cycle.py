"""Whole cycles against the emulators: write only what changed, in few requests, never lose one."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.salesforce.accounts import parse_sf_datetime
from healthscore.config import Config
from healthscore.pipeline.cycle import Pipeline
from healthscore.pipeline.scoring_run import CRM_GRADES
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import Store
from store.models import utcnow
from tests.conftest import fast_config

NOW = datetime.now(UTC)
PATCHES = r"/composite/sobjects"
HEALTH_FIELDS = {
    "score": "Health_Score__c",
    "grade": "Health_Grade__c",
    "trend": "Health_Trend__c",
    "reasons": "Health_Reasons__c",
}


def config_with(*, batch_size: int | None = None, enter_red: bool = True) -> Config:
    config = fast_config()
    source = config.sources.salesforce
    if batch_size is not None:
        source = source.model_copy(update={"batch_size": batch_size})
    return config.model_copy(
        update={
            "sources": config.sources.model_copy(update={"salesforce": source}),
            "alerts": config.alerts.model_copy(update={"enter_red": enter_red}),
        }
    )


def patches(emu: SalesforceEmulator) -> list[Any]:
    """The sObject Collections writes the emulator answered 200 (faults excluded)."""
    return [r for r in emu.requests("PATCH", PATCHES) if r.status == 200]


def health(emu: SalesforceEmulator, account_id: str) -> dict[str, Any]:
    record = emu.record("Account", account_id)
    return {role: record[name] for role, name in HEALTH_FIELDS.items()}


def assert_crm_holds_the_latest_scores(emu: SalesforceEmulator, store: Store) -> None:
    """Every account's health fields in Salesforce are the store's latest score."""
    latest = store.scores_as_of(utcnow())
    known = store.crm_state("salesforce")
    assert latest and set(latest) == set(known)
    for account_id, score in latest.items():
        held = health(emu, account_id)
        assert held == {role: known[account_id][role] for role in HEALTH_FIELDS}, account_id
        assert held["grade"] == CRM_GRADES[score.grade], account_id
        assert held["score"] == (None if score.score is None else float(round(score.score)))
        # stamped when the values last changed (not rewritten when only the time would)
        updated = emu.record("Account", account_id)["Health_Updated__c"]
        assert updated == parse_sf_datetime(known[account_id]["updated"]), account_id
        assert updated <= score.scored_at


def copy_metrics(emu: SalesforceEmulator, config: Config, source: str, target: str) -> None:
    """Give ``target`` the usage, support and relationship values of ``source``."""
    record = emu.record("Account", source)
    emu.update(
        "Account", target, {f: record[f] for f in config.sources.salesforce.metrics.values()}
    )


def test_a_second_cycle_on_unchanged_data_writes_and_posts_nothing(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org = generate_org(40, seed=21, now=NOW)
    sf_emu.seed(org)
    slack_emu.add_users(org.users)
    pipeline = make_pipeline()
    first = pipeline.run_cycle()
    assert first.write.records_updated == 40 and first.delivery.sent == first.scoring.entered_red
    assert first.scoring.entered_red > 0
    writes, posts = len(patches(sf_emu)), len(slack_emu.messages)
    assert (writes, posts) == (1, first.scoring.entered_red)

    second = make_pipeline().run_cycle()  # a new process on the same store, nothing changed
    assert second.sync.records == 40  # the write-back bumped SystemModstamp: all re-read
    assert len(sf_emu.requests("PATCH", PATCHES)) == writes
    assert len(slack_emu.messages) == posts
    summary = second.summary()
    assert (
        summary["crm_records_updated"],
        summary["crm_write_requests"],
        summary["crm_writes_pending"],
        summary["entered_red"],
        summary["slack_messages"],
    ) == (0, 0, 0, 0, 0)
    assert_crm_holds_the_latest_scores(sf_emu, pipeline.store)


def test_only_the_accounts_that_changed_are_written(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(40, seed=22, now=NOW))
    pipeline = make_pipeline()
    pipeline.run_cycle()
    grades = {a: s.grade for a, s in pipeline.store.scores_as_of(utcnow()).items()}
    red = next(a for a, g in grades.items() if g == "red")
    green = sorted(a for a, g in grades.items() if g == "green")
    edited, turned_red = green[0], green[1]
    # a CSM overwrote the score by hand, and one green account's usage collapsed
    sf_emu.update("Account", edited, {"Health_Score__c": 3.0, "Health_Grade__c": "Red"})
    copy_metrics(sf_emu, pipeline.config, red, turned_red)
    sf_emu.write_history.clear()
    posts = len(slack_emu.messages)

    cycle = make_pipeline().run_cycle()
    assert cycle.write.records_updated == 2 and cycle.write.requests == 1
    assert sorted(a for a, _ in sf_emu.write_history) == sorted([edited, turned_red])
    assert health(sf_emu, turned_red)["grade"] == "Red"
    assert health(sf_emu, edited)["grade"] == "Green"  # the hand edit is put right
    assert cycle.delivery.sent == 1 and len(slack_emu.messages) == posts + 1
    assert pipeline.store.actions(status="sent")[-1].account_id == turned_red
    assert_crm_holds_the_latest_scores(sf_emu, pipeline.store)


def test_rate_limits_and_server_errors_on_writes_lose_and_double_nothing(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    ids = sf_emu.seed(generate_org(60, seed=23, now=NOW))
    # 6 requests of 10 records; ~40 % of the attempts answered 403 REQUEST_LIMIT_EXCEEDED
    # (at most twice) or 503 SERVER_UNAVAILABLE
    sf_emu.faults.add("rate_limit", method="PATCH", path=PATCHES, share=0.4, times=2, seed=5)
    sf_emu.faults.add("server_error", method="PATCH", path=PATCHES, share=0.4, seed=6)
    config = config_with(batch_size=10, enter_red=False)

    reports = []
    for _ in range(3):  # the cycle, then at most two retry cycles
        reports.append(make_pipeline(config).run_cycle())
        if reports[-1].write.pending == 0:
            break
    faults = Counter(r.fault for r in sf_emu.requests("PATCH", PATCHES))
    assert faults["rate_limit"] >= 1 and faults["server_error"] >= 1, faults  # really injected
    assert len(reports) > 1, "a rate limit must leave writes pending for the next cycle"
    first = reports[0]
    assert first.write.pending > 0 and "daily API allocation" in (first.write.error or "")
    assert sum(r.write.records_updated for r in reports) == 60
    assert reports[-1].write.pending == 0

    store = make_pipeline().store
    assert store.pending_writes("salesforce") == []
    writes = Counter(account_id for account_id, _ in sf_emu.write_history)
    assert set(writes) == set(ids)
    assert max(writes.values()) == 1, "an account was written twice"
    assert all(len(r.body["records"]) <= 10 for r in patches(sf_emu))
    assert_crm_holds_the_latest_scores(sf_emu, store)


def test_a_record_the_crm_rejects_stays_pending_and_is_retried(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    ids = sf_emu.seed(generate_org(30, seed=24, now=NOW))
    locked, validated = ids[3], ids[17]
    sf_emu.fail_records(
        {locked: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")}, times=1
    )
    sf_emu.fail_records(
        {validated: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "score is frozen")}, times=2
    )
    config = config_with(enter_red=False)
    pipeline = make_pipeline(config)

    first = pipeline.run_cycle()
    assert (first.write.records_updated, first.write.failed_records, first.write.pending) == (
        28,
        2,
        2,
    )
    pending = {p.account_id: p for p in pipeline.store.pending_writes("salesforce")}
    assert set(pending) == {locked, validated}
    assert "UNABLE_TO_LOCK_ROW" in (pending[locked].last_error or "")
    assert pending[validated].attempts == 1
    assert health(sf_emu, locked)["grade"] is None

    second = make_pipeline(config).run_cycle()
    assert (second.write.records_updated, second.write.requests, second.write.pending) == (1, 1, 1)
    (still,) = pipeline.store.pending_writes("salesforce")
    assert still.account_id == validated and still.attempts == 2
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION: score is frozen" in (still.last_error or "")

    third = make_pipeline(config).run_cycle()
    assert (third.write.records_updated, third.write.pending) == (1, 0)
    assert Counter(a for a, _ in sf_emu.write_history) == Counter(ids)  # each once
    assert_crm_holds_the_latest_scores(sf_emu, pipeline.store)


@pytest.mark.parametrize("accounts", [200, 401])
def test_crm_write_requests_are_ceil_records_over_200(
    accounts: int, sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(accounts, seed=25, now=NOW))
    cycle = make_pipeline(config_with(enter_red=False)).run_cycle()
    assert cycle.write.records_updated == accounts
    assert cycle.write.requests == math.ceil(accounts / 200)
    sizes = [len(r.body["records"]) for r in sf_emu.requests("PATCH", PATCHES)]
    assert len(sizes) == math.ceil(accounts / 200)
    assert sum(sizes) == accounts and max(sizes) == 200


def test_a_pending_write_for_an_account_deleted_in_the_crm_is_dropped(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    ids = sf_emu.seed(generate_org(20, seed=26, now=NOW))
    gone = ids[4]
    sf_emu.fail_records({gone: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")})
    config = config_with(enter_red=False)
    first = make_pipeline(config).run_cycle()
    assert (first.write.records_updated, first.write.pending) == (19, 1)
    sf_emu.delete("Account", gone)  # merged away by a salesperson before the retry

    second = make_pipeline(config).run_cycle()
    assert second.sync.deleted == 1
    assert second.write.pending == 0 and second.write.failed_records == 0
    assert sf_emu.requests("PATCH", PATCHES)[1:] == []  # nothing left to send
    assert make_pipeline().store.pending_writes("salesforce") == []
