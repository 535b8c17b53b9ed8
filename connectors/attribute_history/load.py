"""An attribute-history file into the store: ``account_id, date, attribute, value`` rows.

Each row says "from this date on, this account's attribute had this value" (seats, MRR,
plan, renewal date …). Values are typed as written: a number stays a number, an ISO date
(``2026-09-30``) a date, anything else text; an empty value clears the attribute from that
date on. Accounts are matched like usage rows (``match_by``: the account id, a domain or an
account key). A bad row — no account, a bad date, no attribute, an id longer than the store
keeps, control characters — is counted by reason, reported with its ``file:line`` and
skipped; an unknown account is reported once (at its first line) and its rows counted. A file
without one of the four columns, or not UTF-8, is refused as a whole with the reason.

Loading is idempotent: only rows that are new or carry another value are written, so the
same file loaded again changes nothing (and ``--dry-run`` says what a load would change).
"""

from __future__ import annotations

import csv
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from connectors.attribute_history.config import SOURCE, AttributeHistoryFile
from connectors.usage.load import identity_index
from connectors.usage.rows import AccountResolver
from connectors.usage.tally import Problem, quoted, storable_id
from healthscore.core.errors import ConfigError
from healthscore.core.text import printable, utf8_problem
from store import Store
from store.attribute_history import AttributeHistory, AttributeValue

log = logging.getLogger(__name__)

MAX_PROBLEMS = 200  # kept for the summary; every problem is counted
MAX_LOGGED = 50
ID_CHARS = 255  # the longest account key the store matches (a domain is at most 253)
ATTRIBUTE_CHARS = int(AttributeHistory.__table__.c.attribute.type.length)  # 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

Progress = Callable[[int], None]


@dataclass
class RowTally:
    """Rows skipped by reason, and the first problems with their place."""

    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0

    def report(self, where: str, reason: str, detail: str, count: int = 1) -> None:
        self.skipped[reason] += count
        problem = Problem(printable(where, 200), reason, printable(detail, 400))
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        if self.problems_total <= MAX_LOGGED:
            log.warning("attribute history row skipped: %s", problem)


@dataclass
class AttributeLoadReport:
    file: str
    dry_run: bool = False
    rows_read: int = 0
    values: int = 0  # good rows
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    tally: RowTally = field(default_factory=RowTally)
    unmatched: dict[str, tuple[str, str]] = field(default_factory=dict)
    unmatched_rows: Counter[str] = field(default_factory=Counter)
    attributes: Counter[str] = field(default_factory=Counter)  # good rows per attribute
    first_day: date | None = None
    last_day: date | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "file": self.file,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "values_loaded": self.values,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "attributes": dict(sorted(self.attributes.items())),
            "skipped": dict(sorted(self.tally.skipped.items())),
            "unmatched_accounts": len(self.unmatched),
            "unmatched_rows_by_id": {
                printable(k, 60): n for k, n in self.unmatched_rows.most_common(20)
            },
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "problems": [str(p) for p in self.tally.problems],
            "problems_not_listed": max(0, self.tally.problems_total - len(self.tally.problems)),
            "seconds": round(self.seconds, 3),
        }


def typed_value(raw: str) -> float | date | str | None:
    """A value as written: a finite number, an ISO date (a timestamp keeps its day), text;
    empty is None (the attribute cleared)."""
    text = raw.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        return text  # "inf", "nan": not a count anyone means
    return _day(text) or text


