"""HubSpot's registry entries: companies (a second CRM matched to the accounts, or the CRM of
record) with their deals, tickets and contacts, and marketing email events; its CRM role
(health properties written back by batch update, CSM tasks, contacts for tech-touch email)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.contract import Crm, Source, SyncContext, SyncOptions
from connectors.email.step import email_metrics, email_step
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import HubSpotEmailSource, HubSpotSource
from connectors.hubspot.csm_tasks import HubSpotTasks, ensure_task_key_property
from connectors.hubspot.email_sync import SOURCE as EMAIL
from connectors.hubspot.email_sync import sync_hubspot_email
from connectors.hubspot.related import pull_owners
from connectors.hubspot.related_signals import METRICS, RelatedRules
from connectors.hubspot.related_sync import HubSpotRelatedReport
from connectors.hubspot.related_sync import sync_hubspot_related as _sync_related
from connectors.hubspot.sync import COMPANY_KEY, OBJECT, SOURCE, HubSpotSyncReport, sync_hubspot
from connectors.hubspot.writer import HubSpotWriter, ensure_properties, missing_properties
from connectors.outbound import Contact, truthy
from healthscore.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class HubSpotStepReport(HubSpotSyncReport):
    """Companies, then (when configured) the related objects mapped through them."""

    related: HubSpotRelatedReport | None = None


def sync_step(ctx: SyncContext, opts: SyncOptions) -> HubSpotSyncReport:
    report = sync_companies(ctx, full=opts.full, progress=opts.progress("hubspot companies"))
    if ctx.sources.hubspot.related:  # after companies: it maps through their keys
        related = sync_related(ctx, full=opts.full, progress=opts.progress("hubspot related"))
        report = HubSpotStepReport(**vars(report), related=related)
    return report


def sync_companies(
    ctx: SyncContext, *, full: bool = False, progress: Any = None
) -> HubSpotSyncReport:
    """Pull companies modified since the cursor (all with ``full``) and match them."""
    since = ctx.cursor(SOURCE, OBJECT, full=full)
    started = ctx.clock()
    source = ctx.sources.hubspot
    client = ctx.client(SOURCE)
    # as the CRM of record, each company's owner becomes the account's owner (mentions)
    # (and to read an override's "by" when it holds a HubSpot owner)
    owners = (
        pull_owners(client)
        if source.record_system or source.override_properties is not None
        else None
    )
    report, _newest = sync_hubspot(
        client,
        source,
        ctx.store,
        since,
        started=started,
        progress=progress,
        owners=owners,
        overrides_sink=ctx.overrides if source.override_properties is not None else None,
        churn_roles=ctx.churn_roles,
    )
    report.cursor = ctx.advance_cursor(SOURCE, OBJECT, started)
    log.info(
        "HubSpot sync: %d companies (%d matched, %d unmatched, %d ambiguous) in %d requests",
        report.records,
        report.matched,
        report.unmatched,
        report.ambiguous,
        report.requests,
    )
    return report


def sync_related(
    ctx: SyncContext,
    *,
    full: bool = False,
    progress: Any = None,
    objects: list[str] | None = None,
    rules: RelatedRules | None = None,
) -> HubSpotRelatedReport:
    """Pull HubSpot deals/tickets/contacts changed since their cursors; recompute signals
    (``rules``: how deals and tickets read; by default from the section)."""
    source = ctx.sources.hubspot
    started = ctx.clock()
    since = {
        name: ctx.cursor(SOURCE, name, full=full)
        for name in (objects if objects is not None else source.related)
    }
    report = _sync_related(
        ctx.client(SOURCE),
        ctx.store,
        since_by_object=since,
        started=started,
        source=source,
        rules=rules or RelatedRules(learn_contact_domains=source.learn_contact_domains),
        now=ctx.clock,
        progress=progress,
        committed=lambda name: ctx.advance_cursor(SOURCE, name, started),
    )
    log.info(
        "HubSpot related: %s in %d requests",
        {o: r.records for o, r in report.objects.items()},
        report.requests,
    )
    return report


def _metrics(section: HubSpotSource) -> list[tuple[str, str]]:
    # as the record system its metrics are the accounts' own: no clash to report ("")
    where = "" if section.record_system else "sources.hubspot.metrics"
    return [(m, where) for m in section.metrics] + [
        (m, f"sources.hubspot.related ({obj})") for obj in section.related for m in METRICS[obj]
    ]


def _check(ctx: SyncContext) -> list[str]:
    client = ctx.client(SOURCE)
    owners = client.call("list owners", client.sdk.crm.owners.owners_api.get_page, limit=1)
    lines = [f"HubSpot reachable ({len(owners.results or [])} owner read)"]
    hubspot = ctx.sources.hubspot
    if hubspot.write_back.enabled:
        missing = missing_properties(
            client, hubspot.write_back, hubspot.override_properties, ctx.churn_roles
        )
        if missing:
            raise ConfigError(
                f"HubSpot company properties missing: {', '.join(missing)} — run "
                "`healthscore setup-crm` to create them (the health fields are written there)"
            )
        lines.append("HubSpot company properties present")
    return lines


def _setup(ctx: SyncContext, config: Any, dry_run: bool) -> list[str]:
    hubspot = ctx.sources.hubspot
    lines = []
    if hubspot.write_back.enabled:
        if dry_run:
            return ["dry run: HubSpot properties not checked or created"]
        created = ensure_properties(
            ctx.client(SOURCE), hubspot.write_back, hubspot.override_properties, ctx.churn_roles
        )
        lines.append(
            "HubSpot company properties ready"
            + (f" (created: {', '.join(created)})" if created else "")
        )
    task_rules = any(a.task is not None for r in config.active_rules for a in r.actions)
    if hubspot.record_system and task_rules and not dry_run:
        key = config.actions.hubspot_task_key_property
        made = ensure_task_key_property(ctx.client(SOURCE), key)
        lines.append(
            f"HubSpot task property {key} {'created' if made else 'present'} (the "
            "tasks' idempotency key)"
        )
    return lines


def _record_url(ctx: SyncContext, account_id: str) -> str | None:
    hubspot = ctx.sources.hubspot
    if hubspot.portal_id is None:
        return None
    return hubspot.record_url.format(portal_id=hubspot.portal_id, id=account_id)


def _contact(record: Mapping[str, Any]) -> Contact | None:
    email = record.get("email")
    if not email or "@" not in str(email):
        return None
    address = str(email).strip().lower()
    return Contact(
        str(record.get("hs_object_id") or address),
        address,
        str(record.get("firstname") or ""),
        str(record.get("jobtitle") or ""),
        truthy(record.get("hs_email_optout")),
        SOURCE,
    )


def _select(
    ctx: SyncContext, desired: dict[str, dict[str, Any]], grades: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The matched companies' values, with HubSpot's grade options (red, yellow …)."""
    matched = {a for _, _, a in ctx.store.account_keys(COMPANY_KEY)}
    return {a: {**v, "grade": grades[a]} for a, v in desired.items() if a in matched}


