"""The demo's actions: a task rule and two email rules, counts from the emulators' request logs,
and ``--chaos``'s Slack 429 storm and exactly-once check (its real worker kills are in
``sandbox.chaos.demo_kill``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from actions import Rule
from actions.rule_model import ActionSettings, EmailSettings
from healthscore.config import Config
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator
from sandbox.sendgrid import SendGridEmulator
from store import Store

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
        + sum(1 for r in hs.requests("POST", r"/objects/tasks/batch/create$") if r.status == 201),
        "emails": sum(1 for r in sendgrid.requests("POST", r"/v3/mail/send$") if r.status == 202),
        "slack": len(slack.messages),
    }


def start_storm(slack: SlackEmulator) -> None:
    """Slack answers 429 (Retry-After: 1) to some posts: the sender waits and re-posts."""
    slack.faults.add(
        "rate_limit", method="POST", path=r"chat\.postMessage", share=0.4, times=STORM_429S, seed=7
    )


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
    for r in hs.requests("POST", r"/objects/tasks/batch/create$"):
        if r.status == 201:
            upserts.update(
                (i.get("properties") or {}).get("healthscore_key")
                for i in (r.body or {}).get("inputs", [])
            )
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
