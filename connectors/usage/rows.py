"""Usage rows from any source → clean ``(account_id, metric, day, value)`` Arrow tables.

The file drop and the warehouse both hand over Arrow record batches (text columns from a CSV,
typed ones from Parquet or SQL) and a way to name a row's place (``usage.csv:17``). One
:class:`Normalizer` checks each batch column-wise — missing ids, unparsable dates and numbers,
unknown accounts — and returns the good values; every bad row is counted by reason and
reported with its place, and the rest goes on. Only a batch holding a malformed number falls
back to a per-value loop, to say which one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.identity import ACCOUNT, DOMAIN, IdentityIndex, Match
from connectors.usage.config import UsageMapping

log = logging.getLogger(__name__)

OUT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("metric", pa.string()),
        ("day", pa.date32()),
        ("value", pa.float64()),
    ]
)
MAX_PROBLEMS = 200  # kept for the summary; every problem is counted
MAX_LOGGED = 50  # logged one by one per load; the rest are summarised

# skip reasons, in the order a row is checked (a row is reported once, for its first fault)
BAD_ROW = "bad_row"  # wrong number of columns (CSV)
MISSING_ACCOUNT = "missing_account"
MISSING_DATE = "missing_date"
BAD_DATE = "bad_date"
MISSING_METRIC = "missing_metric"
MISSING_VALUE = "missing_value"
BAD_VALUE = "bad_value"
UNKNOWN_ACCOUNT = "unknown_account"
AMBIGUOUS_ACCOUNT = "ambiguous_account"

Locate = Callable[[int], str]  # row index within the batch → "file:line"


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
        self.skipped[reason] += count
        self.problems_total += 1
        problem = Problem(where, reason, detail)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        if self.problems_total <= MAX_LOGGED:
            log.warning("usage row skipped: %s", problem)
        elif self.problems_total == MAX_LOGGED + 1:
            log.warning("more usage rows skipped; the summary counts them by reason")

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
            "ignored_metrics": dict(sorted(self.ignored_metrics.items())),
            "unmatched_accounts": len(self.unmatched),
            "unmatched_rows_by_id": dict(self.unmatched_rows.most_common(20)),
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "problems": [str(p) for p in self.problems],
            "problems_not_listed": max(0, self.problems_total - len(self.problems)),
        }


class AccountResolver:
    """The account a usage row's id belongs to, each distinct id resolved once per load."""

    def __init__(self, match_by: str, identity: IdentityIndex) -> None:
        self.match_by = match_by
        self.identity = identity
        self._cache: dict[str, Match] = {}

    def resolve(self, value: str) -> Match:
        found = self._cache.get(value)
        if found is None:
            found = self._cache[value] = self._resolve(value)
        return found

    def matched_values(self) -> list[str]:
        """The ids seen so far that found their account."""
        return [v for v, m in self._cache.items() if m.matched]

    def _resolve(self, value: str) -> Match:
        if self.match_by == DOMAIN:
            return self.identity.resolve(domains=[value])
        kind = ACCOUNT if self.match_by == "account" else self.match_by
        match = self.identity.resolve(external=[(kind, value)])
        if match.matched:
            return match
        what = "account id" if kind == ACCOUNT else f"{kind} key"
        return Match(None, "", "no_match", f"no account with {what} {value!r}")


