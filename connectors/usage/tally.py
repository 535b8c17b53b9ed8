"""What a usage load did: rows read, values kept, and every skipped row counted by reason.

Kept apart from the row checks (:mod:`connectors.usage.rows`) so the file reader can count a
row the CSV parser itself dropped. Every message is built from :func:`printable` text: a value
from the data is shown escaped and shortened, never whole or raw.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from healthscore.core.text import printable
from store.models import UnmatchedRecord

log = logging.getLogger(__name__)

MAX_PROBLEMS = 200  # kept for the summary; every problem is counted
MAX_LOGGED = 50  # logged one by one per load; the rest are summarised
SHOWN = 60  # characters of a value from the data shown in a message
RECORD_ID_CHARS = int(UnmatchedRecord.__table__.c.record_id.type.length)  # 128

# skip reasons, in the order a row is checked (a row is reported once, for its first fault)
BAD_ROW = "bad_row"  # wrong number of columns (CSV)
MISSING_ACCOUNT = "missing_account"
ID_TOO_LONG = "id_too_long"  # an account id or metric name longer than the store keeps
MISSING_DATE = "missing_date"
BAD_DATE = "bad_date"
MISSING_METRIC = "missing_metric"
BAD_METRIC = "bad_metric"  # a metric name with control characters
MISSING_VALUE = "missing_value"
BAD_VALUE = "bad_value"
NEGATIVE_VALUE = "negative_value"  # below 0 for a metric not in allow_negative
UNKNOWN_ACCOUNT = "unknown_account"
AMBIGUOUS_ACCOUNT = "ambiguous_account"


def quoted(value: object) -> str:
    """A value from the data as a message shows it: quoted, escaped, shortened."""
    return f"'{printable(value, SHOWN)}'"


@dataclass(frozen=True)
class Problem:
    where: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.detail}"


@dataclass
class UsageTally:
    """What a load did, row by row reason (one per load, summed over its files or queries)."""

    rows_read: int = 0
    values: int = 0  # good values handed to the store
    skipped: Counter[str] = field(default_factory=Counter)  # rows (wide: cells) by reason
    empty_cells: int = 0  # wide form: a metric left blank that day (not an error)
    ignored_metrics: Counter[str] = field(default_factory=Counter)  # long: not in `metrics`
    unmatched: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → reason, detail
    unmatched_rows: Counter[str] = field(default_factory=Counter)  # id → rows skipped
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    first_day: date | None = None
    last_day: date | None = None

    def report(self, where: str, reason: str, detail: str, count: int = 1) -> None:
        """Count ``count`` rows skipped for ``reason``; keep and log the problem."""
        self.skipped[reason] += count
        problem = Problem(printable(where, 200), reason, printable(detail, 400))
        self.note(problem)
        if self.problems_total <= MAX_LOGGED:
            log.warning("usage row skipped: %s", problem)
        elif self.problems_total == MAX_LOGGED + 1:
            log.warning("more usage rows skipped; the summary counts them by reason")

    def note(self, problem: Problem) -> None:
        """Keep a problem for the summary (a whole file's is logged by its caller)."""
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def see_days(self, days: pa.Array) -> None:
        if len(days) == 0:
            return
        low, high = pc.min_max(days).values()
        low, high = low.as_py(), high.as_py()
        self.first_day = low if self.first_day is None else min(self.first_day, low)
        self.last_day = high if self.last_day is None else max(self.last_day, high)

    def merge(self, part: UsageTally) -> None:
        """Add another tally (one file's) to this one (the load's)."""
        self.rows_read += part.rows_read
        self.values += part.values
        self.skipped.update(part.skipped)
        self.empty_cells += part.empty_cells
        self.ignored_metrics.update(part.ignored_metrics)
        for key, why in part.unmatched.items():
            self.unmatched.setdefault(key, why)
        self.unmatched_rows.update(part.unmatched_rows)
        self.problems.extend(part.problems[: max(0, MAX_PROBLEMS - len(self.problems))])
        self.problems_total += part.problems_total
        for day in (part.first_day, part.last_day):
            if day is not None:
                self.first_day = day if self.first_day is None else min(self.first_day, day)
                self.last_day = day if self.last_day is None else max(self.last_day, day)

    def summary(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "values_loaded": self.values,
            "skipped": dict(sorted(self.skipped.items())),
            "empty_cells": self.empty_cells,
            "ignored_metrics": _shown(sorted(self.ignored_metrics.items())),
            "unmatched_accounts": len(self.unmatched),
            "unmatched_rows_by_id": _shown(self.unmatched_rows.most_common(20)),
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "problems": [str(p) for p in self.problems],
            "problems_not_listed": max(0, self.problems_total - len(self.problems)),
        }


def _shown(counts: list[tuple[str, int]]) -> dict[str, int]:
    """Counts by a value from the data, keyed by the value as it may be shown."""
    out: dict[str, int] = {}
    for key, count in counts:
        shown = printable(key, SHOWN)
        out[shown] = out.get(shown, 0) + count
    return out


def storable_id(value: str) -> str:
    """An unmatched id as the store keeps it: the id itself when it fits its column and holds
    no control character (PostgreSQL refuses a NUL), else as messages show it — it is listed
    for a person (``sources --unmatched``), never matched back."""
    if len(value) <= RECORD_ID_CHARS and value.isprintable():
        return value
    limit = SHOWN
    while len(shown := printable(value, limit)) > RECORD_ID_CHARS:  # escapes widen it
        limit //= 2
    return shown
