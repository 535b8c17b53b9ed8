"""SendGrid's registry entry: the client (shared by the engagement pull, the webhook and the
tech-touch sender), the sync step, `check`, and its email sender."""

from __future__ import annotations

from typing import Any

from connectors.contract import Source, SyncContext
from connectors.email.step import email_metrics, email_step
from connectors.sendgrid.client import SendGridClient
from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.scopes import require, sync_scopes
from connectors.sendgrid.sender import SendGridSender
from connectors.sendgrid.sync import SOURCE, sync_sendgrid
from connectors.sendgrid.webhook import load_public_key


def _check(ctx: SyncContext) -> list[str]:
    client = ctx.client(SOURCE)
    lines = [require(client, sync_scopes(ctx.sources.sendgrid), "sync")]
    client.get("/v3/suppression/bounces", {"limit": 1})
    lines.append("SendGrid reachable (suppressions readable)")
    if ctx.sources.sendgrid.per_recipient == "webhook":
        load_public_key(ctx.settings.sendgrid_webhook_public_key or "")
        lines.append("SENDGRID_WEBHOOK_PUBLIC_KEY is a P-256 public key")
    return lines


def email_sender(ctx: SyncContext, email: Any, common: dict[str, Any]) -> SendGridSender | None:
    """The tech-touch sender when SENDGRID_API_KEY is set, on the context's one client (the
    sync's, so a cycle reads the suppression lists once)."""
    if ctx.settings.sendgrid_api_key is None:
        return None
    return SendGridSender(ctx.client(SOURCE), unsubscribe_group=email.unsubscribe_group, **common)


SOURCE_ENTRY = Source(
    name=SOURCE,
    config=SendGridSource,
    default=SendGridSource(),
    sync=email_step(SOURCE, "activity", sync_sendgrid, SOURCE, "sendgrid recipients"),
    describe="email engagement: webhook events, suppressions, Email Activity",
    make_client=lambda ctx: SendGridClient.from_settings(ctx.settings),
    metrics=email_metrics(SOURCE),
    check=_check,
    email_sender=email_sender,
)
