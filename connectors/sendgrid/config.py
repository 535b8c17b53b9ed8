"""The sources.sendgrid section."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from connectors.email.config import EmailSource
from healthscore.core.durations import Duration


class SendGridSource(EmailSource):
    """SendGrid (SENDGRID_API_KEY): per-recipient events from the signed event webhook (or
    the Email Activity API, a paid add-on), suppressions, and stats by category."""

    metric_prefix: str = Field("sendgrid_", pattern=r"^[a-z][a-z0-9_]*_$")
    per_recipient: Literal["webhook", "activity_api"] = Field(
        "webhook",
        description="webhook: events POSTed to `healthscore webhook serve`; "
        "activity_api: pulled from /v3/messages (needs the Email Activity History add-on)",
    )
    categories: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="count only mail in these categories (empty: all mail)",
    )
    page_size: int = Field(500, ge=1, le=500, description="suppression list page size")
    webhook_max_age: Duration = Field(
        timedelta(minutes=10),
        description="reject signed webhook requests older (or newer) than this",
    )
