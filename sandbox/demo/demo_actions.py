"""The demo's actions: a task rule and two email rules, counts from the emulators' request logs,
and ``--chaos`` (a Slack 429 storm and workers killed after a vendor accepted a delivery).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console

from actions import DeliveryHooks, DeliveryReport, Rule, WorkerKilled
from actions.rule_model import ActionSettings, EmailSettings
from healthscore.config import Config
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator
from sandbox.sendgrid import SendGridEmulator
from store import Store
from store.models import ActionLog

DEMO_RULES = [
    {
        "name": "entered_red",
        "when": {"grade_is": "red"},
        "actions": [
            "slack",
            {
                "task": {
                    "subject": "Health: {name} is {grade} — call this week",
                    "description": "{name} entered {grade} at {score}: {why}.\n"
                    "Top reasons: {reasons}\n{crm_url}",
                    "due_in": "3d",
                    "priority": "High",
                }
            },
        ],
    },
    {
        "name": "onboarding_stalled",
        "when": {"onboarding_not_past": {"score": 60, "by_day": 30}},
        "actions": [
            {
                "email": {
                    "template": "d-onboarding-nudge",
                    "roles": ["Admin", "Champion"],
                    "steps": [
                        {"day": 30},
                        {"day": 45, "template": "d-onboarding-2"},
                        {"day": 60, "template": "d-onboarding-3"},
                    ],
                }
            }
        ],
    },
    {
        "name": "usage_falling",
        "when": {"measure_below": {"measure": "login_trend", "points": 30}},
        "actions": [{"email": {"template": "d-reengage", "roles": ["Admin", "Champion"]}}],
    },
]
KILL_KINDS = ("slack", "task", "email_send")
STORM_429S = 6


def with_demo_actions(config: Config) -> Config:
    """The demo config plus its rules; Contacts are pulled for the email recipients."""
    salesforce = config.sources.salesforce
    if "Contact" not in salesforce.related:
        salesforce = salesforce.model_copy(update={"related": [*salesforce.related, "Contact"]})
    return config.model_copy(
        update={
            "rules": [Rule.model_validate(r) for r in DEMO_RULES],
            "actions": ActionSettings(
                email=EmailSettings(
                    from_email="success@healthscore.example", from_name="Healthscore CS"
                )
            ),
            "sources": config.sources.model_copy(update={"salesforce": salesforce}),
        }
    )


def action_counts(
    sf: SalesforceEmulator, hs: HubSpotEmulator, slack: SlackEmulator, sendgrid: SendGridEmulator
) -> dict[str, int]:
    """Deliveries the vendors accepted, from their request logs (and Slack's messages)."""
    return {
        "tasks": sum(
            1
            for r in sf.requests("PATCH", r"/sobjects/Task/Healthscore_Key__c/")
            if r.status == 201
        )
        + sum(1 for r in hs.requests("POST", r"/objects/tasks/batch/upsert$") if r.status == 200),
        "emails": sum(1 for r in sendgrid.requests("POST", r"/v3/mail/send$") if r.status == 202),
        "slack": len(slack.messages),
    }


def start_storm(slack: SlackEmulator) -> None:
    """Slack answers 429 (Retry-After: 1) to some posts: the sender waits and re-posts."""
    slack.faults.add(
        "rate_limit", method="POST", path=r"chat\.postMessage", share=0.4, times=STORM_429S, seed=7
    )


def chaotic_delivery(new_worker: Callable[[], Any], console: Console) -> DeliveryReport:
    """Deliver with one worker killed per channel right after the vendor accepted an action
    (before the result was recorded), each followed by a restart; returns the last report."""
    for kind in KILL_KINDS:
        killed: list[ActionLog] = []

        def kill(
            action: ActionLog, response_id: str, kind: str = kind, killed: list[ActionLog] = killed
        ) -> None:
            if action.kind == kind and not killed:
                killed.append(action)
                raise WorkerKilled(action.key)

        try:
            # a restarted worker: what a dead one left in `sending` is reconciled first
            new_worker().deliver(hooks=DeliveryHooks(after_accept=kill), stuck_after=timedelta(0))
        except WorkerKilled:
            console.print(
                f"  [yellow]chaos[/]: worker killed after the vendor accepted "
                f"{killed[0].key} (not recorded); restarting",
                highlight=False,
            )
    return new_worker().deliver(stuck_after=timedelta(0))


def exactly_once(
    store: Store,
    sf: SalesforceEmulator,
    hs: HubSpotEmulator,
    slack: SlackEmulator,
    sendgrid: SendGridEmulator,
) -> dict[str, Any]:
    """Each delivered action exactly once at its vendor, by idempotency key."""
    sent = {
        k: {a.key for a in store.actions(status="sent", kind=k)}
        for k in ("slack", "task", "email_send")
    }
    posts = Counter(
        (m.get("metadata") or {}).get("event_payload", {}).get("key") for m in slack.messages
    )
    upserts = Counter(
        r.path.rsplit("/", 1)[-1]
        for r in sf.requests("PATCH", r"/sobjects/Task/Healthscore_Key__c/")
        if r.status < 300
    )
    for r in hs.requests("POST", r"/objects/tasks/batch/upsert$"):
        if r.status == 200:
            upserts.update(i.get("id") for i in (r.body or {}).get("inputs", []))
    emails = Counter(m["custom_args"].get("healthscore_key") for m in sendgrid.sent)
    # an email whose worker died after SendGrid accepted it is `unknown` in our log: it must
    # be at SendGrid once, like the sent ones
    delivered = sent["email_send"] | {
        a.key for a in store.actions(status="unknown", kind="email_send")
    }
    return {
        "slack": set(posts) == sent["slack"] and max(posts.values(), default=1) == 1,
        "tasks": set(upserts) == sent["task"] and max(upserts.values(), default=1) == 1,
        "emails": set(emails) == delivered and max(emails.values(), default=1) == 1,
        "slack_429s": sum(
            1 for r in slack.requests("POST", r"chat\.postMessage") if r.status == 429
        ),
        "unknown": len(store.actions(status="unknown")),
    }
