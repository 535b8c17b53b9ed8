"""Salesforce's registry entry: the client, the sync step, `check`, and its CRM role (health
fields written back through sObject Collections, CSM tasks, Contacts for tech-touch email)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.contract import Crm, Source, SyncContext
from connectors.outbound import Contact, truthy
from connectors.salesforce.accounts import check_fields
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.config import SalesforceSource
from connectors.salesforce.csm_tasks import SalesforceTasks
from connectors.salesforce.related import RELATED
from connectors.salesforce.sync import SOURCE, sync_step
from connectors.salesforce.writer import SalesforceWriter


def _metrics(section: SalesforceSource) -> list[tuple[str, str]]:
    named = [(m, "sources.salesforce.metrics") for m in section.metrics]
    return named + [
        (m, f"sources.salesforce.related ({obj})")
        for obj in section.related
        for m in RELATED[obj].metrics
    ]


def _check(ctx: SyncContext) -> list[str]:
    client = ctx.client(SOURCE)
    check_fields(
        client.describe("Account"), ctx.sources.salesforce, ctx.config_path, ctx.churn_roles
    )
    return [f"Salesforce {client.instance_url}: Account fields present"]


def _setup(ctx: SyncContext, config: Any, dry_run: bool) -> list[str]:
    _check(ctx)
    return ["Salesforce Account has every configured field"]


def _record_url(ctx: SyncContext, account_id: str) -> str | None:
    base = ctx.settings.salesforce_instance_url
    if not base:
        return None
    return ctx.sources.salesforce.record_url.format(instance_url=base.rstrip("/"), id=account_id)


def _contact(record: Mapping[str, Any]) -> Contact | None:
    email = record.get("Email")
    if not email or "@" not in str(email):
        return None
    address = str(email).strip().lower()
    return Contact(
        str(record.get("Id") or address),
        address,
        str(record.get("FirstName") or ""),
        str(record.get("Role__c") or record.get("Title") or ""),
        truthy(record.get("HasOptedOutOfEmail")),
        SOURCE,
    )


def _writer(ctx: SyncContext) -> SalesforceWriter:
    section = ctx.sources.salesforce
    return SalesforceWriter(ctx.client(SOURCE), section.write_back, section.batch_size)


CRM = Crm(
    name=SOURCE,
    summary_prefix="crm",
    write_back=lambda sources: sources.salesforce.enabled,
    select=lambda ctx, desired, grades: desired,
    writer=_writer,
    record_system=lambda sources: sources.salesforce.enabled,
    record_url=_record_url,
    task_backend=lambda ctx, actions: SalesforceTasks(
        ctx.client(SOURCE), actions.salesforce_task_key_field
    ),
    contacts=("Contact", _contact),
    setup=_setup,
    renewal_lost_metric="renewal_lost_at",
)

SOURCE_ENTRY = Source(
    name=SOURCE,
    config=SalesforceSource,
    default=SalesforceSource(enabled=False, metrics={}),
    sync=sync_step,
    describe="Accounts and their related objects",
    make_client=lambda ctx: SalesforceClient(ctx.settings),
    metrics=_metrics,
    check=_check,
    crm=CRM,
    cycle_summary=lambda report: {
        "accounts_pulled": report.records,
        "records_skipped": report.skipped,
    },
)
