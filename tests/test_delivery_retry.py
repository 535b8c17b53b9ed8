"""A delivery that failed keeps its error and its place: a refusal of our credentials or
settings leaves it ``pending`` and it goes out by itself once fixed (never burnt as
``failed``); one destination failing never holds the others; what a vendor refused in the item
itself stays ``failed`` until a person runs ``healthscore actions --retry-failed`` — which
never re-sends a delivered item or one whose outcome is unknown."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from rich.console import Console
from typer.testing import CliRunner

from connectors.salesforce import SalesforceClient
from healthscore.cli import main as cli
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from sandbox.sendgrid import SendGridEmulator
from store import Store
from tests.actions_helpers import EMAIL, NOW, TASK, World, config_with, task_upserts, world
from tests.conftest import FAST_RETRY

__all__ = ["world"]

RED = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": ["slack", TASK, EMAIL]}
POSTS = r"chat\.postMessage"


def with_settings(world: World, config: Any, **changes: Any) -> Pipeline:
    """A worker of the same deployment, some settings changed (a revoked token, say)."""
    settings = world.settings.model_copy(update=changes)
    client = SalesforceClient(settings, retry=FAST_RETRY)
    return Pipeline(config, settings, world.store, salesforce=client)


def alert_keys(world: World) -> Counter[str]:
    return Counter(m["metadata"]["event_payload"]["key"] for m in world.slack.messages)


def test_a_revoked_slack_token_keeps_alerts_pending_then_each_goes_out_once(
    world: World,
) -> None:
    world.sf.seed(generate_org(30, seed=301, now=NOW))
    revoked = with_settings(world, config_with(RED), slack_bot_token=SecretStr("xoxb-revoked"))

    first = revoked.run_cycle()

    reds = first.scoring.entered_red
    assert reds >= 2
    # Slack refused the token: no alert is lost or burnt — each waits with the error …
    assert (first.delivery.sent, first.delivery.failed) == (0, 0)
    alerts = world.store.actions(kind="slack")
    assert len(alerts) == reds and {a.status for a in alerts} == {"pending"}
    assert all("invalid_auth" in (a.error or "") for a in alerts)
    assert any("invalid_auth" in e for e in first.delivery.errors)
    assert len(world.slack.requests("POST", POSTS)) == 1  # the rest were not tried
    # … and the other destinations went on
    assert first.delivery.tasks_created == reds and first.delivery.emails_sent > 0
    emails = len(world.sendgrid.sent)

    fixed = world.pipeline(config_with(RED)).run_cycle()  # the next cycle, token fixed

    assert fixed.delivery.sent == reds == len(world.slack.messages)
    assert set(alert_keys(world)) == {a.key for a in alerts}
    assert max(alert_keys(world).values()) == 1
    assert {a.status for a in world.store.actions(kind="slack")} == {"sent"}
    assert all(a.error is None for a in world.store.actions(kind="slack"))
    # the retried delivery sent no second task or email
    assert (fixed.delivery.tasks_created, fixed.delivery.emails_sent) == (0, 0)
    assert len(task_upserts(world.sf)) == reds and len(world.sendgrid.sent) == emails

    again = world.pipeline(config_with(RED)).run_cycle()  # a retried task: nothing twice
    assert (again.delivery.sent, again.delivery.tasks_created, again.delivery.emails_sent) == (
        0,
        0,
        0,
    )
    assert len(world.slack.messages) == reds


def test_a_sender_sendgrid_refuses_holds_only_the_emails(world: World) -> None:
    world.sf.seed(generate_org(30, seed=302, now=NOW))
    world.sendgrid.verified_senders = {"success@verified.example"}
    unverified = config_with(RED, email={"from_email": "cs@unverified.example"})

    first = world.pipeline(unverified).run_cycle()

    reds = first.scoring.entered_red
    sends = world.store.actions(kind="email_send")
    assert sends and {a.status for a in sends} == {"pending"}  # our setting: not burnt
    assert all("verified Sender Identity" in (a.error or "") for a in sends)
    assert (first.delivery.sent, first.delivery.tasks_created) == (reds, reds)
    assert world.sendgrid.sent == [] and first.delivery.failed == 0

    verified = config_with(RED, email={"from_email": "success@verified.example"})
    fixed = world.pipeline(verified).run_cycle()

    assert fixed.delivery.emails_sent == len(sends) == len(world.sendgrid.sent)
    keys = Counter(m["custom_args"]["healthscore_key"] for m in world.sendgrid.sent)
    assert set(keys) == {a.key for a in sends} and max(keys.values()) == 1
    assert (fixed.delivery.sent, fixed.delivery.tasks_created) == (0, 0)


def test_a_revoked_sendgrid_key_waits_at_the_suppression_read_then_sends_once(
    world: World,
) -> None:
    world.sf.seed(generate_org(30, seed=303, now=NOW))
    revoked = with_settings(world, config_with(RED), sendgrid_api_key=SecretStr("SG.revoked"))

    first = revoked.run_cycle()

    reds = first.scoring.entered_red
    parents = world.store.actions(kind="email")
    assert parents and {a.status for a in parents} == {"pending"}
    assert all("SENDGRID_API_KEY was rejected" in (a.error or "") for a in parents)
    unsubscribes = world.sendgrid.requests("GET", r"/v3/suppression/unsubscribes")
    assert len(unsubscribes) == 1  # read once for the run, not once per intent
    assert (first.delivery.sent, first.delivery.tasks_created) == (reds, reds)

    fixed = world.pipeline(config_with(RED)).run_cycle()
    assert fixed.delivery.emails_sent == len(world.sendgrid.sent) > 0
    assert (
        max(Counter(m["custom_args"]["healthscore_key"] for m in world.sendgrid.sent).values()) == 1
    )


def test_tasks_waiting_on_a_missing_key_field_hold_back_only_the_tasks(world: World) -> None:
    world.sf.seed(generate_org(30, seed=306, now=NOW))
    world.sf.remove_field("Task", "Healthscore_Key__c")  # `setup-crm` was never run

    first = world.pipeline(config_with(RED)).run_cycle()

    reds = first.scoring.entered_red
    tasks = world.store.actions(kind="task")
    assert len(tasks) == reds and {a.status for a in tasks} == {"pending"}
    assert all("Healthscore_Key__c" in (a.error or "") for a in tasks)
    assert first.delivery.failed == 0 and first.delivery.tasks_created == 0
    assert len(world.sf.requests("PATCH", r"/composite/sobjects/Task/")) == 1  # then it stopped
    assert first.delivery.sent == reds and first.delivery.emails_sent > 0  # the others went


def test_an_alert_without_a_channel_waits_for_the_setting(world: World) -> None:
    world.sf.seed(generate_org(20, seed=304, now=NOW))
    config = config_with(RED)
    slack = config.alerts.slack.model_copy(update={"channel": None})
    config = config.model_copy(update={"alerts": config.alerts.model_copy(update={"slack": slack})})
    unset = with_settings(world, config, slack_alert_channel=None)

    first = unset.run_cycle()

    alerts = world.store.actions(kind="slack")
    assert alerts and {a.status for a in alerts} == {"pending"} and first.delivery.failed == 0
    assert all("no Slack channel configured" in (a.error or "") for a in alerts)
    assert world.slack.requests("POST", POSTS) == []

    later = world.pipeline(config).deliver()  # SLACK_ALERT_CHANNEL set
    assert later.sent == len(alerts) == len(world.slack.messages)


@pytest.fixture
def cli_env(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
):
    """The CLI's environment with every action on, alerts to a channel that does not exist."""
    with SendGridEmulator() as sendgrid:
        monkeypatch.setenv("SENDGRID_API_KEY", sendgrid.api_key)
        monkeypatch.setenv("SENDGRID_BASE_URL", sendgrid.base_url)
        monkeypatch.setenv("SLACK_ALERT_CHANNEL", "C0NOSUCHCH")
        path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
        data = yaml.safe_load(path.read_text())
        data["sources"]["salesforce"]["related"] = ["Contact"]
        data["rules"] = [RED]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        monkeypatch.setattr(cli, "console", Console(stderr=True, width=10_000))
        yield sendgrid


