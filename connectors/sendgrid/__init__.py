"""SendGrid as a source of email engagement (see healthscore/email_sync.py)."""

from connectors.sendgrid.client import (
    SendGridClient,
    category_totals,
    classify,
    pull_activity,
    pull_suppressions,
)
from connectors.sendgrid.webhook import SignatureError, event_fact, load_public_key, verify

__all__ = [
    "SendGridClient",
    "SignatureError",
    "category_totals",
    "classify",
    "event_fact",
    "load_public_key",
    "pull_activity",
    "pull_suppressions",
    "verify",
]
