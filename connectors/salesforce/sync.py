"""The Salesforce sync step: Accounts since the cursor, then each configured related object.

Accounts become the store's accounts (with their signals, domains and any CSM override set in
the override fields); related records (Opportunities, Cases, …) are kept per account and
aggregated into signals for the accounts they touch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connectors.contract import SyncContext, SyncOptions
from connectors.identity import DOMAIN
from connectors.salesforce.accounts import SyncState, parse_sf_datetime, pull_accounts
from connectors.salesforce.related import RELATED, RelatedSync, account_of, pull_related
from store import SignalRow

log = logging.getLogger(__name__)

SOURCE = "salesforce"
ACCOUNT = "Account"


@dataclass
class SyncReport:
    records: int = 0
    skipped: int = 0
    deleted: int = 0
    signals_changed: int = 0
    cursor: str | None = None
    skipped_ids: list[str] = field(default_factory=list)
    overrides: dict[str, int] = field(default_factory=dict)  # CRM overrides applied/refused
    related: dict[str, RelatedSync] = field(default_factory=dict)


def sync_step(ctx: SyncContext, opts: SyncOptions) -> SyncReport:
    """Accounts, then the related objects (they map to the accounts just pulled)."""
    report = sync_accounts(ctx, full=opts.full, progress=opts.progress("salesforce Account"))
    for name in ctx.sources.salesforce.related:
        report.related.update(
            sync_related(
                ctx, full=opts.full, objects=[name], progress=opts.progress(f"salesforce {name}")
            )
        )
    return report


def sync_accounts(ctx: SyncContext, *, full: bool = False, progress: Any = None) -> SyncReport:
    """Pull Accounts changed since the cursor (all of them with ``full``)."""
    source = ctx.sources.salesforce
    store = ctx.store
    started = ctx.clock()
    state = SyncState(cursor=None)
    report = SyncReport()
    for page in pull_accounts(
        ctx.client(SOURCE),
        source,
        ctx.cursor(SOURCE, ACCOUNT, full=full),
        state,
        config_path=ctx.config_path,
        churn_roles=ctx.churn_roles,
    ):
        store.upsert_accounts(r.account for r in page)
        report.signals_changed += store.record_signals(s for r in page for s in r.signals)
        store.remember_crm_values(SOURCE, {r.account.id: r.crm_values for r in page})
        store.set_account_keys(DOMAIN, {r.account.id: [r.domain] if r.domain else [] for r in page})
        if source.override_fields is not None and ctx.overrides is not None:
            counts = ctx.overrides.record(
                SOURCE,
                {r.account.id: r.override for r in page if r.override is not None},
                ctx.clock(),
            )
            report.overrides = dict(Counter(report.overrides) + Counter(counts))
        if progress is not None:
            progress(len(page))
    report.cursor = ctx.advance_cursor(SOURCE, ACCOUNT, started)
    report.records, report.skipped, report.deleted = state.records, state.skipped, state.deleted
    report.skipped_ids = state.skipped_ids
    log.info(
        "Salesforce sync: %d records, %d skipped, %d signal changes",
        report.records,
        report.skipped,
        report.signals_changed,
    )
    return report


def sync_related(
    ctx: SyncContext, *, full: bool = False, progress: Any = None, objects: list[str] | None = None
) -> dict[str, RelatedSync]:
    """Pull each configured related object (or only ``objects``) and recompute the touched
    accounts' signals."""
    source = ctx.sources.salesforce
    store = ctx.store
    reports = {}
    # an account holding none of an object's signals yet (it has no such records, or it is
    # new) gets the aggregates of zero records: no open case is 0 cases_open, not missing
    live = {a.id for a in store.accounts()}
    held = {(a, m) for a, m, _, _ in store.latest_signals()}
    for name in objects if objects is not None else source.related:
        obj = RELATED[name]
        started = ctx.clock()
        state = RelatedSync()
        touched = {a for a in live if (a, obj.metrics[0]) not in held}
        for page in pull_related(
            ctx.client(SOURCE),
            obj,
            ctx.cursor(SOURCE, name, full=full),
            state,
            overlap=source.overlap,
            bulk_threshold=source.bulk_threshold,
        ):
            rows = []
            for raw in page:
                stamp = (
                    parse_sf_datetime(str(raw.get("SystemModstamp") or ""))
                    if raw.get("SystemModstamp")
                    else None
                )
                if not raw.get("Id") or stamp is None:
                    state.skipped_ids.append(str(raw.get("Id") or "<no Id>"))
                    log.warning(
                        "skipped Salesforce %s %s: no Id or SystemModstamp", name, raw.get("Id")
                    )
                    continue
                fields = {k: v for k, v in raw.items() if k != "attributes"}
                deleted = str(raw.get("IsDeleted")).lower() == "true"
                rows.append((str(raw["Id"]), account_of(obj, raw), fields, deleted, stamp))
            touched |= store.upsert_source_records(SOURCE, name, rows)
            if progress is not None:
                progress(len(page))
        now = ctx.clock()
        by_account = store.source_records(SOURCE, name, touched)
        store.record_signals(
            SignalRow(account_id, metric, value, now, SOURCE)
            for account_id, records in by_account.items()
            for metric, value in obj.aggregate(records, now).items()
        )
        ctx.advance_cursor(SOURCE, name, started)
        log.info(
            "Salesforce %s: %d records (%s), %d accounts recomputed",
            name,
            state.records,
            "Bulk 2.0" if state.bulk else "REST",
            len(touched),
        )
        reports[name] = state
    return reports
