"""The sources.mailchimp section."""

from __future__ import annotations

from pydantic import Field

from connectors.email.config import EmailSource


class MailchimpSource(EmailSource):
    """Mailchimp Marketing (MAILCHIMP_API_KEY): campaign reports with per-member activity."""

    metric_prefix: str = Field("mailchimp_", pattern=r"^[a-z][a-z0-9_]*_$")
    page_size: int = Field(1000, ge=1, le=1000, description="members per email-activity page")
    max_connections: int = Field(
        10,
        ge=1,
        le=10,
        description="simultaneous requests per key "
        "(Mailchimp allows 10 per key, shared by everything using it)",
    )
