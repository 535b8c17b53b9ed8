"""Deliveries at volume go in the vendors' batches — 200 tasks a Salesforce Collections upsert,
100 a HubSpot batch, 1,000 emails a SendGrid mail send — through the product's own wiring
(``Pipeline.deliver`` with the real clients against the emulators), and exactly-once holds per
item: a refused item fails alone, a lost answer is looked up (tasks) or left unknown (email)
on its own, nothing is written twice."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from actions.deliver import STUCK_SENDING, requeue_failed
from connectors.hubspot.csm_tasks import ensure_task_key_property
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator, generate_org
from sandbox.demo.run_demo import hubspot_record_config
from sandbox.sendgrid import SendGridEmulator
from sandbox.wire import Request, Response
from store import Store
from store.models import ActionLog, utcnow
from tests.actions_helpers import (
    EMAIL,
    NOW,
    TASK,
    World,
    config_with,
    task_upsert_requests,
    task_upserts,
    world,
)
from tests.conftest import fast_config, fast_hubspot_client, hubspot_record_settings

__all__ = ["world"]

TASKS = {"name": "bulk", "when": {"grade_is": "red"}, "actions": [TASK]}
EMAILS = {"name": "bulk", "when": {"grade_is": "red"}, "actions": [EMAIL]}
OWNER_READS = "SELECT Id, OwnerId FROM Account WHERE Id IN"
HS_CREATES = r"/crm/v3/objects/tasks/batch/create$"
HS_LINKS = r"/crm/v4/associations/tasks/companies/batch/associate/default$"


# -- intents as the rules store them ---------------------------------------------------------
def add_tasks(
    store: Store, accounts: list[str], owners: dict[str, str] | None = None, **task: Any
) -> list[str]:
    """One task intent per account, as ``actions.rules`` stores them (key ``…:task``)."""
    keys = []
    for n, account in enumerate(accounts):
        key = f"bulk:{account}:1:task"
        owner = (owners or {}).get(account)
        payload = {
            "name": f"Account {n}",
            "score": 31.0,
            "grade": "red",
            "why": "grade is red",
            "reasons": ["logins fell"],
            "owner_email": owner,
            "keyed": True,
            "task": {**TASK["task"], "due_in": 172800.0, **task},
        }
        assert store.claim_action(
            key, rule="bulk", kind="task", account_id=account, target=owner, payload=payload
        )
        keys.append(key)
    return keys


def add_emails(store: Store, addresses: list[str], template: str = "d-bulk") -> list[str]:
    """One per-contact email intent per address (``…:email:contact``), ready to send."""
    keys = []
    for n, address in enumerate(addresses):
        key = f"{template}:001SB{n:013d}:1:email:003SB{n:013d}"
        payload = {
            "name": f"Account {n}",
            "why": "grade is red",
            "provider": "sendgrid",
            "template": template,
            "step": None,
            "subject": None,
            "data": {"first_name": f"Pat{n}", "account_name": f"Account {n}"},
            "contact": {
                "id": f"003SB{n:013d}",
                "email": address,
                "first_name": f"Pat{n}",
                "role": "Admin",
                "opted_out": False,
                "source": "salesforce",
            },
        }
        assert store.claim_action(
            key,
            rule="bulk",
            kind="email_send",
            account_id=f"001SB{n:013d}",
            target=address,
            payload=payload,
        )
        keys.append(key)
    return keys


def statuses(store: Store, keys: list[str]) -> dict[str, ActionLog]:
    wanted = set(keys)
    return {a.key: a for a in store.actions() if a.key in wanted}


def owner_reads(sf: SalesforceEmulator) -> list[Any]:
    return [r for r in sf.requests("GET", r"/query/?$") if OWNER_READS in r.query.get("q", "")]


def restart_later(store: Store) -> None:
    """The stuck-delivery timeout passes (a fresh unknown may still be in flight before)."""
    with store.session() as s:
        s.execute(
            update(ActionLog)
            .where(ActionLog.status.in_(("sending", "unknown")))
            .values(updated_at=utcnow() - STUCK_SENDING - STUCK_SENDING)
        )


# -- Salesforce: 200 a Collections upsert ----------------------------------------------------
def test_450_tasks_go_to_salesforce_in_3_collections_upserts(world: World) -> None:
    accounts = world.sf.seed(generate_org(450, seed=201, now=NOW))
    keys = add_tasks(world.store, accounts)
    pipeline = world.pipeline(config_with(TASKS, enter_red=False))
    world.sf.clear_log()

    report = pipeline.deliver()

    assert report.tasks_created == 450 and report.failed == report.unknown == 0
    upserts = task_upsert_requests(world.sf)
    assert [len(r.body["records"]) for r in upserts] == [200, 200, 50]  # ⌈450/200⌉ = 3
    assert all(r.body["allOrNone"] is False for r in upserts)
    assert len(owner_reads(world.sf)) == math.ceil(450 / 200)  # the owners, 200 ids a query
    assert len(world.sf.requests("PATCH")) == 3  # no per-task request any more
    tasks = {
        t["Healthscore_Key__c"]: t for t in world.sf.records("Task") if t.get("Healthscore_Key__c")
    }
    assert set(tasks) == set(keys) and Counter(task_upserts(world.sf)).most_common(1)[0][1] == 1
    log = statuses(world.store, keys)
    for key, task in tasks.items():
        account = world.sf.record("Account", task["WhatId"])
        assert task["OwnerId"] == account["OwnerId"] and task["Priority"] == "High"
        assert (log[key].status, log[key].response_id) == ("sent", task["Id"])

    again = world.pipeline(config_with(TASKS, enter_red=False)).deliver()
    assert again.tasks_created == 0 and len(task_upsert_requests(world.sf)) == 3


def test_a_task_salesforce_refuses_in_a_batch_fails_alone(world: World) -> None:
    accounts = world.sf.seed(generate_org(5, seed=202, now=NOW))
    keys = add_tasks(world.store, accounts)
    refused, locked = keys[2], keys[3]
    world.sf.fail_records(
        {
            refused: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Due date must be a business day"),
            locked: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
        }
    )
    pipeline = world.pipeline(config_with(TASKS, enter_red=False))

    report = pipeline.deliver()

    (upsert,) = task_upsert_requests(world.sf)  # one request for the five
    assert len(upsert.body["records"]) == 5
    log = statuses(world.store, keys)
    assert (report.tasks_created, report.failed, report.retry_later) == (3, 1, 1)
    assert log[refused].status == "failed"
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (log[refused].error or "")
    assert log[locked].status == "pending" and "UNABLE_TO_LOCK_ROW" in (log[locked].error or "")
    assert {log[k].status for k in keys if k not in (refused, locked)} == {"sent"}

    later = world.pipeline(config_with(TASKS, enter_red=False)).deliver()  # the next run
    assert (later.tasks_created, later.failed) == (1, 0)
    assert task_upserts(world.sf)[5:] == [locked]  # only the locked one went again
    assert statuses(world.store, keys)[refused].status == "failed"  # a refusal is not retried

    assert requeue_failed(world.store) == 1  # a person fixed the validation rule
    fixed = world.pipeline(config_with(TASKS, enter_red=False)).deliver()
    assert fixed.tasks_created == 1 and task_upserts(world.sf)[6:] == [refused]
    tasks = [t for t in world.sf.records("Task") if t.get("Healthscore_Key__c")]
    assert sorted(t["Healthscore_Key__c"] for t in tasks) == sorted(keys)


class DroppingSalesforce(SalesforceEmulator):
    """Salesforce that loses the connection on chosen task upserts: ``after`` — it applied
    the upsert, then the answer was lost; ``before`` — the request never got processed."""

    plan: list[str | None]  # per task upsert, in order: "after", "before" or None
    dropped: list[int]

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        if req.method == "PATCH" and req.path.endswith(
            "/composite/sobjects/Task/Healthscore_Key__c"
        ):
            when = self.plan.pop(0) if self.plan else None
            if when == "before":
                self.dropped.append(len(req.json()["records"]))
                raise ConnectionAbortedError("connection lost before Salesforce read it")
            answer = super().dispatch(req)
            if when == "after":
                self.dropped.append(len(req.json()["records"]))
                raise ConnectionAbortedError("connection lost before the answer")
            return answer
        return super().dispatch(req)


@pytest.fixture
def dropping_world(slack_emu: SlackEmulator, tmp_path: Path) -> Iterator[World]:
    from sandbox.mandrill import MandrillEmulator
    from tests.conftest import sandbox_settings

    with (
        DroppingSalesforce() as sf,
        SendGridEmulator() as sendgrid,
        MandrillEmulator() as mandrill,
    ):
        sf.plan, sf.dropped = [], []
        settings = sandbox_settings(
            sf,
            slack_emu,
            f"sqlite:///{tmp_path / 'hs.db'}",
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_base_url=sendgrid.base_url,
        )
        store = Store(settings.database_url)
        yield World(sf, slack_emu, sendgrid, mandrill, settings, store)
        store.close()


def test_a_batch_whose_answer_was_lost_is_looked_up_not_written_again(
    dropping_world: World,
) -> None:
    world = dropping_world
    sf = world.sf
    assert isinstance(sf, DroppingSalesforce)
    accounts = sf.seed(generate_org(450, seed=203, now=NOW))
    keys = add_tasks(world.store, accounts)
    sf.plan = [None, "after"]  # the second of three upserts: applied, its answer lost

    first = world.pipeline(config_with(TASKS, enter_red=False)).deliver()

    assert sf.dropped == [200]
    assert (first.tasks_created, first.unknown) == (250, 200)  # the others went on
    log = statuses(world.store, keys)
    unknown = [k for k in keys if log[k].status == "unknown"]
    assert len(unknown) == 200 and all("Connection" in (log[k].error or "") for k in unknown)
    assert len([t for t in sf.records("Task") if t.get("Healthscore_Key__c")]) == 450

    sf.clear_log()
    second = world.pipeline(config_with(TASKS, enter_red=False)).deliver()  # the next run
    assert (second.reconciled, second.tasks_created) == (200, 0)  # found by key, not re-sent
    assert task_upsert_requests(sf) == []
    lookups = [r for r in sf.requests("GET", r"/query/?$") if "FROM Task WHERE" in r.query["q"]]
    assert len(lookups) == 2  # 100 keys a look-up
    tasks = {
        t["Healthscore_Key__c"]: t["Id"] for t in sf.records("Task") if t.get("Healthscore_Key__c")
    }
    log = statuses(world.store, keys)
    assert len(tasks) == 450 and all(log[k].response_id == tasks[k] for k in keys)
    assert {log[k].status for k in keys} == {"sent"}


def test_a_batch_lost_before_salesforce_read_it_is_sent_once_later(dropping_world: World) -> None:
    world = dropping_world
    sf = world.sf
    assert isinstance(sf, DroppingSalesforce)
    accounts = sf.seed(generate_org(30, seed=204, now=NOW))
    keys = add_tasks(world.store, accounts)
    sf.plan = ["before"]

    first = world.pipeline(config_with(TASKS, enter_red=False)).deliver()
    assert first.unknown == 30 and not [
        t for t in sf.records("Task") if t.get("Healthscore_Key__c")
    ]
    soon = world.pipeline(config_with(TASKS, enter_red=False)).deliver()
    assert (soon.reconciled, soon.tasks_created) == (0, 0)  # it may still be in flight: wait
    assert task_upsert_requests(sf) == []

    restart_later(world.store)
    later = world.pipeline(config_with(TASKS, enter_red=False)).deliver()
    assert (later.reconciled, later.tasks_created) == (0, 30)  # proven absent: sent, once
    assert sorted(task_upserts(sf)) == sorted(keys)
    assert {a.status for a in statuses(world.store, keys).values()} == {"sent"}


# -- HubSpot: 100 a batch create -------------------------------------------------------------
@pytest.fixture
def hubspot_tasks(
    tmp_path: Path, slack_emu: SlackEmulator, hs_emu: HubSpotEmulator
) -> Iterator[tuple[HubSpotEmulator, Pipeline, Store]]:
    settings = hubspot_record_settings(hs_emu, slack_emu, tmp_path / "hs.db")
    store = Store(settings.database_url)
    config = hubspot_record_config(fast_config(), hs_emu.portal_id)
    config = config.model_copy(update={"rules": config_with(TASKS).rules})
    pipeline = Pipeline(config, settings, store, hubspot=fast_hubspot_client(settings))
    assert ensure_task_key_property(pipeline.client("hubspot"))
    yield hs_emu, pipeline, store
    store.close()


def hubspot_owners(hs: HubSpotEmulator, org: Any, companies: list[str]) -> dict[str, str]:
    return {c: a["OwnerEmail"] for c, a in zip(companies, org.accounts, strict=True)}


def test_450_tasks_go_to_hubspot_in_5_batch_creates(hubspot_tasks) -> None:
    hs, pipeline, store = hubspot_tasks
    org = generate_org(450, seed=205, now=NOW)
    companies = hs.seed(org)
    keys = add_tasks(store, companies, hubspot_owners(hs, org, companies))
    pipeline.action_channels()  # the owners are read once, when the back end is built
    hs.clear_log()

    report = pipeline.deliver()

    assert report.tasks_created == 450 and report.failed == report.unknown == 0
    creates = hs.requests("POST", HS_CREATES)
    assert [len(r.body["inputs"]) for r in creates] == [100, 100, 100, 100, 50]  # ⌈450/100⌉
    assert len(hs.requests()) == 5  # the associations ride inline: no other request
    owners = {o["email"].lower(): o["id"] for o in hs.owners}
    by_company = hubspot_owners(hs, org, companies)
    log = statuses(store, keys)
    tasks = [t for t in hs.records("tasks") if t["properties"].get("healthscore_key")]
    assert sorted(t["properties"]["healthscore_key"] for t in tasks) == sorted(keys)
    for task in tasks:
        key = task["properties"]["healthscore_key"]
        company = key.split(":")[1]
        assert hs.associations("tasks", task["id"], "companies") == [company]
        assert task["properties"]["hubspot_owner_id"] == owners[by_company[company].lower()]
        assert (log[key].status, log[key].response_id) == ("sent", task["id"])


def test_a_task_hubspot_refuses_in_a_batch_fails_alone(hubspot_tasks) -> None:
    hs, pipeline, store = hubspot_tasks
    org = generate_org(6, seed=206, now=NOW)
    companies = hs.seed(org)
    keys = add_tasks(store, companies[:5])
    low = add_tasks(store, companies[5:], priority="Low")[0]  # an option the portal removed
    options = [
        {"label": v.title(), "value": v, "displayOrder": n}
        for n, v in enumerate(("NONE", "MEDIUM", "HIGH"))
    ]
    pipeline.client("hubspot").sdk.crm.properties.core_api.update(
        object_type="tasks", property_name="hs_task_priority", property_update={"options": options}
    )
    hs.archive("companies", companies[4])  # the company went away: its task cannot be linked
    hs.clear_log()

    report = pipeline.deliver()

    log = statuses(store, [*keys, low])
    assert log[low].status == "failed" and "LOW" in (log[low].error or "")
    gone = keys[4]
    assert log[gone].status == "failed" and "associations are invalid" in (log[gone].error or "")
    assert {log[k].status for k in keys[:4]} == {"sent"}
    assert (report.tasks_created, report.failed) == (4, 2)
    # HubSpot refused the batch whole (400): it was halved until the bad input stood alone,
    # and no task was written twice
    written = Counter(
        i["properties"]["healthscore_key"]
        for r in hs.requests("POST", HS_CREATES)
        if r.status == 201
        for i in r.body["inputs"]
    )
    assert set(written) == set(keys[:4]) and max(written.values()) == 1
    assert hs.requests("POST", HS_CREATES)[0].status == 400


class DroppingHubSpot(HubSpotEmulator):
    """HubSpot that applies the next batch create of tasks, then loses the connection."""

    drops = 0

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        answer = super().dispatch(req)
        if self.drops and req.path.endswith("/objects/tasks/batch/create"):
            self.drops -= 1
            raise ConnectionAbortedError("connection lost before the answer")
        return answer


def test_a_hubspot_batch_whose_answer_was_lost_is_found_linked_and_not_rewritten(
    tmp_path: Path, slack_emu: SlackEmulator
) -> None:
    with DroppingHubSpot(search_per_second=1000, requests_per_10s=10_000) as hs:
        settings = hubspot_record_settings(hs, slack_emu, tmp_path / "hs.db")
        store = Store(settings.database_url)
        config = hubspot_record_config(fast_config(), hs.portal_id)
        config = config.model_copy(update={"rules": config_with(TASKS).rules})

        def build() -> Pipeline:
            return Pipeline(config, settings, store, hubspot=fast_hubspot_client(settings))

        assert ensure_task_key_property(build().client("hubspot"))
        companies = hs.seed(generate_org(150, seed=207, now=NOW))
        keys = add_tasks(store, companies)
        hs.drops = 1

        first = build().deliver()
        assert (first.tasks_created, first.unknown) == (50, 100)  # the second batch went on
        assert not hs.requests("POST", HS_LINKS)  # each task was created with its association

        restart_later(store)
        second = build().deliver()
        assert (second.reconciled, second.tasks_created) == (100, 0)
        written = [
            i["properties"]["healthscore_key"]
            for r in hs.requests("POST", HS_CREATES)
            for i in r.body["inputs"]
        ]
        assert len(written) == 50  # the logged one; the lost one (100) was never re-sent
        tasks = [t for t in hs.records("tasks") if t["properties"].get("healthscore_key")]
        assert sorted(t["properties"]["healthscore_key"] for t in tasks) == sorted(keys)
        for task in tasks:  # linked, the lost batch's tasks by the reconciler
            company = task["properties"]["healthscore_key"].split(":")[1]
            assert hs.associations("tasks", task["id"], "companies") == [company]
        assert {a.status for a in statuses(store, keys).values()} == {"sent"}
        store.close()


# -- SendGrid: 1,000 emails a mail send ------------------------------------------------------
def test_1500_emails_go_to_sendgrid_in_2_mail_sends(world: World) -> None:
    keys = add_emails(world.store, [f"pat{n}@customer{n % 40}.example" for n in range(1500)])
    pipeline = world.pipeline(config_with(EMAILS, enter_red=False))

    report = pipeline.deliver()

    assert report.emails_sent == 1500 and report.failed == report.unknown == 0
    sends = world.sendgrid.requests("POST", r"/v3/mail/send$")
    assert [len(r.body["personalizations"]) for r in sends] == [1000, 500]  # ⌈1500/1000⌉ = 2
    assert {r.body["template_id"] for r in sends} == {"d-bulk"}
    sent = world.sendgrid.sent
    by_key = Counter(m["custom_args"]["healthscore_key"] for m in sent)
    assert set(by_key) == set(keys) and max(by_key.values()) == 1  # each with its own key
    log = statuses(world.store, keys)
    for m in sent:
        entry = log[m["custom_args"]["healthscore_key"]]
        assert (entry.status, entry.target, entry.response_id) == ("sent", m["to"], m["message_id"])


def test_one_template_a_mail_send(world: World) -> None:
    keys = add_emails(world.store, [f"a{n}@x.example" for n in range(3)], template="d-one")
    keys += add_emails(world.store, [f"b{n}@x.example" for n in range(3, 5)], template="d-two")
    report = world.pipeline(config_with(EMAILS, enter_red=False)).deliver()
    sends = world.sendgrid.requests("POST", r"/v3/mail/send$")
    assert sorted((r.body["template_id"], len(r.body["personalizations"])) for r in sends) == [
        ("d-one", 3),
        ("d-two", 2),
    ]
    assert report.emails_sent == 5 and len(keys) == 5


def test_an_address_sendgrid_refuses_in_a_batch_fails_alone(world: World) -> None:
    addresses = [f"pat{n}@customer.example" for n in range(6)]
    addresses[3] = "pat3-at-customer.example"  # no @: SendGrid names personalizations.3
    keys = add_emails(world.store, addresses)

    report = world.pipeline(config_with(EMAILS, enter_red=False)).deliver()

    sends = world.sendgrid.requests("POST", r"/v3/mail/send$")
    assert [(r.status, len(r.body["personalizations"])) for r in sends] == [(400, 6), (202, 5)]
    log = statuses(world.store, keys)
    assert log[keys[3]].status == "failed"
    assert "Does not contain a valid address" in (log[keys[3]].error or "")
    assert {log[k].status for k in keys if k != keys[3]} == {"sent"}
    assert (report.emails_sent, report.failed) == (5, 1)
    assert sorted(m["to"] for m in world.sendgrid.sent) == sorted(a for a in addresses if "@" in a)


class DroppingSendGrid(SendGridEmulator):
    """SendGrid that accepts the next mail send, then loses the connection."""

    drops = 0

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        answer = super().dispatch(req)
        if self.drops and req.path == "/v3/mail/send":
            self.drops -= 1
            raise ConnectionAbortedError("connection lost before the answer")
        return answer


def test_a_mail_send_whose_answer_was_lost_is_never_sent_again(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, tmp_path: Path
) -> None:
    from sandbox.mandrill import MandrillEmulator
    from tests.conftest import sandbox_settings

    with DroppingSendGrid() as sendgrid, MandrillEmulator() as mandrill:
        settings = sandbox_settings(
            sf_emu,
            slack_emu,
            f"sqlite:///{tmp_path / 'hs.db'}",
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_base_url=sendgrid.base_url,
        )
        store = Store(settings.database_url)
        world = World(sf_emu, slack_emu, sendgrid, mandrill, settings, store)
        first_batch = add_emails(store, [f"a{n}@x.example" for n in range(4)], template="d-one")
        second_batch = add_emails(store, [f"b{n}@x.example" for n in range(4, 7)], template="d-two")
        sendgrid.drops = 1

        report = world.pipeline(config_with(EMAILS, enter_red=False)).deliver()
        assert (report.unknown, report.emails_sent) == (4, 3)  # the next batch went on
        log = statuses(store, first_batch + second_batch)
        assert {log[k].status for k in first_batch} == {"unknown"}
        assert {log[k].status for k in second_batch} == {"sent"}

        restart_later(store)
        again = world.pipeline(config_with(EMAILS, enter_red=False)).deliver()
        assert (again.emails_sent, again.unknown, again.reconciled) == (0, 0, 0)
        keys = Counter(m["custom_args"]["healthscore_key"] for m in sendgrid.sent)
        assert set(keys) == set(first_batch + second_batch) and max(keys.values()) == 1
        assert {a.status for a in statuses(store, first_batch).values()} == {"unknown"}
        store.close()
