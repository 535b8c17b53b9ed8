"""Actions: rules turn score changes into intents; handlers deliver each intent once."""

from actions.deliver import (
    Channels,
    DeliveryHooks,
    DeliveryReport,
    WorkerKilled,
    deliver_pending,
)
from actions.mrkdwn import escape_mrkdwn
from actions.rule_model import ActionSettings, Rule, Trigger
from actions.rules import ENTERED_RED, Intent, RuleContext, RuleState, evaluate
from actions.slack import SlackAlerter, build_alert, build_digest

__all__ = [
    "ENTERED_RED",
    "ActionSettings",
    "Channels",
    "DeliveryHooks",
    "DeliveryReport",
    "Intent",
    "Rule",
    "RuleContext",
    "RuleState",
    "SlackAlerter",
    "Trigger",
    "WorkerKilled",
    "build_alert",
    "build_digest",
    "deliver_pending",
    "escape_mrkdwn",
    "evaluate",
]
