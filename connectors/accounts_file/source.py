"""The accounts-file registry entry: accounts from a CSV file, the record system when there
is no CRM (re-imported on its schedule; accounts gone from the file are marked deleted)."""

from __future__ import annotations

from connectors.accounts_file.config import AccountsFile
from connectors.accounts_file.sync import ImportReport, import_accounts
from connectors.contract import Source, SyncContext, SyncOptions

NAME = "accounts_file"


def sync_step(ctx: SyncContext, opts: SyncOptions) -> ImportReport:
    return import_accounts(
        ctx.store, ctx.sources.accounts_file, opts.extra.get("path"), dry_run=opts.dry_run
    )


SOURCE_ENTRY = Source(
    name=NAME,
    config=AccountsFile,
    default=None,  # absent: off
    sync=sync_step,
    describe="accounts from a CSV file (no CRM)",
    dry_run=True,
    cycle_summary=lambda report: {
        "accounts_pulled": report.records,
        "records_skipped": report.skipped,
    },
)
