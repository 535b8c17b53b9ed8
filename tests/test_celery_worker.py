"""The beat-scheduled tasks on a real Celery worker, over the real Redis, against the sandbox."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing import tasks as _celery_ping  # noqa: F401  (registers celery.ping)
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish

from connectors.salesforce.settings import DAILY_LIMIT_WAIT
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from healthscore.core.locks import redis_client, single_flight
from healthscore.pipeline.scoring_run import CRM_GRADES
from healthscore.worker import tasks
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import Store
from store.models import utcnow

NOW = datetime.now(UTC)
PATCHES = r"/composite/sobjects"


@pytest.fixture
def celery_app(sandbox_env: dict[str, str], redis_url: str) -> Iterator[Celery]:
    """``tasks.app`` on the test Redis, with a fresh per-process runtime from the env."""
    app = tasks.app
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    saved = {k: app.conf[k] for k in ("broker_url", "result_backend", "worker_hijack_root_logger")}
    app.conf.update(broker_url=redis_url, result_backend=redis_url, worker_hijack_root_logger=False)
    vars(app._local).pop("backend", None)  # a result backend built earlier for another URL
    tasks.runtime.cache_clear()
    client = redis_client(redis_url)
    for key in client.scan_iter("healthscore:lock:*"):
        client.delete(key)
    app.control.purge()  # nothing left over from an earlier run in this Redis
    yield app
    app.control.purge()  # nor from this one (a retry waiting for its countdown)
    if tasks.runtime.cache_info().currsize:
        tasks.runtime().store.close()
    tasks.runtime.cache_clear()
    app.conf.update(saved)
    root.setLevel(saved_level)
    root.handlers[:] = saved_handlers


def _store(env: dict[str, str]) -> Store:
    return Store(env["DATABASE_URL"])


def _health(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "score": record["Health_Score__c"],
        "grade": record["Health_Grade__c"],
        "trend": record["Health_Trend__c"],
        "reasons": record["Health_Reasons__c"],
    }


def test_beat_schedule_runs_on_a_worker_and_writes_the_scores_back(
    celery_app: Celery,
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
) -> None:
    org = generate_org(40, seed=11, now=NOW)
    ids = sf_emu.seed(org)
    slack_emu.add_users(org.users)

    schedule = celery_app.conf.beat_schedule
    config = load_config(sandbox_env["HEALTHSCORE_CONFIG"])
    assert [e["task"] for e in schedule.values()] == ["tasks.sync_source", "tasks.score_cycle"]
    assert all(e["task"] in celery_app.tasks for e in schedule.values())
    by_task = {e["task"]: e for e in schedule.values()}
    assert (
        by_task["tasks.sync_source"]["schedule"]
        == config.sources.salesforce.sync_every.total_seconds()
    )
    assert by_task["tasks.score_cycle"]["schedule"] == config.scoring.every.total_seconds()

    results = {}
    with start_worker(celery_app, pool="solo", perform_ping_check=True, shutdown_timeout=30):
        for entry in schedule.values():  # what beat sends, in its order, one after the other
            result = celery_app.send_task(
                entry["task"],
                args=entry.get("args", ()),
                kwargs=entry.get("kwargs", {}),
                **entry.get("options", {}),
            )
            results[entry["task"]] = result.get(timeout=60)

    sync, cycle = results["tasks.sync_source"], results["tasks.score_cycle"]
    assert (sync["records"], sync["skipped"]) == (40, 0)
    assert cycle["scoring"]["scored"] == 40
    assert cycle["write"]["records_updated"] == 40 and cycle["write"]["pending"] == 0
    assert cycle["write"]["requests"] == 1
    assert len(sf_emu.requests("PATCH", PATCHES)) == 1

    store = _store(sandbox_env)
    try:
        latest = store.scores_as_of(utcnow())
        crm = store.crm_state("salesforce")
        assert set(latest) == set(crm) == set(ids)
        assert store.pending_writes("salesforce") == []
        for account_id in ids:
            record = sf_emu.record("Account", account_id)
            score = latest[account_id]
            assert record["Health_Grade__c"] == CRM_GRADES[score.grade], account_id
            expected = None if score.score is None else float(round(score.score))
            assert record["Health_Score__c"] == expected, account_id
            assert _health(record) == {
                k: crm[account_id][k] for k in ("score", "grade", "trend", "reasons")
            }
            for reason in score.reasons["top"]:  # the stored explanation is on the Account
                assert reason["label"] in record["Health_Reasons__c"], account_id
            if score.grade == "red":
                assert record["Health_Reasons__c"], account_id
            written = record["Health_Updated__c"]
            assert written == score.scored_at.replace(microsecond=0)
        reds = sorted(a for a, s in latest.items() if s.grade == "red")
        assert reds, "the synthetic org should have red accounts"
        assert cycle["scoring"]["entered_red"] == cycle["delivery"]["sent"] == len(reds)
        assert len(slack_emu.messages) == len(reds)
        sent = {a.account_id for a in store.actions(status="sent")}
        assert sorted(sent) == reds
    finally:
        store.close()


def test_a_run_is_skipped_while_another_holds_the_lock(
    celery_app: Celery,
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
) -> None:
    sf_emu.seed(generate_org(20, seed=12, now=NOW))
    redis = redis_client(sandbox_env["REDIS_URL"])
    with (
        single_flight(redis, "sync:salesforce", 60) as mine_sync,
        single_flight(redis, "score", 60) as mine_score,
    ):
        assert mine_sync and mine_score
        assert tasks.sync_source.apply(args=("salesforce",)).get() == {"skipped": "already running"}
        assert tasks.score_cycle.apply().get() == {"skipped": "already running"}
    assert sf_emu.requests("GET", r"/query") == []  # the skipped runs did nothing
    store = _store(sandbox_env)
    try:
        assert store.accounts() == [] and store.runs() == []
        # released: the next runs go ahead
        assert tasks.sync_source.apply(args=("salesforce",)).get()["records"] == 20
        assert tasks.score_cycle.apply().get()["scoring"]["scored"] == 20
        assert len(store.runs()) == 1
    finally:
        store.close()


def test_a_concurrent_second_cycle_is_skipped_not_doubled(
    celery_app: Celery,
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
) -> None:
    sf_emu.seed(generate_org(20, seed=13, now=NOW))
    assert tasks.sync_source.apply(args=("salesforce",)).get()["records"] == 20
    sf_emu.faults.add("slow", method="PATCH", path=PATCHES, times=1, delay=2.0)
    store = _store(sandbox_env)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            first = celery_app.send_task("tasks.score_cycle")
            deadline = time.monotonic() + 20
            while not store.runs():  # the worker's cycle has started and holds the lock
                assert time.monotonic() < deadline, "the worker never started the cycle"
                time.sleep(0.02)
            second: dict[str, Any] = {}
            thread = threading.Thread(target=lambda: second.update(tasks.score_cycle.apply().get()))
            thread.start()
            thread.join(10)
            assert second == {"skipped": "already running"}
            assert first.get(timeout=30)["write"]["records_updated"] == 20
        assert len(store.runs()) == 1
        assert len(sf_emu.requests("PATCH", PATCHES)) == 1
        assert (
            len({m["ts"] for m in slack_emu.messages})
            == len(slack_emu.messages)
            == len(store.actions(status="sent"))
        )
    finally:
        store.close()


def test_a_failed_run_releases_its_lock(
    celery_app: Celery, sandbox_env: dict[str, str], sf_emu: SalesforceEmulator
) -> None:
    sf_emu.seed(generate_org(5, seed=14, now=NOW))
    sf_emu.remove_field("Account", "Health_Score__c")
    with pytest.raises(ConfigError, match="Health_Score__c"):
        tasks.sync_source.apply(args=("salesforce",), throw=True).get()
    with single_flight(redis_client(sandbox_env["REDIS_URL"]), "sync:salesforce", 60) as mine:
        assert mine


def test_a_rate_limited_write_is_retried_by_its_own_task_without_rescoring_or_realerting(
    celery_app: Celery,
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
) -> None:
    sf_emu.seed(generate_org(30, seed=15, now=NOW))
    assert tasks.sync_source.apply(args=("salesforce",)).get()["records"] == 30
    sf_emu.faults.add("rate_limit", method="PATCH", path=PATCHES, times=1)
    scheduled: list[dict[str, Any]] = []

    def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers and headers.get("task") == "tasks.flush_writes":
            scheduled.append(headers)

    before_task_publish.connect(on_publish, weak=False)
    try:
        cycle = tasks.score_cycle.apply().get()
    finally:
        before_task_publish.disconnect(on_publish)
    assert cycle["write"]["pending"] == 30 and len(scheduled) == 1  # the writes' own retry
    result = tasks.flush_writes.apply().get()  # what the worker runs when it is due
    assert result["crm"]["records_updated"] == 30 and result["crm"]["pending"] == 0
    assert [r.status for r in sf_emu.requests("PATCH", PATCHES)] == [403, 200]
    store = _store(sandbox_env)
    try:
        assert len(store.runs()) == 1  # the retry did not score again
        sent = store.actions(status="sent")
        assert sent and len(sent) == len(store.actions())
        assert len(slack_emu.messages) == len(sent)  # the retry did not alert again
    finally:
        store.close()


def test_the_writes_wait_as_long_as_salesforce_says(
    celery_app: Celery, sandbox_env: dict[str, str], sf_emu: SalesforceEmulator
) -> None:
    sf_emu.seed(generate_org(10, seed=16, now=NOW))
    assert tasks.sync_source.apply(args=("salesforce",)).get()["records"] == 10
    sf_emu.faults.add("rate_limit", method="PATCH", path=PATCHES)  # daily allocation spent
    published: list[dict[str, Any]] = []

    def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers and headers.get("task") in ("tasks.score_cycle", "tasks.flush_writes"):
            published.append(headers)

    before_task_publish.connect(on_publish, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            sent_at = datetime.now(UTC)
            celery_app.send_task("tasks.score_cycle")
            deadline = time.monotonic() + 30
            while len(published) < 2:  # the cycle, then its writes' own retry
                assert time.monotonic() < deadline, "the writes were not retried"
                time.sleep(0.05)
    finally:
        before_task_publish.disconnect(on_publish)
    retry = published[1]
    assert [p["task"] for p in published] == ["tasks.score_cycle", "tasks.flush_writes"]
    wait = (datetime.fromisoformat(retry["eta"]) - sent_at).total_seconds()
    assert DAILY_LIMIT_WAIT - 5 < wait < DAILY_LIMIT_WAIT + 60, wait
    store = _store(sandbox_env)
    try:
        assert len(store.pending_writes("salesforce")) == 10  # kept for the retry
    finally:
        store.close()
