"""Mailchimp's registry entry: the Marketing client and sync step, `check`, and the
Transactional (Mandrill) tech-touch sender."""

from __future__ import annotations

from typing import Any

from connectors.contract import Source, SyncContext
from connectors.email.step import email_metrics, email_step
from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.config import MailchimpSource
from connectors.mailchimp.mandrill import MandrillSender
from connectors.mailchimp.sync import SOURCE, sync_mailchimp


def _check(ctx: SyncContext) -> list[str]:
    health = ctx.client(SOURCE).get("/ping").get("health_status")
    return [f"Mailchimp reachable ({health})"]


def email_sender(ctx: SyncContext, email: Any, common: dict[str, Any]) -> MandrillSender | None:
    """The tech-touch sender when MANDRILL_API_KEY is set (Transactional has its own host and
    key, so it is not the Marketing client; the Marketing key is not needed to send)."""
    settings = ctx.settings
    if settings.mandrill_api_key is None:
        return None
    return MandrillSender(
        settings.mandrill_api_key.get_secret_value(), base_url=settings.mandrill_base_url, **common
    )


SOURCE_ENTRY = Source(
    name=SOURCE,
    config=MailchimpSource,
    default=MailchimpSource(),
    sync=email_step(SOURCE, "email-activity", sync_mailchimp, SOURCE, "mailchimp campaign members"),
    describe="email engagement: campaign reports and member activity",
    make_client=lambda ctx: MailchimpClient.from_settings(
        ctx.settings, max_connections=ctx.sources.mailchimp.max_connections
    ),
    metrics=email_metrics(SOURCE),
    check=_check,
    email_sender=email_sender,
)