def last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def test_actions_retry_failed_lists_then_requeues_only_the_failed(
    cli_env: SendGridEmulator,
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    sf_emu.seed(generate_org(30, seed=305, now=NOW))
    runner = CliRunner()
    for step in (["sync"], ["score"]):
        assert runner.invoke(cli.app, step).exit_code == 0
    first = last_json(runner.invoke(cli.app, ["actions"]).output)
    reds = first["failed"]
    assert reds >= 2 and first["slack_messages"] == 0  # channel_not_found: the item's own
    assert first["tasks_created"] == reds and first["emails_sent"] > 0
    store = Store(sandbox_env["DATABASE_URL"])
    try:
        failed = {a.key for a in store.actions(status="failed")}
        assert len(failed) == reds and {a.kind for a in store.actions(status="failed")} == {"slack"}
        lost = store.actions(kind="email_send", status="sent")[0]  # its answer was lost, say
        store.finish_delivery(lost.key, "unknown", error="ReadTimeout: no answer")
        for emu in (sf_emu, slack_emu, cli_env):
            emu.clear_log()

        dry = runner.invoke(cli.app, ["actions", "--retry-failed", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        listed = last_json(dry.output)
        assert listed == {"dry_run": True, "would_requeue": reds, "by_kind": {"slack": reds}}
        assert "channel_not_found" in dry.output and "C0NOSUCHCH" in dry.output
        assert sf_emu.requests() == [] and slack_emu.requests() == [] and cli_env.requests() == []
        assert {a.key for a in store.actions(status="failed")} == failed  # nothing moved

        slack_emu.add_channel("cs-alerts-new", "C0NOSUCHCH")  # a person created the channel
        retried = runner.invoke(cli.app, ["actions", "--retry-failed"])
        assert retried.exit_code == 0, retried.output
        result = last_json(retried.output)
        assert (result["requeued"], result["slack_messages"]) == (reds, reds)
        assert (result["tasks_created"], result["emails_sent"], result["failed"]) == (0, 0, 0)
        posted = Counter(m["metadata"]["event_payload"]["key"] for m in slack_emu.messages)
        assert set(posted) == failed and max(posted.values()) == 1
        assert cli_env.requests("POST", r"/v3/mail/send") == []  # the unknown one: never again
        status = {a.key: a.status for a in store.actions()}
        assert status[lost.key] == "unknown" and all(status[k] == "sent" for k in failed)

        again = last_json(runner.invoke(cli.app, ["actions", "--retry-failed"]).output)
        assert (again["requeued"], again["slack_messages"]) == (0, 0)
        assert len(slack_emu.messages) == reds
    finally:
        store.close()


def test_batch_claims_outcomes_and_requeues_on_each_database(store: Store) -> None:
    """The store's side of it on SQLite and PostgreSQL: a batch claimed in one transaction
    (a second worker gets none of it), recorded in one, waiting errors noted, and only
    ``failed`` rows handed back."""
    keys = [f"r:00{n}:1:task" for n in range(5)]
    for key in keys:
        store.claim_action(key, rule="r", kind="task", account_id="001", target=None, payload={})
    assert store.begin_deliveries(keys[:3]) == set(keys[:3])
    assert store.begin_deliveries(keys[:4]) == {keys[3]}  # the first three are taken
    store.finish_deliveries(
        [
            (keys[0], "sent", "00T1", None),
            (keys[1], "failed", None, "FIELD_CUSTOM_VALIDATION_EXCEPTION: no"),
            (keys[2], "unknown", None, "ReadTimeout"),
            (keys[3], "pending", None, "invalid_auth"),
        ]
    )
    store.note_waiting([keys[3], keys[4], keys[0]], "SLACK_BOT_TOKEN is not set")
    rows = {a.key: a for a in store.actions()}
    assert (rows[keys[0]].status, rows[keys[0]].response_id, rows[keys[0]].error) == (
        "sent",
        "00T1",
        None,
    )  # a delivered row keeps no waiting error
    assert rows[keys[3]].error == rows[keys[4]].error == "SLACK_BOT_TOKEN is not set"
    assert [rows[k].attempts for k in keys] == [1, 1, 1, 1, 0]
    assert store.requeue_failed(keys) == 1  # the failed one only
    after = {a.key: a.status for a in store.actions()}
    assert [after[k] for k in keys] == ["sent", "pending", "unknown", "pending", "pending"]
