"""One client per vendor: SendGrid's engagement sync and its tech-touch sender share one
``SendGridClient`` (key, retry policy, error mapping, suppression lists), so a cycle reads each
suppression list once; every wait goes through the shared retry policy."""

from __future__ import annotations

import time
from typing import Any

import pytest

from actions.slack import SlackAlerter
from connectors.outbound import Contact, Unreachable
from connectors.sendgrid import SendGridClient, SendGridSender, pull_suppressions
from healthscore.core.errors import AuthError, RateLimited, RetriableError
from healthscore.core.retry import RetryPolicy
from sandbox import SlackEmulator, generate_org
from sandbox.sendgrid import SendGridEmulator
from tests.actions_helpers import EMAIL, NOW, World, config_with, world
from tests.email_helpers import Sleeps, patient, signals

__all__ = ["world"]

GROUP = 4242
ANA = Contact("003A", "ana@acme.example", "Ana", "Admin", False, "salesforce")


def reads(emu: SendGridEmulator, path: str) -> list[Any]:
    return emu.requests("GET", path + "$")


def red_contacts(world: World, seed: int) -> list[dict[str, Any]]:
    """Admins and champions of the accounts the scorecard grades red (nothing recorded)."""
    world.sf.seed(generate_org(30, seed=seed, now=NOW))
    pipeline = world.pipeline(config_with())
    pipeline.sync_all()
    batch = pipeline.compute()
    reds = {a for a, g in zip(batch.account_ids, batch.grade.tolist(), strict=True) if g == "red"}
    return [
        c
        for c in world.sf.records("Contact")
        if c["AccountId"] in reds
        and c.get("Role__c") in ("Admin", "Champion")
        and not c["HasOptedOutOfEmail"]
    ]


def test_a_cycle_reads_each_suppression_list_once_for_signals_and_emails(world: World) -> None:
    contacts = red_contacts(world, seed=84)
    assert len(contacts) >= 3
    unsubscribed, grouped = contacts[0], contacts[1]
    world.sendgrid.unsubscribe(unsubscribed["Email"])
    world.sendgrid.unsubscribe(grouped["Email"], group=GROUP)
    world.sendgrid.clear_log()
    config = config_with(
        {"name": "entered_red", "when": {"grade_is": "red"}, "actions": [EMAIL]},
        email={"unsubscribe_group": GROUP},
    )
    sendgrid = config.sources.sendgrid.model_copy(update={"enabled": True})
    config = config.model_copy(
        update={"sources": config.sources.model_copy(update={"sendgrid": sendgrid})}
    )
    pipeline = world.pipeline(config)

    report = pipeline.run_cycle()

    # the pull (email signals) and the sender (email actions) hold the same client …
    sender = pipeline.action_channels().senders["sendgrid"]
    assert isinstance(sender, SendGridSender)
    assert sender.client is pipeline.client("sendgrid")
    # … so each list was read once in the cycle, by the sync, and reused by the delivery
    assert [r.query for r in reads(world.sendgrid, "/v3/suppression/unsubscribes")] == [
        {"limit": "500", "offset": "0"}
    ]
    assert len(reads(world.sendgrid, "/v3/suppression/bounces")) == 1
    assert len(reads(world.sendgrid, rf"/v3/asm/groups/{GROUP}/suppressions")) == 1
    # the one read fed both: the unsubscribe is a signal of its account …
    got = signals(world.store, "sendgrid")
    assert got[unsubscribed["AccountId"]]["sendgrid_unsubscribes_90d"] == 1.0
    # … and a reason the email action skipped its contact
    skipped = {
        a.target: a.error for a in world.store.actions(status="skipped") if a.kind == "email_send"
    }
    assert skipped[unsubscribed["Email"].lower()] == "unsubscribed at sendgrid"
    assert skipped[grouped["Email"].lower()] == "unsubscribed at sendgrid"
    assert report.delivery.emails_sent == len(world.sendgrid.sent) > 0
    assert not {m["to"] for m in world.sendgrid.sent} & set(skipped)


def test_the_client_keeps_the_lists_for_its_ttl_and_a_sync_reads_them_afresh() -> None:
    with SendGridEmulator() as sg:
        sg.unsubscribe("gone@x.example")
        client = SendGridClient(sg.api_key, sg.base_url, retry=patient())
        sender = SendGridSender(client, from_email="cs@v.example", from_name="CS")
        assert sender.suppressed() == {"gone@x.example"}
        assert sender.suppressed() == {"gone@x.example"}  # a second delivery run, same TTL
        assert len(reads(sg, "/v3/suppression/unsubscribes")) == 1
        sg.unsubscribe("later@x.example")
        start, end = NOW.replace(year=2000), NOW.replace(year=2100)
        pages = pull_suppressions(client, "unsubscribes", start, end)
        pulled = [e["email"] for page in pages for e in page]
        assert sorted(pulled) == ["gone@x.example", "later@x.example"]  # the sync: fresh
        assert sender.suppressed() == {"gone@x.example", "later@x.example"}  # reused
        assert len(reads(sg, "/v3/suppression/unsubscribes")) == 2
        stale = SendGridSender(
            SendGridClient(sg.api_key, sg.base_url, suppression_ttl=0),
            from_email="cs@v.example",
            from_name="CS",
        )
        stale.suppressed()
        stale.suppressed()
        assert len(reads(sg, "/v3/suppression/unsubscribes")) == 4  # no TTL: read each time


