"""Slack, Salesforce tasks and SendGrid/Mailchimp emails from one rule, through the real
clients against the emulators: delivered once, to the right people, and logged."""

from __future__ import annotations

from collections import Counter

from sandbox import generate_org
from tests.actions_helpers import EMAIL, NOW, TASK, World, config_with, task_upserts, world

__all__ = ["world"]

RED = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": ["slack", TASK, EMAIL]}


def test_a_rule_with_three_actions_alerts_creates_tasks_and_emails_once(world: World) -> None:
    org = generate_org(30, seed=61, now=NOW)
    world.sf.seed(org)
    pipeline = world.pipeline(config_with(RED))
    first = pipeline.run_cycle()
    reds = first.scoring.entered_red
    assert reds >= 2
    assert first.delivery.sent == reds == len(world.slack.messages)
    assert first.delivery.tasks_created == reds

    # a Task per red account: on the account, owned by its owner, from the template
    tasks = {t["WhatId"]: t for t in world.sf.records("Task") if t.get("Healthscore_Key__c")}
    assert len(tasks) == reds == len(task_upserts(world.sf))
    accounts = {a.id: a for a in pipeline.store.accounts()}
    for account_id, task in tasks.items():
        account = world.sf.record("Account", account_id)
        assert task["OwnerId"] == account["OwnerId"]
        assert task["Subject"] == f"Health: {accounts[account_id].name} is red"
        assert task["Priority"] == "High" and task["Status"] == "Not Started"
        assert task["Healthscore_Key__c"] == f"entered_red:{account_id}:1:task"
        assert str(task["ActivityDate"]) > NOW.date().isoformat()

    # an email to each Admin/Champion contact of the red accounts, skipping opted-out ones
    contacts = [
        c
        for c in world.sf.records("Contact")
        if c["AccountId"] in tasks and c.get("Role__c") in ("Admin", "Champion")
    ]
    wanted = {c["Email"].lower() for c in contacts if not c["HasOptedOutOfEmail"]}
    sent = world.sendgrid.sent
    assert {m["to"] for m in sent} == wanted and len(sent) == len(wanted)
    assert first.delivery.emails_sent == len(wanted)
    assert first.delivery.emails_skipped == len(contacts) - len(wanted)
    by_email = {c["Email"].lower(): c for c in contacts}
    for m in sent:
        contact = by_email[m["to"]]
        assert m["template_id"] == "d-red-checkin"
        assert (
            m["custom_args"]["healthscore_key"]
            == f"entered_red:{contact['AccountId']}:1:email:{contact['Id']}"
        )
        assert m["dynamic_template_data"]["first_name"] == contact["FirstName"]
        assert m["dynamic_template_data"]["account_name"] == accounts[contact["AccountId"]].name

    # every delivery in the action log with its key, target, response id and time
    log = {a.key: a for a in pipeline.store.actions() if a.status == "sent"}
    for m in sent:
        entry = log[m["custom_args"]["healthscore_key"]]
        assert (entry.kind, entry.target, entry.response_id) == (
            "email_send",
            m["to"],
            m["message_id"],
        )
    for task_id, task in tasks.items():
        entry = log[task["Healthscore_Key__c"]]
        assert entry.response_id == task["Id"] and entry.target == accounts[task_id].owner_email

    again = world.pipeline(config_with(RED)).run_cycle()  # unchanged data
    d = again.delivery
    assert (d.sent, d.tasks_created, d.emails_sent, d.emails_skipped) == (0, 0, 0, 0)
    assert len(task_upserts(world.sf)) == reds and len(world.sendgrid.sent) == len(wanted)


def test_mailchimp_transactional_rejections_are_skipped_and_logged(world: World) -> None:
    org = generate_org(30, seed=62, now=NOW)
    world.sf.seed(org)
    email = {
        "email": {
            "template": "red-checkin",
            "provider": "mailchimp",
            "roles": ["Admin"],
            "subject": "About {name}",
        }
    }
    rule = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": [email]}
    pipeline = world.pipeline(config_with(rule))
    pipeline.sync_all()
    pipeline.score()
    admins = [
        c
        for c in world.sf.records("Contact")
        if c.get("Role__c") == "Admin"
        and not c["HasOptedOutOfEmail"]
        and c["AccountId"] in {a.account_id for a in pipeline.store.actions()}
    ]
    assert len(admins) >= 2
    world.mandrill.reject(admins[0]["Email"], "unsub")
    report = pipeline.deliver()
    assert report.emails_sent == len(admins) - 1 and report.emails_skipped >= 1
    sent = [m for m in world.mandrill.sent if m["status"] == "sent"]
    assert {m["to"] for m in sent} == {a["Email"].lower() for a in admins[1:]}
    assert all(m["metadata"]["healthscore_key"].startswith("entered_red:") for m in sent)
    (skipped,) = [
        a
        for a in pipeline.store.actions(status="skipped")
        if a.target == admins[0]["Email"].lower()
    ]
    assert "unsub" in (skipped.error or "")
    body = world.mandrill.requests("POST", "send-template")[0].body
    assert body["key"] == "[redacted]" and body["template_content"] == []
    assert Counter(m["to"] for m in world.mandrill.sent).most_common(1)[0][1] == 1


def test_recipients_come_from_both_crms_by_role_with_any_opt_out_winning(world: World) -> None:
    from datetime import UTC, datetime

    from actions.email import account_contacts, in_roles

    at = datetime(2026, 11, 1, tzinfo=UTC)
    world.store.upsert_source_records(
        "salesforce",
        "Contact",
        [
            (
                "003A",
                "001X",
                {
                    "Id": "003A",
                    "Email": "Ana@Acme.example",
                    "FirstName": "Ana",
                    "Role__c": "Admin",
                    "HasOptedOutOfEmail": False,
                },
                False,
                at,
            ),
            (
                "003B",
                "001X",
                {
                    "Id": "003B",
                    "Email": "bo@acme.example",
                    "FirstName": "Bo",
                    "Title": "VP Customer Champion",
                    "HasOptedOutOfEmail": False,
                },
                False,
                at,
            ),
            ("003C", "001X", {"Id": "003C", "Email": None, "Role__c": "Admin"}, False, at),
        ],
    )
    world.store.upsert_source_records(
        "hubspot",
        "contacts",
        [
            (
                "901",
                "001X",
                {
                    "hs_object_id": "901",
                    "email": "ana@acme.example",
                    "firstname": "Ana",
                    "jobtitle": "Admin",
                    "hs_email_optout": "true",
                },
                False,
                at,
            ),
            (
                "902",
                "001X",
                {
                    "hs_object_id": "902",
                    "email": "cy@acme.example",
                    "firstname": "Cy",
                    "jobtitle": "IT Admin",
                    "hs_email_optout": "false",
                },
                False,
                at,
            ),
        ],
    )
    (contacts,) = account_contacts(world.store, ["001X"]).values()
    by = {c.email: c for c in contacts}
    assert set(by) == {"ana@acme.example", "bo@acme.example", "cy@acme.example"}
    assert by["ana@acme.example"].id == "003A" and by["ana@acme.example"].opted_out
    assert by["cy@acme.example"].source == "hubspot" and not by["cy@acme.example"].opted_out
    assert [c.email for c in contacts if in_roles(c, ["Admin"])] == [
        "ana@acme.example",
        "cy@acme.example",
    ]
    assert [c.email for c in contacts if in_roles(c, ["champion"])] == ["bo@acme.example"]
