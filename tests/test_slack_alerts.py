"""Slack alerts through slack-sdk against the Slack emulator: escaped, once per episode."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from actions import build_alert, escape_mrkdwn
from actions.deliver import STUCK_SENDING
from connectors.registry import Settings
from connectors.salesforce import SalesforceClient
from connectors.salesforce.sync import sync_accounts
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from sandbox.wire import Request, Response
from store import Store
from store.models import ActionLog, utcnow
from tests.conftest import FAST_RETRY, fast_config

NOW = datetime.now(UTC)
POSTS = r"chat\.postMessage"
# (not the synthetic org's own hostile names, so each is one account)
HOSTILE = (
    "<!channel> Ping Corp",
    "Ping <@U123> Ltd",
    "Stone & Sons <Ltd>",
    "*bold* Corp",
    "`rm -rf` Labs",
    "Pipe|Line > Co",
)


def serialized(message: dict[str, Any]) -> str:
    return json.dumps({"text": message["text"], "blocks": message["blocks"]}, ensure_ascii=False)


def block_texts(message: dict[str, Any]) -> str:
    out = []
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [e["text"] for e in block.get("elements", [])]
    return "\n".join(out)


def red_accounts(pipeline: Pipeline) -> list[str]:
    """Sync, then the ids the scorecard grades red right now (nothing is recorded)."""
    sync_accounts(pipeline.context)
    batch = pipeline.compute()
    return [a for a, g in zip(batch.account_ids, batch.grade.tolist(), strict=True) if g == "red"]


def metrics(emu: SalesforceEmulator, pipeline: Pipeline, account_id: str) -> dict[str, Any]:
    record = emu.record("Account", account_id)
    return {f: record[f] for f in pipeline.config.sources.salesforce.metrics.values()}


def alerts_about(emu: SlackEmulator, name: str) -> list[dict[str, Any]]:
    prefix = f"{escape_mrkdwn(name)} health is now "
    return [m for m in emu.messages if (m["text"] or "").startswith(prefix)]


def messages_for(emu: SlackEmulator, name_fragment: str) -> list[dict[str, Any]]:
    return [m for m in emu.messages if name_fragment in (m["text"] or "")]


def test_untrusted_account_names_are_escaped_and_owners_mentioned(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org = generate_org(40, seed=31, now=NOW)
    sf_emu.seed(org)
    slack_emu.add_users(org.users)
    pipeline = make_pipeline()
    reds = red_accounts(pipeline)
    assert len(reds) > len(HOSTILE)
    for account_id, name in zip(reds, HOSTILE, strict=False):
        sf_emu.update("Account", account_id, {"Name": name})
    # one red account's owner has no Slack account: named, not mentioned
    (outsider,) = sf_emu.insert(
        "User",
        [
            {
                "Name": "Noor Outside",
                "Username": "noor@x.test.sb",
                "Email": "noor@elsewhere.test",
                "IsActive": True,
            }
        ],
    )
    unmentioned = reds[len(HOSTILE)]
    sf_emu.update("Account", unmentioned, {"OwnerId": outsider})

    report = pipeline.run_cycle()
    assert report.delivery.sent == len(reds) == len(slack_emu.messages)
    everything = "\n".join(serialized(m) for m in slack_emu.messages)
    assert "<!channel>" not in everything and "<@U123>" not in everything
    assert "&amp;lt;" not in everything and "&#" not in everything  # not escaped twice
    expected = {
        "<!channel> Ping Corp": "&lt;!channel&gt; Ping Corp",
        "Ping <@U123> Ltd": "Ping &lt;@U123&gt; Ltd",
        "Stone & Sons <Ltd>": "Stone &amp; Sons &lt;Ltd&gt;",
        # Slack has no escape for formatting characters: they stay as typed, never mangled
        "*bold* Corp": "*bold* Corp",
        "`rm -rf` Labs": "`rm -rf` Labs",
    }
    for raw, escaped in expected.items():
        (message,) = messages_for(slack_emu, escaped)
        assert escaped in block_texts(message), raw
        assert raw not in message["text"] or raw == escaped
    (piped,) = messages_for(slack_emu, "Line &gt; Co")
    headline = piped["blocks"][0]["text"]["text"]
    assert "|Pipe¦Line &gt; Co>" in headline  # the link label cannot end the link early

    owners = {a.id: a for a in pipeline.store.accounts()}
    for account_id in reds:
        account = owners[account_id]
        (message,) = alerts_about(slack_emu, account.name)
        context = block_texts(message)
        if account_id == unmentioned:
            assert "Owner: Noor Outside" in context and "<@" not in context
        else:
            user_id = slack_emu.add_user(account.owner_email or "", account.owner_name or "")
            assert f"Owner: <@{user_id}>" in context
    lookups = slack_emu.requests("POST", r"users\.lookupByEmail")
    assert len(lookups) == len({owners[a].owner_email for a in reds})  # cached per email


def test_one_alert_per_red_episode(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(30, seed=32, now=NOW))
    pipeline = make_pipeline()
    first = pipeline.run_cycle()
    reds = sorted(a.account_id for a in pipeline.store.actions())
    assert first.delivery.sent == len(reds) == len(slack_emu.messages) > 0

    second = make_pipeline().run_cycle()  # still red: no new episode
    assert (second.scoring.entered_red, second.delivery.sent) == (0, 0)
    assert len(slack_emu.messages) == len(reds)

    grades = {a: s.grade for a, s in pipeline.store.scores_as_of(utcnow()).items()}
    green = next(a for a, g in sorted(grades.items()) if g == "green")
    episode = reds[0]
    as_red = metrics(sf_emu, pipeline, episode)
    sf_emu.update("Account", episode, metrics(sf_emu, pipeline, green))
    third = make_pipeline().run_cycle()  # leaves red
    assert pipeline.store.scores_as_of(utcnow())[episode].grade != "red"
    assert third.delivery.sent == 0 and len(slack_emu.messages) == len(reds)

    sf_emu.update("Account", episode, as_red)
    fourth = make_pipeline().run_cycle()  # enters red again: a new episode, one alert
    assert (fourth.scoring.entered_red, fourth.delivery.sent) == (1, 1)
    assert len(slack_emu.messages) == len(reds) + 1
    keys = [a.key for a in pipeline.store.actions() if a.account_id == episode]
    assert len(keys) == 2 and len(set(keys)) == 2
    name = pipeline.store.account(episode).name  # type: ignore[union-attr]
    assert len(alerts_about(slack_emu, name)) == 2
    assert alerts_about(slack_emu, name)[-1] == slack_emu.messages[-1]


def _backdate(store: Store, key: str, age: timedelta) -> None:
    with store.session() as s:
        s.execute(update(ActionLog).where(ActionLog.key == key).values(updated_at=utcnow() - age))


def test_a_delivery_cut_off_mid_send_is_reconciled_not_posted_twice(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(30, seed=33, now=NOW))
    pipeline = make_pipeline()
    sync_accounts(pipeline.context)
    pipeline.score()
    pending = pipeline.store.actions(status="pending")
    assert len(pending) >= 3
    crashed, in_flight = pending[0], pending[1]
    # a worker claimed `crashed`, posted it (its key in the metadata), and died before
    # recording the outcome
    assert pipeline.store.begin_delivery(crashed.key)
    slack = pipeline.slack
    assert slack is not None
    ts = slack.post("C0CSALERTS", build_alert(crashed.payload, None), key=crashed.key)
    _backdate(pipeline.store, crashed.key, STUCK_SENDING + timedelta(minutes=1))
    # another worker claimed `in_flight` a moment ago and is still talking to Slack
    assert pipeline.store.begin_delivery(in_flight.key)

    report = pipeline.deliver()
    assert (report.sent, report.reconciled, report.unknown) == (len(pending) - 2, 1, 0)
    status = {a.key: a for a in pipeline.store.actions()}
    assert status[crashed.key].status == "sent"  # found by conversations.history
    assert status[crashed.key].response_id == f"C0CSALERTS/{ts}"
    assert status[in_flight.key].status == "sending"  # not ours to touch yet

    again = make_pipeline().run_cycle()  # the task retried, or the next cycle
    assert (again.delivery.sent, again.delivery.unknown) == (0, 0)
    texts = Counter(m["text"] for m in slack_emu.messages)
    assert len(slack_emu.messages) == len(pending) - 1  # in_flight's own worker will post it
    assert max(texts.values()) == 1
    assert slack_emu.requests("POST", r"conversations\.history")


def test_slack_rate_limit_is_waited_out_and_each_alert_goes_out_once(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(10, seed=34, now=NOW))
    slack_emu.set_rate(1.0, burst=1)  # Slack's real pace: 1 message/s per channel
    pipeline = make_pipeline()  # the sender itself is configured for 50/s
    report = pipeline.run_cycle()
    reds = report.scoring.entered_red
    assert reds >= 2
    posts = slack_emu.requests("POST", POSTS)
    limited = [r for r in posts if r.status == 429]
    assert limited, "the emulator should have answered 429"
    assert report.delivery.sent == reds and report.delivery.retry_later == 0
    assert len(slack_emu.messages) == reds == len({m["text"] for m in slack_emu.messages})
    assert len(posts) == reds + len(limited)


def test_a_long_retry_after_leaves_alerts_pending_for_the_next_run(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(30, seed=35, now=NOW))
    slack_emu.set_rate(0.01, burst=1)  # Retry-After: 100 s, beyond max_retry_wait
    pipeline = make_pipeline()
    first = pipeline.run_cycle()
    reds = first.scoring.entered_red
    assert reds >= 2
    assert (first.delivery.sent, first.delivery.retry_later) == (1, reds - 1)
    assert first.delivery.errors == ["Slack chat.postMessage to C0CSALERTS rate limited"]
    limited = [r for r in slack_emu.requests("POST", POSTS) if r.status == 429]
    assert len(limited) == 1  # the rest were not tried: they would be limited too
    assert len(pipeline.store.actions(status="pending")) == reds - 1

    slack_emu.set_rate(50.0, burst=50)
    second = make_pipeline().run_cycle()
    assert (second.delivery.sent, second.delivery.retry_later) == (reds - 1, 0)
    assert len(slack_emu.messages) == reds == len({m["text"] for m in slack_emu.messages})
    assert {a.status for a in pipeline.store.actions()} == {"sent"}


@pytest.fixture
def pipeline_with(settings: Settings) -> Iterator[Callable[..., Pipeline]]:
    """A pipeline on the test store with some settings changed."""
    stores: list[Store] = []

    def build(**changes: Any) -> Pipeline:
        store = Store(settings.database_url)
        stores.append(store)
        s = settings.model_copy(update=changes)
        return Pipeline(fast_config(), s, store, salesforce=SalesforceClient(s, retry=FAST_RETRY))

    yield build
    for store in stores:
        store.close()


@pytest.mark.parametrize(
    ("channel", "archive", "error"),
    [
        ("C0NOSUCHCH", False, "channel_not_found"),
        ("C0CSALERTS", True, "is_archived"),
    ],
)
def test_a_bad_alert_channel_is_named_and_the_alerts_are_kept(
    channel: str,
    archive: bool,
    error: str,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
    pipeline_with: Callable[..., Pipeline],
) -> None:
    sf_emu.seed(generate_org(20, seed=36, now=NOW))
    if archive:
        slack_emu.archive_channel(channel)
    pipeline = pipeline_with(slack_alert_channel=channel)
    report = pipeline.run_cycle()
    reds = report.scoring.entered_red
    assert reds > 0 and report.delivery.sent == 0 and slack_emu.messages == []
    assert report.delivery.failed == reds
    for message in report.delivery.errors:
        assert channel in message and error in message
    kept = pipeline.store.actions()
    assert len(kept) == reds
    for action in kept:
        assert action.status == "failed" and action.target == channel
        assert channel in (action.error or "") and error in (action.error or "")
        assert action.payload["name"]  # everything needed to send it is still there
    assert report.write.records_updated == 20  # the rest of the cycle went on


class DroppingSlack(SlackEmulator):
    """Slack that posts the message, then loses the connection before it answers."""

    drops = 0

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        answer = super().dispatch(req)
        if self.drops and req.path.endswith("chat.postMessage"):
            self.drops -= 1
            raise ConnectionAbortedError("connection lost before the response")
        return answer


def test_a_connection_lost_after_posting_is_not_posted_again(
    sf_emu: SalesforceEmulator, pipeline_with: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(20, seed=37, now=NOW))
    with DroppingSlack(messages_per_second=50, burst=50) as slack:
        slack.drops = 1
        pipeline = pipeline_with(slack_base_url=slack.base_url)
        report = pipeline.run_cycle()
        reds = report.scoring.entered_red
        assert reds >= 2
        assert (report.delivery.sent, report.delivery.unknown) == (reds - 1, 1)
        assert len(slack.messages) == reds  # the lost answer's message is there, once
        assert Counter(m["text"] for m in slack.messages).most_common(1)[0][1] == 1
        (unknown,) = pipeline.store.actions(status="unknown")
        assert "RemoteDisconnected" in (unknown.error or "") or "Connection" in (
            unknown.error or ""
        )
        again = pipeline_with(slack_base_url=slack.base_url).run_cycle()
        assert again.delivery.sent == 0 and len(slack.messages) == reds


def test_a_timed_out_post_is_marked_unknown_not_reposted(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(20, seed=38, now=NOW))
    slack_emu.faults.add("slow", method="POST", path=POSTS, times=1, delay=1.0)
    pipeline = make_pipeline()
    assert pipeline.slack is not None
    pipeline.slack.client.timeout = 0.3  # Slack got the post but answers too late
    report = pipeline.run_cycle()
    reds = report.scoring.entered_red
    assert (report.delivery.sent, report.delivery.unknown) == (reds - 1, 1)
    deadline = time.monotonic() + 5
    while len(slack_emu.messages) < reds and time.monotonic() < deadline:
        time.sleep(0.05)
    again = make_pipeline().run_cycle()
    assert again.delivery.sent == 0
    assert len(slack_emu.messages) == reds == len({m["text"] for m in slack_emu.messages})


def test_alerts_wait_while_slack_is_unreachable_then_go_out_once(
    sf_emu: SalesforceEmulator, pipeline_with: Callable[..., Pipeline]
) -> None:
    sf_emu.seed(generate_org(10, seed=39, now=NOW))
    with SlackEmulator() as gone:
        address = gone.base_url  # nothing listens here once it is stopped
    report = pipeline_with(slack_base_url=address).run_cycle()
    reds = report.scoring.entered_red
    assert reds >= 1
    assert (report.delivery.sent, report.delivery.unknown, report.delivery.retry_later) == (
        0,
        0,
        reds,
    )
    (error,) = report.delivery.errors  # one try, not one timeout per alert
    assert error.startswith(f"Slack unreachable at {address}")
    assert {a.status for a in pipeline_with().store.actions()} == {"pending"}
    with SlackEmulator(messages_per_second=50, burst=50) as slack:
        later = pipeline_with(slack_base_url=slack.base_url).run_cycle()
        assert later.delivery.sent == reds == len(slack.messages)
        assert len({m["text"] for m in slack.messages}) == reds


def test_a_timed_out_owner_lookup_still_sends_the_alert(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org = generate_org(10, seed=40, now=NOW)
    sf_emu.seed(org)
    slack_emu.add_users(org.users)
    slack_emu.faults.add("slow", method="POST", path=r"users\.lookupByEmail", times=1, delay=1.0)
    pipeline = make_pipeline()
    assert pipeline.slack is not None
    pipeline.slack.client.timeout = 0.3
    report = pipeline.run_cycle()
    reds = report.scoring.entered_red
    assert reds >= 1
    assert (report.delivery.sent, report.delivery.unknown) == (reds, 0)
    assert len(slack_emu.messages) == reds
    first = block_texts(slack_emu.messages[0])
    assert "Owner: " in first and "<@" not in first  # named, not mentioned, but sent
