"""Actions: rules turn score changes into intents; handlers deliver each intent once."""

from .deliver import DeliveryReport, deliver_pending
from .rule_model import Rule, Trigger
from .rules import ENTERED_RED, Intent, RuleContext, RuleState, evaluate
from .slack import SlackAlerter, build_alert, escape_mrkdwn

__all__ = [
    "ENTERED_RED",
    "DeliveryReport",
    "Intent",
    "Rule",
    "RuleContext",
    "RuleState",
    "SlackAlerter",
    "Trigger",
    "build_alert",
    "deliver_pending",
    "escape_mrkdwn",
    "evaluate",
]
