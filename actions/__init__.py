"""Actions: rules turn score changes into intents; handlers deliver each intent once."""

from .deliver import DeliveryReport, deliver_pending
from .rules import Intent, entered_red_intents
from .slack import SlackAlerter, build_alert, escape_mrkdwn

__all__ = [
    "DeliveryReport",
    "Intent",
    "SlackAlerter",
    "build_alert",
    "deliver_pending",
    "entered_red_intents",
    "escape_mrkdwn",
]
