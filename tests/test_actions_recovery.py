"""A worker killed mid-delivery, then restarted: every action delivered once — reconciled by
key where the vendor allows it (Slack metadata, Salesforce external id, HubSpot search), at
most once for email (which cannot be looked up).

"Killed" is a ``WorkerKilled`` (a BaseException) raised from a delivery hook: nothing after it
runs, so the store is left exactly as a SIGKILL would leave it; the restart is a new pipeline
(fresh clients, fresh caches) on the same store, after the stuck-delivery timeout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from actions import DeliveryHooks, WorkerKilled
from actions.deliver import STUCK_SENDING
from connectors.hubspot.csm_tasks import ensure_task_key_property
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SlackEmulator, generate_org
from sandbox.demo.run_demo import hubspot_record_config
from store import Store
from store.models import ActionLog, utcnow
from tests.actions_helpers import EMAIL, NOW, TASK, World, config_with, task_upserts, world
from tests.conftest import fast_config, fast_hubspot_client, hubspot_record_settings

__all__ = ["world"]

RED = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": ["slack", TASK, EMAIL]}


def restart_later(store: Store) -> None:
    """Time passes beyond the stuck-delivery timeout (as after a real crash and restart)."""
    with store.session() as s:
        s.execute(
            update(ActionLog)
            .where(ActionLog.status.in_(("sending", "unknown")))
            .values(updated_at=utcnow() - STUCK_SENDING - timedelta(minutes=1))
        )


def kill_at(kind: str, nth: int = 1) -> Callable[..., None]:
    """A hook that kills the worker at the ``nth`` action of one kind."""
    seen = Counter[str]()

    def hook(action: ActionLog, *_: Any) -> None:
        seen[action.kind] += 1
        if action.kind == kind and seen[kind] == nth:
            raise WorkerKilled(f"killed at {action.key}")

    return hook


def scored(world: World, seed: int) -> Pipeline:
    world.sf.seed(generate_org(30, seed=seed, now=NOW))
    pipeline = world.pipeline(config_with(RED))
    pipeline.sync_all()
    pipeline.score()
    return pipeline


def exactly_once(world: World) -> tuple[int, int, int]:
    """(alerts, tasks, emails) — asserting none went out twice."""
    texts = Counter(m["text"] for m in world.slack.messages)
    assert not texts or max(texts.values()) == 1
    keys = Counter(task_upserts(world.sf))
    assert not keys or max(keys.values()) == 1
    tasks = [t for t in world.sf.records("Task") if t.get("Healthscore_Key__c")]
    assert len(tasks) == len({t["Healthscore_Key__c"] for t in tasks})
    emails = Counter(m["custom_args"]["healthscore_key"] for m in world.sendgrid.sent)
    assert not emails or max(emails.values()) == 1
    return len(world.slack.messages), len(tasks), len(world.sendgrid.sent)


@pytest.mark.parametrize("kind", ["slack", "task"])
def test_killed_after_the_claim_before_the_request_is_delivered_once_after_restart(
    world: World, kind: str
) -> None:
    pipeline = scored(world, seed=71)
    reds = len(pipeline.store.actions(kind="slack"))
    with pytest.raises(WorkerKilled):
        pipeline.deliver(hooks=DeliveryHooks(before_send=kill_at(kind, 2)))
    stuck = pipeline.store.actions(status="sending")
    # a batch is claimed whole before its one request: Slack posts one message a request,
    # the tasks (fewer than 200) go in one Collections upsert — all of them were claimed
    assert {a.kind for a in stuck} == {kind} and len(stuck) == (1 if kind == "slack" else reds)
    assert exactly_once(world)[1] == 0  # the kill came before the request: nothing was sent
    restart_later(world.store)
    report = world.pipeline(config_with(RED)).deliver()
    assert report.reconciled == 0 and report.unknown == 0
    alerts, tasks, _ = exactly_once(world)
    assert (alerts, tasks) == (reds, reds)
    status = {a.key: a.status for a in pipeline.store.actions()}
    assert all(status[a.key] == "sent" for a in stuck)


@pytest.mark.parametrize("kind", ["slack", "task"])
def test_killed_after_the_vendor_accepted_is_reconciled_not_resent(world: World, kind: str) -> None:
    pipeline = scored(world, seed=72)
    reds = len(pipeline.store.actions(kind="slack"))
    with pytest.raises(WorkerKilled):
        pipeline.deliver(hooks=DeliveryHooks(after_accept=kill_at(kind, 1)))
    stuck = pipeline.store.actions(status="sending")
    # the vendor accepted the whole request (one message; every task of the batch), and the
    # worker died before recording any of it
    assert {a.kind for a in stuck} == {kind} and len(stuck) == (1 if kind == "slack" else reds)
    before = exactly_once(world)
    restart_later(world.store)
    report = world.pipeline(config_with(RED)).deliver()
    assert report.reconciled == len(stuck)  # each found by its key, recorded, not sent again
    alerts, tasks, _ = exactly_once(world)
    assert (alerts, tasks) == (reds, reds)
    after = {a.key: a for a in pipeline.store.actions()}
    assert all(after[a.key].status == "sent" for a in stuck)
    if kind == "slack":
        (one,) = stuck
        assert world.slack.requests("POST", r"conversations\.history")
        (message,) = [
            m for m in world.slack.messages if m["metadata"]["event_payload"]["key"] == one.key
        ]
        assert after[one.key].response_id == f"C0CSALERTS/{message['ts']}"
        assert before[0] == 1  # it had been posted before the kill
    else:
        for one in stuck:
            (task,) = [
                t for t in world.sf.records("Task") if t.get("Healthscore_Key__c") == one.key
            ]
            assert after[one.key].response_id == task["Id"]
        assert before[1] == len(stuck)  # all had been created before the kill


def test_an_email_accepted_before_the_kill_is_not_sent_again(world: World) -> None:
    pipeline = scored(world, seed=73)
    with pytest.raises(WorkerKilled):
        pipeline.deliver(hooks=DeliveryHooks(after_accept=kill_at("email_send", 1)))
    stuck = pipeline.store.actions(status="sending")
    # one template: every email went in the one mail send SendGrid accepted before the kill
    assert {a.kind for a in stuck} == {"email_send"} and len(stuck) > 1
    assert len(world.sendgrid.sent) == len(stuck)
    restart_later(world.store)
    report = world.pipeline(config_with(RED)).deliver()
    assert report.unknown == len(stuck)  # at most once: SendGrid cannot be asked about keys
    _, _, emails = exactly_once(world)
    status = {a.key: a for a in pipeline.store.actions()}
    for one in stuck:
        assert status[one.key].status == "unknown"
        assert "not re-sent" in (status[one.key].error or "")
    assert emails == len(stuck) + report.emails_sent
    again = world.pipeline(config_with(RED)).deliver()
    assert (again.emails_sent, again.unknown) == (0, 0)
    assert exactly_once(world)[2] == emails


def test_an_email_killed_before_its_claim_is_sent_once_after_restart(world: World) -> None:
    # three templates: three mail sends (a batch holds one template); up to three emails a
    # contact in the cap window, so each rule reaches the same people
    rules = [RED] + [
        {
            "name": f"red_{n}",
            "when": {"grade_is": "red"},
            "actions": [{"email": {"template": f"d-red-{n}", "roles": ["Admin", "Champion"]}}],
        }
        for n in ("two", "three")
    ]
    world.sf.seed(generate_org(30, seed=74, now=NOW))
    pipeline = world.pipeline(config_with(*rules, email={"max_per_contact": 3}))
    pipeline.sync_all()
    pipeline.score()
    batches: list[str] = []

    def die_in_the_second_batch(action: ActionLog, *_: Any) -> None:
        if action.kind == "email_send":
            template = action.payload["template"]
            if template not in batches:
                batches.append(template)
            if len(batches) == 2:  # the first batch was sent and recorded …
                raise WorkerKilled  # … the worker dies once the second one is claimed

    with pytest.raises(WorkerKilled):
        pipeline.deliver(hooks=DeliveryHooks(before_send=die_in_the_second_batch))
    claimed = [a for a in pipeline.store.actions(status="sending") if a.kind == "email_send"]
    pending = [a for a in pipeline.store.actions(status="pending") if a.kind == "email_send"]
    first = [a for a in pipeline.store.actions(status="sent") if a.kind == "email_send"]
    assert claimed and pending and first
    assert {a.payload["template"] for a in claimed} == {batches[1]}
    assert len(world.sendgrid.sent) == len(first)  # only the first batch went out
    restart_later(world.store)
    world.pipeline(config_with(*rules, email={"max_per_contact": 3})).deliver()
    sent = {m["custom_args"]["healthscore_key"] for m in world.sendgrid.sent}
    assert {a.key for a in pending} <= sent  # not claimed when the worker died: sent once
    assert not {a.key for a in claimed} & sent  # claimed when it died: unknown, never re-sent
    status = {a.key: a.status for a in pipeline.store.actions()}
    assert {status[a.key] for a in claimed} == {"unknown"}
    exactly_once(world)


@pytest.fixture
def hubspot_world(tmp_path: Path, slack_emu: SlackEmulator, hs_emu: HubSpotEmulator):
    settings = hubspot_record_settings(hs_emu, slack_emu, tmp_path / "hs.db")
    store = Store(settings.database_url)
    config = hubspot_record_config(fast_config(), hs_emu.portal_id)
    config = config.model_copy(
        update={
            "rules": config_with(
                {"name": "entered_red", "when": {"grade_is": "red"}, "actions": [TASK]}
            ).rules
        }
    )

    def build() -> Pipeline:
        return Pipeline(config, settings, store, hubspot=fast_hubspot_client(settings))

    yield hs_emu, build, store
    store.close()


def test_hubspot_tasks_are_associated_owned_and_reconciled_by_search(hubspot_world) -> None:
    hs_emu, build, store = hubspot_world
    hs_emu.seed(generate_org(40, seed=75, now=NOW))
    pipeline = build()
    assert ensure_task_key_property(pipeline.client("hubspot")) is True
    assert ensure_task_key_property(pipeline.client("hubspot")) is False  # already there
    pipeline.sync_all()
    report, _ = pipeline.score()
    reds = report.entered_red
    assert reds >= 2
    with pytest.raises(WorkerKilled):
        pipeline.deliver(hooks=DeliveryHooks(after_accept=kill_at("task", 2)))
    # one batch create held every task: all accepted, none recorded when the worker died
    assert len(store.actions(status="sending")) == reds
    restart_later(store)
    again = build().deliver()
    assert again.reconciled == reds and again.tasks_created == 0
    tasks = [
        {**t["properties"], "id": t["id"]}
        for t in hs_emu.records("tasks")
        if t["properties"].get("healthscore_key")
    ]
    assert len(tasks) == reds == len({t["healthscore_key"] for t in tasks})
    creates = hs_emu.requests("POST", r"/objects/tasks/batch/create")
    # one batch create (up to 100 tasks); the reconciled ones were found by search, not
    # re-written
    assert len(creates) == 1
    written = [i["properties"]["healthscore_key"] for r in creates for i in r.body["inputs"]]
    assert sorted(written) == sorted(t["healthscore_key"] for t in tasks)
    assert hs_emu.requests("POST", r"/objects/tasks/search")
    owners = {o["email"].lower(): o["id"] for o in hs_emu.owners}
    accounts = {a.id: a for a in store.accounts()}
    for task in tasks:
        account_id = task["healthscore_key"].split(":")[1]
        assert hs_emu.associations("tasks", task["id"], "companies") == [account_id]
        assert task["hubspot_owner_id"] == owners[accounts[account_id].owner_email.lower()]
        assert task["hs_task_subject"] == f"Health: {accounts[account_id].name} is red"
        assert task["hs_task_priority"] == "HIGH"


WORKER = """
import os, signal, sys
from actions import DeliveryHooks
from connectors.salesforce import SalesforceClient
from healthscore.pipeline.cycle import Pipeline
from connectors.registry import Settings
from store import Store
from tests.actions_helpers import EMAIL, TASK, config_with

