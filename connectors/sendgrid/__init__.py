"""SendGrid: one client (engagement pulls, `check`, the tech-touch sender), one error mapping
(``classify``), the signed event webhook."""

from connectors.sendgrid.client import (
    SendGridClient,
    category_totals,
    classify,
    pull_activity,
    pull_suppressions,
)
from connectors.sendgrid.sender import SendGridSender
from connectors.sendgrid.webhook import SignatureError, event_fact, load_public_key, verify

__all__ = [
    "SendGridClient",
    "SendGridSender",
    "SignatureError",
    "category_totals",
    "classify",
    "event_fact",
    "load_public_key",
    "pull_activity",
    "pull_suppressions",
    "verify",
]