def _writer(ctx: SyncContext) -> HubSpotWriter:
    source = ctx.sources.hubspot
    company_of = {a: v for _, v, a in ctx.store.account_keys(COMPANY_KEY)}
    return HubSpotWriter(ctx.client(SOURCE), source.write_back, company_of, source.batch_size)


def _tasks(ctx: SyncContext, actions: Any) -> HubSpotTasks:
    client = ctx.client(SOURCE)
    owners = {(o.email or "").lower(): o.id for o in pull_owners(client).values() if o.email}
    return HubSpotTasks(client, actions.hubspot_task_key_property, owners)


CRM = Crm(
    name=SOURCE,
    summary_prefix="hubspot",
    write_back=lambda sources: sources.hubspot.enabled and sources.hubspot.write_back.enabled,
    select=_select,
    writer=_writer,
    record_system=lambda sources: sources.hubspot.record_system,
    record_url=_record_url,
    task_backend=_tasks,
    contacts=("contacts", _contact),
    setup=_setup,
    renewal_lost_metric="hubspot_renewal_lost_at",
)


def _make_client(ctx: SyncContext) -> HubSpotClient:
    return HubSpotClient(ctx.settings, requests_per_10s=ctx.sources.hubspot.requests_per_10s)


SOURCE_ENTRY = Source(
    name=SOURCE,
    config=HubSpotSource,
    default=HubSpotSource(),
    sync=sync_step,
    describe="companies and their deals, tickets and contacts",
    make_client=_make_client,
    metrics=_metrics,
    check=_check,
    crm=CRM,
    cycle_summary=lambda report: {
        "hubspot_companies_pulled": report.records,
        "hubspot_companies_matched": report.matched,
    },
)

EMAIL_ENTRY = Source(
    name=EMAIL,
    config=HubSpotEmailSource,
    default=HubSpotEmailSource(),
    sync=email_step(EMAIL, "events", sync_hubspot_email, SOURCE, "hubspot marketing email events"),
    after=(SOURCE,),
    describe="marketing email events (opens, clicks, bounces)",
    metrics=email_metrics(EMAIL),
)