def test_the_pull_and_the_sender_map_a_403_the_same_way() -> None:
    """The twins disagreed: a 403 was an AuthError for the pull, a ConfigError for the send."""
    with SendGridEmulator(activity_enabled=False, verified_senders=("cs@v.example",)) as sg:
        client = SendGridClient(sg.api_key, sg.base_url, retry=patient())
        with pytest.raises(AuthError, match="SENDGRID_API_KEY lacks the access") as pulled:
            client.get("/v3/messages", {"limit": 1})
        impostor = SendGridSender(client, from_email="ceo@v.example", from_name="CEO")
        with pytest.raises(AuthError, match="SENDGRID_API_KEY lacks the access") as sent:
            impostor.send(to=ANA, template="d-1", data={}, key="k", account_id="a", subject=None)
        assert "verified Sender Identity" in str(sent.value)
        assert pulled.value.failure_type == sent.value.failure_type == "config"


def test_sendgrid_waits_go_through_the_retry_policy() -> None:
    with SendGridEmulator() as sg:
        sleeps = Sleeps()
        client = SendGridClient(sg.api_key, sg.base_url, retry=patient(sleeps))
        sender = SendGridSender(client, from_email="cs@v.example", from_name="CS")
        # Remaining: 0 → the next request to that endpoint waits for the reset, via the policy
        sg.configure_limits(1, window=1.5)
        client.get("/v3/suppression/bounces", {"limit": 1})
        client.get("/v3/suppression/bounces", {"limit": 1})
        assert len(sleeps.waits) == 1 and 0 < sleeps.waits[0] <= 2.5
        assert [r.status for r in reads(sg, "/v3/suppression/bounces")] == [200, 200]
        # a reset beyond the policy's cap goes up instead of pinning the worker
        sg.configure_limits(1, window=120.0)
        client.get("/v3/stats", {"start_date": "2026-01-01"})
        before = time.monotonic()
        with pytest.raises(RateLimited) as err:
            client.get("/v3/stats", {"start_date": "2026-01-01"})
        assert err.value.retry_after is not None and err.value.retry_after > 60
        assert time.monotonic() - before < 1 and len(reads(sg, "/v3/stats")) == 1
        # mail send: a short 429 is waited out through the policy, then sent once …
        sg.configure_limits(600, window=1.5)
        sg.faults.add("rate_limit", method="POST", path=r"/v3/mail/send", times=1)
        assert sender.send(to=ANA, template="d-1", data={}, key="k1", account_id="a", subject=None)
        assert [r.status for r in sg.requests("POST", "/v3/mail/send")] == [429, 202]
        assert len(sleeps.waits) == 2 and 0 < sleeps.waits[1] <= 2.5
        # … a 5xx is not: SendGrid may have taken it (the delivery loop keeps it pending)
        sg.faults.add("server_error", method="POST", path=r"/v3/mail/send", times=1)
        with pytest.raises(RetriableError):
            sender.send(to=ANA, template="d-1", data={}, key="k2", account_id="a", subject=None)
        assert [r.status for r in sg.requests("POST", "/v3/mail/send")][2:] == [500]
        assert len(sg.sent) == 1


def test_a_send_that_never_left_the_host_is_retried_through_the_policy() -> None:
    with SendGridEmulator() as gone:
        address, key = gone.base_url, gone.api_key  # nothing listens here once it is stopped
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=3, base=0.01, jitter=0.0, sleep=sleeps)
    sender = SendGridSender(
        SendGridClient(key, address, retry=policy), from_email="cs@v.example", from_name="CS"
    )
    with pytest.raises(Unreachable, match="SendGrid mail send: unreachable"):
        sender.send(to=ANA, template="d-1", data={}, key="k", account_id="a", subject=None)
    assert sleeps.waits == [0.01, 0.02]  # three attempts, the policy's backoff between them


def test_slack_waits_go_through_the_retry_policy() -> None:
    with SlackEmulator(messages_per_second=1.0, burst=1) as slack:
        sleeps = Sleeps()
        policy = RetryPolicy(attempts=4, base=0.01, max_wait=5.0, jitter=0.0, sleep=sleeps)
        alerter = SlackAlerter(
            slack.bot_token, base_url=slack.base_url, messages_per_second=50, retry=policy
        )
        assert alerter.client.retry_handlers == []  # slack-sdk never sleeps on its own
        alerter.post("C0CSALERTS", {"text": "one"})
        alerter.post("C0CSALERTS", {"text": "two"})  # Slack's 1/s: a 429, Retry-After 1
        statuses = [r.status for r in slack.requests("POST", r"chat\.postMessage")]
        assert statuses == [200, 429, 200] and len(slack.messages) == 2
        assert any(w == 1.0 for w in sleeps.waits)  # the Retry-After, through the policy
        # our own per-channel pace waits through the policy's sleep too
        paced = SlackAlerter(
            slack.bot_token, base_url=slack.base_url, messages_per_second=2, retry=policy
        )
        slack.set_rate(50.0, burst=50)
        before = len(sleeps.waits)
        paced.post("C0CSALERTS", {"text": "three"})
        paced.post("C0CSALERTS", {"text": "four"})
        assert len(sleeps.waits) == before + 1 and 0.3 < sleeps.waits[-1] <= 0.5
        # a Retry-After beyond the cap goes back to the caller, unslept
        slack.set_rate(0.01, burst=1)
        paced.post("C0CSALERTS", {"text": "five"})
        before = len(sleeps.waits)
        with pytest.raises(RateLimited, match="rate limited") as err:
            alerter.post("C0CSALERTS", {"text": "six"})
        assert err.value.retry_after is not None and err.value.retry_after > 5
        assert len(sleeps.waits) == before