def _rows(spec: AttributeHistoryFile, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of the file, after the header and encoding checks."""
    shown = printable(path, 300)
    try:
        with path.open("rb") as raw:
            verdict = utf8_problem(iter(lambda: raw.read(1 << 20), b""))
    except FileNotFoundError:
        raise ConfigError(f"{shown}: attribute history file not found") from None
    if verdict:
        raise ConfigError(f"{shown}: {verdict}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in spec.columns() if c not in header]
        if missing:
            has = ", ".join(printable(c, 60) for c in header[:50])
            raise ConfigError(
                f"{shown}:1: attribute history file has no column {missing[0]!r} "
                f"(columns: {has or 'none'}); the header must name "
                f"{', '.join(spec.columns())}"
            )
        try:
            for record in reader:
                yield reader.line_num, record
        except csv.Error as exc:
            raise ConfigError(
                f"{shown}:{reader.line_num}: not a readable CSV file ({printable(exc, 200)})"
            ) from None


def _day(text: str) -> date | None:
    """An ISO date (a timestamp counts for its day), else None."""
    if not (_ISO_DATE.fullmatch(text) or _ISO_DATETIME.match(text)):
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _problem(spec: AttributeHistoryFile, account: str, attribute: str, day: str) -> tuple[str, str]:
    """(reason, detail) of what makes a row unusable before its account is looked up, or
    ("", "")."""
    if not account:
        return "missing_account", f"no {spec.account_column}"
    if len(account) > ID_CHARS:
        return "id_too_long", f"{spec.account_column} of {len(account):,} characters"
    if not day:
        return "missing_date", f"no {spec.date_column}"
    if _day(day) is None:
        return "bad_date", f"{spec.date_column} {quoted(day)} is not a date (YYYY-MM-DD)"
    if not attribute:
        return "missing_attribute", f"no {spec.attribute_column}"
    if len(attribute) > ATTRIBUTE_CHARS:
        return "id_too_long", f"{spec.attribute_column} of {len(attribute):,} characters"
    if _CONTROL.search(attribute) or _CONTROL.search(account):
        return "bad_attribute", f"{quoted(attribute)} or {quoted(account)} has control characters"
    return "", ""


def load_attribute_history(
    store: Store,
    spec: AttributeHistoryFile,
    path: Path | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> AttributeLoadReport:
    """Check every row of the file (``path``, else the configured one) and write the new or
    changed values (``dry_run``: count them, write nothing)."""
    started = time.perf_counter()
    target = path or spec.path
    if target is None:
        raise ConfigError(
            "no attribute history file: give one (healthscore load-attributes FILE) or set "
            "sources.attribute_history.path"
        )
    shown = printable(target, 300)
    report = AttributeLoadReport(str(target), dry_run=dry_run)
    resolver = AccountResolver(spec.match_by, identity_index(store))
    good: list[AttributeValue] = []
    pending = 0
    for line, record in _rows(spec, target):
        report.rows_read += 1
        pending += 1
        if progress and pending >= 10_000:
            progress(pending)
            pending = 0
        where = f"{shown}:{line}"
        if None in record.values() or None in record:  # fewer or more cells than the header
            report.tally.report(where, "bad_row", "not as many cells as the header has columns")
            continue
        account = record[spec.account_column].strip()
        attribute = record[spec.attribute_column].strip()
        day = record[spec.date_column].strip()
        reason, detail = _problem(spec, account, attribute, day)
        if reason:
            report.tally.report(where, reason, detail)
            continue
        value = typed_value(record[spec.value_column])
        if isinstance(value, str) and "\x00" in value:
            report.tally.report(where, "bad_value", f"{spec.value_column} has a NUL character")
            continue
        match = resolver.resolve(account)
        if not match.matched:
            reason = "ambiguous_account" if match.reason == "ambiguous" else "unknown_account"
            if account not in report.unmatched:
                report.unmatched[account] = (match.reason, match.detail)
                report.tally.report(where, reason, match.detail, count=0)
            report.tally.skipped[reason] += 1
            report.unmatched_rows[account] += 1
            continue
        when = _day(day)
        assert match.account_id is not None and when is not None
        good.append(AttributeValue(match.account_id, attribute, when, value))
        report.attributes[attribute] += 1
        report.first_day = when if report.first_day is None else min(report.first_day, when)
        report.last_day = when if report.last_day is None else max(report.last_day, when)
    if progress and pending:
        progress(pending)
    report.values = len(good)
    counts = store.write_attribute_history(good, dry_run=dry_run)
    report.inserted, report.updated, report.unchanged = (
        counts.inserted,
        counts.updated,
        counts.unchanged,
    )
    if not dry_run:
        unmatched = {
            storable_id(k): (r, printable(d, 400)) for k, (r, d) in report.unmatched.items()
        }
        matched = [storable_id(v) for v in resolver.matched_values()]
        store.record_unmatched(SOURCE, "attributes", unmatched, matched)
    report.seconds = time.perf_counter() - started
    log.info(
        "attribute history %s: %d rows read, %d values (%d new, %d changed, %d unchanged), "
        "skipped %s%s",
        shown,
        report.rows_read,
        report.values,
        report.inserted,
        report.updated,
        report.unchanged,
        dict(report.tally.skipped) or "none",
        " (dry run: nothing written)" if dry_run else "",
    )
    return report
