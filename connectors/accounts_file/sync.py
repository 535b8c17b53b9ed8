"""Accounts from a CSV file, for a product without a CRM (``sources.accounts_file``).

One row per account: an id, a name, a start date and any other columns, kept as account
attributes (plan, seats, region …) that segments and ratios can read. Importing is a full
sync: accounts of an earlier import that are no longer in the file are marked deleted. A
malformed row (no id, a bad start date, an id seen twice) is logged with its line and skipped;
the rest goes on.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from connectors.accounts_file.config import AccountsFile
from healthscore.core.errors import ConfigError
from store import AccountRow, Store

log = logging.getLogger(__name__)

CRM = "file"


@dataclass
class ImportReport:
    records: int = 0
    skipped: int = 0
    deleted: int = 0
    skipped_lines: list[str] = field(default_factory=list)


def read_accounts(
    spec: AccountsFile, path: Path | None = None, report: ImportReport | None = None
) -> list[AccountRow]:
    """The file's accounts (``path`` overrides the configured one)."""
    p = path or spec.path
    report = report if report is not None else ImportReport()
    try:
        handle = p.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{p}: accounts file not found (sources.accounts_file.path)") from None
    rows: list[AccountRow] = []
    seen: set[str] = set()
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        needed = [spec.id_column, spec.name_column] + (
            [spec.start_column] if spec.start_column else []
        )
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ConfigError(
                f"{p}:1: accounts file has no column {missing[0]!r} (columns: "
                f"{', '.join(columns) or 'none'})"
            )
        keep = [c for c in columns if c not in (spec.id_column, spec.name_column)]
        if spec.attributes is not None:
            absent = [c for c in spec.attributes if c not in columns]
            if absent:
                raise ConfigError(
                    f"{p}:1: sources.accounts_file.attributes names {absent[0]!r}"
                    f", which the file does not have"
                )
            keep = [c for c in keep if c in spec.attributes or c == spec.start_column]
        for record in reader:
            line = reader.line_num
            account_id = (record.get(spec.id_column) or "").strip()
            problem = None
            if not account_id:
                problem = f"no {spec.id_column}"
            elif account_id in seen:
                problem = f"{spec.id_column} {account_id!r} appears twice"
            elif spec.start_column:
                start = (record.get(spec.start_column) or "").strip()
                try:
                    if start:
                        date.fromisoformat(start[:10])
                except ValueError:
                    problem = f"{spec.start_column} is not a date (YYYY-MM-DD): {start!r}"
            if problem is not None:
                report.skipped += 1
                report.skipped_lines.append(f"{p}:{line}")
                log.warning("%s:%d: skipped account %r: %s", p, line, account_id or "?", problem)
                continue
            seen.add(account_id)
            attributes = {c: (record.get(c) or "").strip() or None for c in keep}
            name = (record.get(spec.name_column) or "").strip() or account_id
            rows.append(AccountRow(id=account_id, crm=CRM, name=name, attributes=attributes))
    report.records = len(rows)
    return rows


def import_accounts(
    store: Store, spec: AccountsFile, path: Path | None = None, *, dry_run: bool = False
) -> ImportReport:
    """Upsert the file's accounts; mark earlier file accounts missing from it deleted."""
    report = ImportReport()
    rows = read_accounts(spec, path, report)
    present = {r.id for r in rows}
    gone = [a.id for a in store.accounts() if a.crm == CRM and a.id not in present]
    report.deleted = len(gone)
    if not dry_run:
        store.upsert_accounts(rows)
        if gone:
            store.mark_accounts_deleted(gone)
    log.info(
        "accounts file %s: %d accounts, %d skipped, %d deleted",
        path or spec.path,
        report.records,
        report.skipped,
        report.deleted,
    )
    return report