def _text(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as trimmed text (nulls stay null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return pc.utf8_trim_whitespace(col)


def _blank(col: pa.Array) -> np.ndarray:
    """True where a text column is null or empty."""
    return pc.fill_null(pc.equal(pc.utf8_length(col), 0), True).to_numpy(zero_copy_only=False)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Normalizer:
    """Turns one source's batches into clean usage tables, tallying what it skips."""

    def __init__(
        self,
        mapping: UsageMapping,
        resolver: AccountResolver,
        tally: UsageTally,
        reported_ids: set[str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.resolver = resolver
        self.tally = tally
        # unknown ids already reported (shared by a load's files: one report per id)
        self._reported_ids = set() if reported_ids is None else reported_ids

    def missing_columns(self, names: list[str]) -> list[str]:
        return [c for c in self.mapping.columns() if c not in names]

    def normalize(self, batch: pa.RecordBatch | pa.Table, locate: Locate) -> pa.Table:
        """The good values of ``batch`` as an :data:`OUT_SCHEMA` table."""
        m = self.mapping
        n = batch.num_rows
        self.tally.rows_read += n
        if n == 0:
            return OUT_SCHEMA.empty_table()
        ok = np.ones(n, dtype=bool)

        accounts_raw = _text(batch.column(m.account_column))
        self._fail(
            ok,
            _blank(accounts_raw),
            MISSING_ACCOUNT,
            locate,
            lambda i: f"no value in column {m.account_column!r}",
        )

        days = self._days(batch.column(m.date_column), ok, locate)
        if m.form == "long":
            metrics, values = self._long(batch, ok, locate)
            accounts = self._accounts(accounts_raw, ok, locate)
            out = self._table(accounts, metrics, days, values, ok)
        else:
            accounts = self._accounts(accounts_raw, ok, locate)
            out = self._wide(batch, accounts, days, ok, locate)
        self.tally.values += out.num_rows
        self.tally.see_days(out.column("day"))
        return out

    # -- checks, column by column -------------------------------------------------------------
    def _fail(
        self,
        ok: np.ndarray,
        bad: np.ndarray,
        reason: str,
        locate: Locate,
        detail: Callable[[int], str],
    ) -> None:
        """Report the rows in ``bad`` that were still good, and mark them skipped."""
        fresh = np.flatnonzero(bad & ok)
        for i in fresh:
            self.tally.report(locate(int(i)), reason, detail(int(i)))
        ok[fresh] = False

    def _days(self, col: pa.Array | pa.ChunkedArray, ok: np.ndarray, locate: Locate) -> pa.Array:
        m = self.mapping
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            days = pc.cast(col, pa.date32())
            self._fail(
                ok,
                days.is_null().to_numpy(zero_copy_only=False),
                MISSING_DATE,
                locate,
                lambda i: f"no value in column {m.date_column!r}",
            )
            return days
        raw = _text(col)
        self._fail(
            ok, _blank(raw), MISSING_DATE, locate, lambda i: f"no value in column {m.date_column!r}"
        )
        days = _strict_dates(raw, m.date_format)
        self._fail(
            ok,
            days.is_null().to_numpy(zero_copy_only=False),
            BAD_DATE,
            locate,
            lambda i: f"{_short(raw[i].as_py())} is not a date ({m.date_format})",
        )
        return days

    def _numbers(
        self, col: pa.Array | pa.ChunkedArray, label: str
    ) -> tuple[pa.Array, np.ndarray, np.ndarray, Callable[[int], str]]:
        """(float64 values, blank mask, bad mask, detail of a bad one)."""
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_decimal(col.type)
            or pa.types.is_boolean(col.type)
        ):
            values = pc.cast(col, pa.float64())
            blank = values.is_null().to_numpy(zero_copy_only=False)
            finite = pc.fill_null(pc.is_finite(values), True).to_numpy(zero_copy_only=False)
            return (
                values,
                blank,
                ~finite,
                lambda i: f"{label}: {values[i].as_py()} is not a finite number",
            )
        raw = _text(col)
        blank = _blank(raw)
        try:
            values = pc.cast(raw, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pa.array(_floats(raw.to_pylist()), type=pa.float64())
        bad = values.is_null().to_numpy(zero_copy_only=False) & ~blank
        bad |= ~pc.fill_null(pc.is_finite(values), True).to_numpy(zero_copy_only=False)
        return values, blank, bad, lambda i: f"{label}: {_short(raw[i].as_py())} is not a number"

    def _long(
        self, batch: pa.RecordBatch | pa.Table, ok: np.ndarray, locate: Locate
    ) -> tuple[pa.Array, pa.Array]:
        """(metric names, values); rows of metrics not in ``metrics`` are counted, not kept."""
        m = self.mapping
        metrics = _text(batch.column(m.metric_column))
        self._fail(
            ok,
            _blank(metrics),
            MISSING_METRIC,
            locate,
            lambda i: f"no value in column {m.metric_column!r}",
        )
        keep = np.ones(len(metrics), dtype=bool)
        if m.metrics:
            names = pa.array(list(m.metrics))
            idx = pc.index_in(metrics, value_set=names)
            known = idx.is_valid().to_numpy(zero_copy_only=False)
            unlisted = ok & ~known
            if unlisted.any():
                self.tally.ignored_metrics.update(metrics.filter(pa.array(unlisted)).to_pylist())
            keep &= known
            metrics = pc.take(pa.array(list(m.metrics.values())), idx)
        values, blank, bad, detail = self._numbers(
            batch.column(m.value_column), f"column {m.value_column!r}"
        )
        self._fail(
            ok,
            blank & keep,
            MISSING_VALUE,
            locate,
            lambda i: f"no value in column {m.value_column!r}",
        )
        self._fail(ok, bad & keep, BAD_VALUE, locate, detail)
        ok &= keep
        return metrics, values

    def _accounts(self, raw: pa.Array, ok: np.ndarray, locate: Locate) -> pa.Array:
        """Account ids for every row (null where unknown); unknown ones are reported once."""
        candidates = raw.filter(pa.array(ok))
        uniques = pc.unique(candidates)
        names = uniques.to_pylist()
        matches = [self.resolver.resolve(v) for v in names]
        ids = pa.array([mt.account_id for mt in matches], type=pa.string())
        accounts = pc.take(ids, pc.index_in(raw, value_set=uniques))
        unknown = accounts.is_null().to_numpy(zero_copy_only=False) & ok
        if not unknown.any():
            return accounts
        why = {v: mt for v, mt in zip(names, matches, strict=True) if not mt.matched}
        counts = pc.value_counts(raw.filter(pa.array(unknown)))
        for value, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            mt = why[value]
            reason = AMBIGUOUS_ACCOUNT if mt.reason == "ambiguous" else UNKNOWN_ACCOUNT
            self.tally.skipped[reason] += count
            self.tally.unmatched.setdefault(value, (mt.reason, mt.detail))
            self.tally.unmatched_rows[value] += count
            if value not in self._reported_ids:  # each id once, where it first appears
                self._reported_ids.add(value)
                self.tally.report(locate(pc.index(raw, value).as_py()), reason, mt.detail, count=0)
        ok[unknown] = False
        return accounts

    def _wide(
        self,
        batch: pa.RecordBatch | pa.Table,
        accounts: pa.Array,
        days: pa.Array,
        ok: np.ndarray,
        locate: Locate,
    ) -> pa.Table:
        parts = []
        for column, metric in self.mapping.metrics.items():
            values, blank, bad, detail = self._numbers(batch.column(column), f"column {column!r}")
            self.tally.empty_cells += int((blank & ok).sum())
            for i in np.flatnonzero(bad & ok):
                self.tally.report(locate(int(i)), BAD_VALUE, detail(int(i)))
            keep = ok & ~blank & ~bad
            names = pa.array(np.full(len(keep), metric, dtype=object), type=pa.string())
            parts.append(self._table(accounts, names, days, values, keep))
        return pa.concat_tables(parts) if parts else OUT_SCHEMA.empty_table()

    @staticmethod
    def _table(
        accounts: pa.Array, metrics: pa.Array, days: pa.Array, values: pa.Array, keep: np.ndarray
    ) -> pa.Table:
        mask = pa.array(keep)
        return pa.Table.from_arrays(
            [accounts.filter(mask), metrics.filter(mask), days.filter(mask), values.filter(mask)],
            schema=OUT_SCHEMA,
        )


def _strict_dates(raw: pa.Array, fmt: str) -> pa.Array:
    """Text → date32 by ``fmt``; null where it is no date.

    A batch holds few distinct days: each distinct text is parsed once (formatting back, the
    costly part, is then done for a handful of values, not for every row).
    """
    if len(raw) == 0:
        return pa.array([], type=pa.date32())
    encoded = pc.dictionary_encode(raw)
    return pc.take(_parse_dates(encoded.dictionary, fmt), encoded.indices)


def _parse_dates(raw: pa.Array, fmt: str) -> pa.Array:
    """:func:`_strict_dates` for every value of ``raw``.

    Arrow's strptime rolls impossible days over (2026-02-30 → 2026-03-02): each parsed value
    is formatted back, and the few that do not read the same (also valid unpadded ones such
    as 2026-3-1) are checked by Python's strptime.
    """
    parsed = pc.strptime(raw, format=fmt, unit="s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, format=fmt), raw)
    suspect = np.flatnonzero(~pc.fill_null(same, True).to_numpy(zero_copy_only=False))
    if len(suspect):
        invalid = np.zeros(len(raw), dtype=bool)
        for i in suspect:
            try:
                datetime.strptime(raw[int(i)].as_py(), fmt)
            except ValueError:
                invalid[i] = True
        if invalid.any():
            parsed = pc.if_else(pa.array(invalid), pa.scalar(None, parsed.type), parsed)
    return pc.cast(parsed, pa.date32())


def _floats(texts: list[str | None]) -> list[float | None]:
    out: list[float | None] = []
    for text in texts:
        try:
            value = float(text) if text else None
        except ValueError:
            value = None
        out.append(value if value is None or math.isfinite(value) else math.nan)
    return out
