"""Zendesk's registry entry: the client, the sync step (organizations, ticket export, CSAT)
and `check`. Support signals are matched to the CRM's accounts, so it runs after the CRM."""

from __future__ import annotations

from connectors.contract import Source, SyncContext, SyncOptions
from connectors.zendesk.client import ZendeskClient
from connectors.zendesk.config import ZendeskSource
from connectors.zendesk.signals import METRICS
from connectors.zendesk.sync import SOURCE, ZendeskSyncReport, sync_zendesk


def _make_client(ctx: SyncContext) -> ZendeskClient:
    section = ctx.sources.zendesk
    settings = ctx.settings
    if settings.zendesk_subdomain is None and section.subdomain:
        settings = settings.model_copy(update={"zendesk_subdomain": section.subdomain})
    return ZendeskClient(
        settings,
        requests_per_minute=section.requests_per_minute,
        export_requests_per_minute=section.export_requests_per_minute,
    )


def sync_step(ctx: SyncContext, opts: SyncOptions) -> ZendeskSyncReport:
    """Organizations, tickets changed since the export cursor and CSAT ratings; the support
    signals of the accounts they touch."""
    return sync_zendesk(
        ctx.client(SOURCE),
        ctx.store,
        ctx.sources.zendesk,
        now=ctx.clock,
        full=opts.full,
        progress=opts.progress("zendesk organizations and tickets"),
    )


def _check(ctx: SyncContext) -> list[str]:
    client = ctx.client(SOURCE)
    client.get("organizations.json", {"page[size]": 1}, what="organizations")
    return [f"Zendesk {client.base_url} reachable"]


SOURCE_ENTRY = Source(
    name=SOURCE,
    config=ZendeskSource,
    default=ZendeskSource(),
    sync=sync_step,
    describe="tickets, organizations and CSAT",
    make_client=_make_client,
    metrics=lambda section: [(m, "") for m in METRICS],
    check=_check,
)
