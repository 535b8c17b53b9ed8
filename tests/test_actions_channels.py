"""Channel behaviour: a Slack 429 storm, escaping (alerts and digests), digests once per period,
unsubscribes and the frequency cap, SendGrid's rate limit, and a dry run that asks nobody."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from healthscore.cli import main as cli
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from sandbox.sendgrid import SendGridEmulator
from tests.actions_helpers import EMAIL, NOW, TASK, World, config_with, task_upserts, world

__all__ = ["world"]

POSTS = r"chat\.postMessage"


def red_ids(world: World, seed: int, n: int = 30) -> list[str]:
    world.sf.seed(generate_org(n, seed=seed, now=NOW))
    pipeline = world.pipeline(config_with())
    pipeline.sync_all()
    batch = pipeline.compute()
    return [a for a, g in zip(batch.account_ids, batch.grade.tolist(), strict=True) if g == "red"]


def test_a_slack_429_storm_delays_but_delivers_every_alert_once(world: World) -> None:
    world.sf.seed(generate_org(30, seed=81, now=NOW))
    world.slack.faults.add("rate_limit", method="POST", path=POSTS, share=0.5, times=6, seed=4)
    config = config_with()
    report = world.pipeline(config).run_cycle()
    reds = report.scoring.entered_red
    sent = report.delivery.sent
    for _ in range(3):  # an alert that met too many 429s in a row waits for the next run
        if sent == reds:
            break
        sent += world.pipeline(config).deliver().sent
    limited = [r for r in world.slack.requests("POST", POSTS) if r.status == 429]
    assert len(limited) == 6 and all(r.fault == "rate_limit" for r in limited)
    assert sent == reds == len(world.slack.messages)
    texts = Counter(m["text"] for m in world.slack.messages)
    assert max(texts.values()) == 1
    keys = [m["metadata"]["event_payload"]["key"] for m in world.slack.messages]
    assert len(set(keys)) == reds
    assert {a.status for a in world.store.actions()} == {"sent"}


def test_names_arrive_escaped_in_alerts_and_digests(world: World) -> None:
    reds = red_ids(world, seed=82)
    names = ["<!channel> Ping Corp", "Ping <@U123> Ltd", "Already &lt; Escaped Inc"]
    for account_id, name in zip(reds, names, strict=False):
        world.sf.update("Account", account_id, {"Name": name})
    digest = {
        "name": "low",
        "when": {"grade_is": "red"},
        "actions": [{"slack": {"digest": "daily", "channel": "C0CSALERTS"}}],
    }
    world.pipeline(config_with(digest)).run_cycle()
    everything = json.dumps(
        [{"text": m["text"], "blocks": m["blocks"]} for m in world.slack.messages],
        ensure_ascii=False,
    )
    assert "<!channel>" not in everything and "<@U123>" not in everything
    assert "&lt;!channel&gt; Ping Corp" in everything
    assert "Ping &lt;@U123&gt; Ltd" in everything
    assert "Already &amp;lt; Escaped Inc" in everything  # shown as typed, never decoded
    digests = [m for m in world.slack.messages if "matched rule low" in m["text"]]
    assert len(digests) == 1
    digest_text = json.dumps(digests[0]["blocks"], ensure_ascii=False)
    for escaped in (
        "&lt;!channel&gt; Ping Corp",
        "Ping &lt;@U123&gt; Ltd",
        "Already &amp;lt; Escaped Inc",
    ):
        assert escaped in digest_text


def test_a_digest_goes_out_once_per_period_and_late_matches_wait(world: World) -> None:
    reds = red_ids(world, seed=83)
    batch = world.pipeline(config_with()).compute()
    green = next(
        a for a, g in zip(batch.account_ids, batch.grade.tolist(), strict=True) if g == "green"
    )
    late = reds[-1]
    fields = list(config_with().sources.salesforce.metrics.values())
    kept = {f: world.sf.record("Account", late)[f] for f in fields}
    world.sf.update("Account", late, {f: world.sf.record("Account", green)[f] for f in fields})
    rule = {
        "name": "red_digest",
        "when": {"grade_is": "red"},
        "actions": [{"slack": {"digest": "daily"}}, TASK],
    }
    config = config_with(rule, enter_red=False)
    pipeline = world.pipeline(config)
    first = pipeline.run_cycle()
    (message,) = world.slack.messages
    assert first.delivery.sent == 1
    day = pipeline.clock().date().isoformat()
    n = first.scoring.alerts["red_digest"]
    assert message["text"].startswith(f"{n} accounts matched rule red_digest ({day})")
    assert first.delivery.tasks_created == n  # a digest does not hold back the other actions

    world.sf.update("Account", late, kept)  # enters red later the same day
    second = world.pipeline(config).run_cycle()
    assert second.scoring.alerts == {"red_digest": 1}
    assert second.delivery.sent == 0 and len(world.slack.messages) == 1  # waits

    tomorrow = world.pipeline(config, clock=lambda: NOW + timedelta(days=1))
    third = tomorrow.deliver()
    assert third.sent == 1 and len(world.slack.messages) == 2
    assert world.slack.messages[1]["text"].startswith("1 accounts matched rule red_digest")
    assert tomorrow.deliver().sent == 0
    digests = [a for a in world.store.actions(kind="slack") if ":digest:" in a.key]
    assert len(digests) == 2 and all(a.status == "sent" for a in digests)
    items = world.store.actions(kind="digest")
    assert len(items) == n + 1 and {a.status for a in items} == {"bundled"}
    assert len(task_upserts(world.sf)) == n + 1


def test_unsubscribed_suppressed_and_capped_contacts_are_skipped_and_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    reds = red_ids(world, seed=84)
    contacts = [
        c
        for c in world.sf.records("Contact")
        if c["AccountId"] in reds
        and c.get("Role__c") in ("Admin", "Champion")
        and not c["HasOptedOutOfEmail"]
    ]
    assert len(contacts) >= 4
    at_sendgrid, local, domain_of = contacts[0], contacts[1], contacts[2]
    world.sendgrid.unsubscribe(at_sendgrid["Email"])
    group = 4242
    world.sendgrid.unsubscribe(contacts[3]["Email"], group=group)
    domain = "@" + domain_of["Email"].split("@")[1]
    email = {"unsubscribe_group": group, "suppressed": [local["Email"].upper(), domain]}
    rule = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": [EMAIL]}
    pipeline = world.pipeline(config_with(rule, email=email))
    caplog.set_level("INFO", logger="actions.deliver")
    report = pipeline.run_cycle()
    skipped = {
        a.target: a.error for a in world.store.actions(status="skipped") if a.kind == "email_send"
    }
    assert skipped[at_sendgrid["Email"].lower()] == "unsubscribed at sendgrid"
    assert skipped[contacts[3]["Email"].lower()] == "unsubscribed at sendgrid"
    assert skipped[local["Email"].lower()] == "on the local suppression list"
    assert skipped[domain_of["Email"].lower()] == "on the local suppression list"
    opted_out = [
        c
        for c in world.sf.records("Contact")
        if c["AccountId"] in reds
        and c.get("Role__c") in ("Admin", "Champion")
        and c["HasOptedOutOfEmail"]
    ]
    for c in opted_out:
        assert skipped[c["Email"].lower()] == "opted out of email in the CRM"
    sent_to = {m["to"] for m in world.sendgrid.sent}
    assert not sent_to & set(skipped)
    assert report.delivery.emails_skipped == len(skipped)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"to contact {at_sendgrid['Id']} skipped: unsubscribed at sendgrid" in logged
    reads = world.sendgrid.requests("GET", r"/v3/suppression/unsubscribes")
    assert len(reads) == 1 and reads[0].query == {"limit": "500", "offset": "0"}
    assert world.sendgrid.requests("GET", rf"/v3/asm/groups/{group}/suppressions")

    # a second rule firing for the same people within the cap window: capped, not sent
    second = {
        "name": "red_again",
        "when": {"grade_is": "red"},
        "actions": [{"email": {"template": "d-other", "roles": ["Admin", "Champion"]}}],
    }
    again = world.pipeline(config_with(rule, second, email=email)).run_cycle()
    assert again.delivery.emails_sent == 0
    capped = [a for a in world.store.actions(status="skipped") if a.key.startswith("red_again:")]
    assert capped and all(
        (a.error or "").startswith("frequency cap: 1 email(s) within 7d")
        for a in capped
        if a.target in sent_to
    )
    assert len(world.sendgrid.sent) == len(sent_to)


def test_sendgrid_rate_limit_leaves_emails_pending_then_sends_each_once(world: World) -> None:
    red_ids(world, seed=85)
    world.sendgrid.faults.add("rate_limit", method="POST", path=r"/v3/mail/send", times=1)
    rule = {"name": "entered_red", "when": {"grade_is": "red"}, "actions": [EMAIL]}
    config = config_with(rule)
    first = world.pipeline(config).run_cycle()
    assert first.delivery.emails_sent == 0 and first.delivery.retry_later >= 1
    assert first.delivery.errors == ["SendGrid mail send: too many requests"]
    limited = world.sendgrid.requests("POST", r"/v3/mail/send")
    assert [r.status for r in limited] == [429]
    second = world.pipeline(config).deliver()
    waiting = [a for a in world.store.actions(kind="email_send") if a.status == "sent"]
    assert second.emails_sent == len(waiting) == len(world.sendgrid.sent) > 0
    assert max(Counter(m["to"] for m in world.sendgrid.sent).values()) == 1


@pytest.fixture
def cli_env(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
):
    with SendGridEmulator() as sendgrid:
        monkeypatch.setenv("SENDGRID_API_KEY", sendgrid.api_key)
        monkeypatch.setenv("SENDGRID_BASE_URL", sendgrid.base_url)
        path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
        data = yaml.safe_load(path.read_text())
        data["sources"]["salesforce"]["related"] = ["Contact"]
        data["rules"] = [
            {"name": "entered_red", "when": {"grade_is": "red"}, "actions": ["slack", TASK, EMAIL]}
        ]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        monkeypatch.setattr(cli, "console", Console(stderr=True, width=10_000))
        yield sendgrid


def test_dry_run_lists_what_would_fire_and_asks_no_emulator_then_the_log_shows_it(
    cli_env: SendGridEmulator,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    sf_emu.seed(generate_org(30, seed=86, now=NOW))
    runner = CliRunner()
    assert runner.invoke(cli.app, ["sync"]).exit_code == 0
    for emu in (sf_emu, slack_emu, cli_env):
        emu.clear_log()
    ahead = runner.invoke(cli.app, ["actions", "--dry-run"])  # before any scoring run
    assert ahead.exit_code == 0, ahead.output
    assert sf_emu.requests() == [] and slack_emu.requests() == [] and cli_env.requests() == []
    preview = json.loads(ahead.output.strip().splitlines()[-1])
    assert preview["would_deliver"] == 0
    assert preview["next_run_by_action"]["slack"] == preview["next_run_by_action"]["task"] > 0
    scored = runner.invoke(cli.app, ["score"])
    assert scored.exit_code == 0, scored.output
    reds = json.loads(scored.output.strip().splitlines()[-1])["entered_red"]
    assert reds >= 2
    for emu in (sf_emu, slack_emu, cli_env):
        emu.clear_log()

    dry = runner.invoke(cli.app, ["actions", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert sf_emu.requests() == [] and slack_emu.requests() == [] and cli_env.requests() == []
    summary = json.loads(dry.output.strip().splitlines()[-1])
    assert summary["dry_run"] is True
    assert summary["by_action"]["slack"] == reds and summary["by_action"]["task"] == reds
    assert summary["by_action"]["email"] >= reds
    assert preview["next_run_by_action"]["slack"] == reds
    assert summary["would_fire_next_run"] == 0  # the episodes are open: nothing new
    assert "grade is red" in dry.output and "SKIP: opted out of email in the CRM" in dry.output
    assert slack_emu.messages == [] and cli_env.sent == []

    sent = runner.invoke(cli.app, ["actions"])
    result = json.loads(sent.output.strip().splitlines()[-1])
    assert (result["slack_messages"], result["tasks_created"]) == (reds, reds)
    assert result["emails_sent"] == len(cli_env.sent) > 0
    log = runner.invoke(cli.app, ["actions", "--log"])
    assert log.exit_code == 0
    flat = re.sub(r"\s+", " ", log.output)
    for m in cli_env.sent:
        assert m["message_id"] in flat
    for t in sf_emu.records("Task"):
        if t.get("Healthscore_Key__c"):
            assert t["Id"] in flat