settings = Settings()
rule = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": ["slack", TASK, EMAIL]}
pipeline = Pipeline(config_with(rule), settings, Store(settings.database_url),
                    salesforce=SalesforceClient(settings))

def die(action, response_id):
    if action.kind == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no except, nothing recorded

pipeline.deliver(hooks=DeliveryHooks(after_accept=die))
"""


@pytest.mark.parametrize("kind", ["slack", "task", "email_send"])
def test_a_worker_process_killed_by_sigkill_after_the_vendor_accepted(
    world: World, kind: str, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    pipeline = scored(world, seed=76)
    s = world.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "DATABASE_URL": s.database_url,
        "SALESFORCE_INSTANCE_URL": world.sf.base_url,
        "SALESFORCE_TOKEN_URL": world.sf.token_url,
        "SALESFORCE_CLIENT_ID": world.sf.client_id,
        "SALESFORCE_CLIENT_SECRET": world.sf.client_secret,
        "SALESFORCE_CA_BUNDLE": world.sf.ca_bundle_path,
        "SLACK_BOT_TOKEN": world.slack.bot_token,
        "SLACK_BASE_URL": world.slack.base_url,
        "SLACK_ALERT_CHANNEL": "C0CSALERTS",
        "SENDGRID_API_KEY": world.sendgrid.api_key,
        "SENDGRID_BASE_URL": world.sendgrid.base_url,
    }
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, kind],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    stuck = pipeline.store.actions(status="sending")
    reds = len(pipeline.store.actions(kind="slack"))
    emails = len([a for a in pipeline.store.actions() if a.kind == "email_send"])
    # killed after the vendor accepted a whole request: one message, or the whole batch
    assert {a.kind for a in stuck} == {kind}
    assert len(stuck) == {"slack": 1, "task": reds, "email_send": emails}[kind]
    restart_later(world.store)
    report = world.pipeline(config_with(RED)).deliver()
    alerts, tasks, _ = exactly_once(world)
    assert (alerts, tasks) == (reds, reds)
    final = {a.key: a.status for a in pipeline.store.actions()}
    if kind == "email_send":  # at most once: sent once, recorded as unknown
        assert report.unknown == len(stuck)
        keys = [m["custom_args"]["healthscore_key"] for m in world.sendgrid.sent]
        for one in stuck:
            assert final[one.key] == "unknown" and keys.count(one.key) == 1
    else:
        assert report.reconciled == len(stuck)
        assert all(final[one.key] == "sent" for one in stuck)
