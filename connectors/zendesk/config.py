"""The sources.zendesk section."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel as _Strict


class ZendeskSource(_Strict):
    """Zendesk Support: tickets (incremental export), organizations, CSAT → support signals
    (metric names in connectors/zendesk/signals.py)."""

    enabled: bool = False
    subdomain: str | None = Field(
        None, description="acme for https://acme.zendesk.com (ZENDESK_SUBDOMAIN overrides)"
    )
    sync_every: Duration = timedelta(minutes=15)
    requests_per_minute: int = Field(
        700,
        ge=1,
        description="your plan's account-wide limit "
        "(Team 200, Growth/Professional 400, Enterprise 700, "
        "Enterprise Plus or High Volume 2500)",
    )
    export_requests_per_minute: int = Field(
        10, ge=1, description="the incremental export limit (30 with the High Volume add-on)"
    )
    backfill: Duration = Field(
        timedelta(days=180),
        description="how far back the first "
        "ticket export starts (signals look back up to 2 × 90 days)",
    )
    organizations_every: Duration = Field(
        timedelta(hours=1), description="how often the organization list is re-read for matching"
    )
    overlap: Duration = Field(
        timedelta(minutes=5), description="re-read this much before the CSAT cursor"
    )
    external_id_is_account_id: bool = Field(
        True, description="an organization's external_id holds the CRM account id"
    )
    topic_tag_prefix: str = Field(
        "topic_",
        description="tags starting so name a ticket's topic (besides its normalized subject)",
    )
    export_page_size: int = Field(1000, ge=1, le=1000)
    page_size: int = Field(100, ge=1, le=100)
