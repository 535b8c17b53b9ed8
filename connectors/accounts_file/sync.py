"""Accounts from a CSV file, for a product without a CRM (``sources.accounts_file``).

One row per account: an id, a name, a start date and any other columns, kept as account
attributes (plan, seats, region …) that segments and ratios can read. Importing is a full
sync: accounts of an earlier import that are no longer in the file are marked deleted. A
malformed row (no id, an id or name longer than the store keeps, a bad start date, an id seen
twice) is logged with its line and skipped; the rest goes on. Values from the file are shown
escaped and shortened (:func:`printable`). A file that is not UTF-8 is refused as a whole,
with one message saying what it looks like (a UTF-16 export, Latin-1 bytes).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from connectors.accounts_file.config import AccountsFile
from healthscore.core.errors import ConfigError
from healthscore.core.text import printable, utf8_problem
from store import Account, AccountRow, Store

log = logging.getLogger(__name__)

CRM = "file"
ID_CHARS = int(Account.__table__.c.id.type.length)  # 64: the longest account id the store keeps
NAME_CHARS = int(Account.__table__.c.name.type.length)  # 255
MAX_PROBLEMS = 200  # kept for the report; every skipped row is counted and logged
SHOWN = 60  # characters of a value from the file shown in a message
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class ImportReport:
    records: int = 0
    skipped: int = 0
    deleted: int = 0
    skipped_lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong", the first


def _quoted(value: str) -> str:
    return f"'{printable(value, SHOWN)}'"


def _utf8_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _row_problem(
    spec: AccountsFile, record: dict[str, str | None], account_id: str, seen: set[str]
) -> str | None:
    """What makes this row unusable, or None."""
    if not account_id:
        return f"no {spec.id_column}"
    if len(account_id) > ID_CHARS:
        return (
            f"{spec.id_column} of {len(account_id):,} characters, more than {ID_CHARS}: "
            f"{_quoted(account_id)}"
        )
    if _CONTROL.search(account_id):
        return f"{spec.id_column} {_quoted(account_id)} has control characters"
    if account_id in seen:
        return f"{spec.id_column} {_quoted(account_id)} appears twice"
    name = (record.get(spec.name_column) or "").strip()
    if len(name) > NAME_CHARS:
        return f"{spec.name_column} of {len(name):,} characters, more than {NAME_CHARS}"
    if "\x00" in name:  # PostgreSQL text cannot hold a NUL
        return f"{spec.name_column} {_quoted(name)} has a NUL character"
    if spec.start_column:
        start = (record.get(spec.start_column) or "").strip()
        try:
            if start:
                date.fromisoformat(start[:10])
        except ValueError:
            return f"{spec.start_column} is not a date (YYYY-MM-DD): {_quoted(start)}"
    return None


def read_accounts(
    spec: AccountsFile, path: Path | None = None, report: ImportReport | None = None
) -> list[AccountRow]:
    """The file's accounts (``path`` overrides the configured one)."""
    p = path or spec.path
    shown = printable(p, 300)
    report = report if report is not None else ImportReport()
    try:
        verdict = utf8_problem(_utf8_chunks(p))
        handle = p.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: accounts file not found (sources.accounts_file.path)"
        ) from None
    if verdict:
        handle.close()
        raise ConfigError(f"{shown}: {verdict}")
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
            has = ", ".join(printable(c, SHOWN) for c in columns[:50])
            raise ConfigError(
                f"{shown}:1: accounts file has no column {missing[0]!r} (columns: {has or 'none'})"
            )
        keep = [c for c in columns if c not in (spec.id_column, spec.name_column)]
        if spec.attributes is not None:
            absent = [c for c in spec.attributes if c not in columns]
            if absent:
                raise ConfigError(
                    f"{shown}:1: sources.accounts_file.attributes names {absent[0]!r}"
                    f", which the file does not have"
                )
            keep = [c for c in keep if c in spec.attributes or c == spec.start_column]
        try:
            for record in reader:
                line = reader.line_num
                account_id = (record.get(spec.id_column) or "").strip()
                problem = _row_problem(spec, record, account_id, seen)
                if problem is not None:
                    where = f"{shown}:{line}"
                    report.skipped += 1
                    report.skipped_lines.append(where)
                    if len(report.problems) < MAX_PROBLEMS:
                        report.problems.append(f"{where}: {problem}")
                    who = _quoted(account_id) if account_id else "?"
                    log.warning("%s: skipped account %s: %s", where, who, problem)
                    continue
                seen.add(account_id)
                attributes = {c: (record.get(c) or "").strip() or None for c in keep}
                name = (record.get(spec.name_column) or "").strip() or account_id
                rows.append(AccountRow(id=account_id, crm=CRM, name=name, attributes=attributes))
        except csv.Error as exc:  # e.g. a field longer than the csv module reads
            raise ConfigError(
                f"{shown}:{reader.line_num}: not a readable CSV file ({printable(exc, 200)})"
            ) from None
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
        printable(path or spec.path, 300),
        report.records,
        report.skipped,
        report.deleted,
    )
    return report
