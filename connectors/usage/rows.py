"""Usage rows from any source → clean ``(account_id, metric, day, value)`` Arrow tables.

The file drop and the warehouse both hand over Arrow record batches (text columns from a CSV,
typed ones from Parquet or SQL) and a way to name a row's place (``usage.csv:17``). One
:class:`Normalizer` checks each batch column-wise — missing or over-long ids, unparsable dates
and numbers, negative counts, unknown accounts — and returns the good values; every bad row is
counted by reason and reported with its place, and the rest goes on. The checks are Arrow
array operations; only the rows found bad are looked at one by one, to say what is wrong
(and a batch holding a malformed number falls back to a per-value parse, to say which one).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.identity import ACCOUNT, DOMAIN, IdentityIndex, Match
from connectors.usage import columns as cols
from connectors.usage.config import UsageMapping
from connectors.usage.tally import (
    AMBIGUOUS_ACCOUNT,
    BAD_DATE,
    BAD_METRIC,
    BAD_VALUE,
    ID_TOO_LONG,
    MISSING_ACCOUNT,
    MISSING_DATE,
    MISSING_METRIC,
    MISSING_VALUE,
    NEGATIVE_VALUE,
    UNKNOWN_ACCOUNT,
    UsageTally,
    quoted,
)
from store.models import AccountKey, UsageDaily

OUT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("metric", pa.string()),
        ("day", pa.date32()),
        ("value", pa.float64()),
    ]
)
# the longest text the store keeps: an account key (a domain is at most 253) and a metric name
ID_CHARS = int(AccountKey.__table__.c.value.type.length)  # 255
METRIC_CHARS = int(UsageDaily.__table__.c.metric.type.length)  # 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Locate = Callable[[int], str]  # row index within the batch → "file:line"


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
        return Match(None, "", "no_match", f"no account with {what} {quoted(value)}")


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

        accounts_raw = cols.text(batch.column(m.account_column))
        lengths = pc.utf8_length(accounts_raw)
        self._fail(
            ok,
            cols.empty(lengths),
            MISSING_ACCOUNT,
            locate,
            lambda i: f"no value in column {m.account_column!r}",
        )
        self._too_long(ok, accounts_raw, lengths, ID_CHARS, m.account_column, locate)

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

    def _too_long(
        self,
        ok: np.ndarray,
        raw: pa.Array,
        lengths: pa.Array,
        limit: int,
        column: str,
        locate: Locate,
    ) -> None:
        """Skip the rows whose ``column`` holds more than ``limit`` characters."""
        longest = pc.max(lengths).as_py()
        if longest is None or longest <= limit:
            return
        self._fail(
            ok,
            cols.mask(pc.greater(lengths, limit)),
            ID_TOO_LONG,
            locate,
            lambda i: (
                f"column {column!r}: {lengths[i].as_py():,} characters, more than "
                f"{limit}: {quoted(raw[i].as_py())}"
            ),
        )

    def _metric_names(self, metrics: pa.Array, ok: np.ndarray, locate: Locate) -> None:
        """Skip rows naming a metric the store cannot keep: too long, or control characters.

        Checked on the batch's distinct names (a handful), not row by row.
        """
        column = self.mapping.metric_column
        names = [n for n in pc.unique(metrics).to_pylist() if n]
        long = [n for n in names if len(n) > METRIC_CHARS]
        if long:
            lengths = pc.utf8_length(metrics)
            self._too_long(ok, metrics, lengths, METRIC_CHARS, column, locate)
        odd = [n for n in names if len(n) <= METRIC_CHARS and _CONTROL.search(n)]
        if odd:
            self._fail(
                ok,
                cols.mask(pc.is_in(metrics, value_set=pa.array(odd, pa.string()))),
                BAD_METRIC,
                locate,
                lambda i: f"column {column!r}: {quoted(metrics[i].as_py())} has control characters",
            )

    def _negatives(
        self,
        ok: np.ndarray,
        values: pa.Array,
        candidates: np.ndarray,
        label: str,
        metric_of: Callable[[int], str],
        locate: Locate,
    ) -> np.ndarray:
        """Skip the ``candidates`` rows whose value is below 0; returns them."""
        negative = cols.mask(pc.less(values, 0.0)) & candidates
        self._fail(
            ok,
            negative,
            NEGATIVE_VALUE,
            locate,
            lambda i: (
                f"{label}: {values[i].as_py():.15g} is below 0 (metric "
                f"{quoted(metric_of(i))}; list it under allow_negative if it may be)"
            ),
        )
        return negative

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
        raw = cols.text(col)
        self._fail(
            ok,
            cols.blank(raw),
            MISSING_DATE,
            locate,
            lambda i: f"no value in column {m.date_column!r}",
        )
        days = cols.strict_dates(raw, m.date_format)
        self._fail(
            ok,
            days.is_null().to_numpy(zero_copy_only=False),
            BAD_DATE,
            locate,
            lambda i: f"{quoted(raw[i].as_py())} is not a date ({m.date_format})",
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
        raw = cols.text(col)
        blank = cols.blank(raw)
        try:
            values = pc.cast(raw, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pa.array(cols.floats(raw.to_pylist()), type=pa.float64())
        bad = values.is_null().to_numpy(zero_copy_only=False) & ~blank
        bad |= ~pc.fill_null(pc.is_finite(values), True).to_numpy(zero_copy_only=False)
        return values, blank, bad, lambda i: f"{label}: {quoted(raw[i].as_py())} is not a number"

    def _long(
        self, batch: pa.RecordBatch | pa.Table, ok: np.ndarray, locate: Locate
    ) -> tuple[pa.Array, pa.Array]:
        """(metric names, values); rows of metrics not in ``metrics`` are counted, not kept."""
        m = self.mapping
        metrics = cols.text(batch.column(m.metric_column))
        self._fail(
            ok,
            cols.blank(metrics),
            MISSING_METRIC,
            locate,
            lambda i: f"no value in column {m.metric_column!r}",
        )
        self._metric_names(metrics, ok, locate)
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
        if cols.any_negative(values):
            candidates = keep.copy()
            if m.allow_negative:
                allowed = pc.is_in(metrics, value_set=pa.array(m.allow_negative, pa.string()))
                candidates &= ~cols.mask(allowed)
            self._negatives(
                ok,
                values,
                candidates,
                f"column {m.value_column!r}",
                lambda i: metrics[i].as_py(),
                locate,
            )
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
            if metric not in self.mapping.allow_negative and cols.any_negative(values):
                keep &= ~self._negatives(
                    keep.copy(), values, keep, f"column {column!r}", lambda i, m=metric: m, locate
                )
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
