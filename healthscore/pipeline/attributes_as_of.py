"""Account attributes as they were on a date, from the attribute history (seats, MRR, plan,
renewal date … loaded with ``healthscore load-attributes``).

On date D an account's attribute is the value of its latest history row dated on or before
D — unless the account's current value (from the CRM or accounts file) was read later than
that row and by D: the current value counts as of the account's last sync, so a history file
loaded once does not hold a live score back while the CRM keeps the attribute up to date.
An account with no history for that attribute keeps its current value (nothing changes
without a history file); one whose history starts after D, and last synced after D, has no
value on D (missing: what was known on D, not what is known now).

All accounts are looked up at once per date: each attribute's rows are held sorted by
(account, day) as one int64 key per row, and one ``np.searchsorted`` of every account's key
for D finds its row — no Python loop over accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from scoring import LabelColumn
from scoring.windows import day_of
from store import Store
from store.models import Account

EPOCH = date(1970, 1, 1)


def as_text(value: float | date | str) -> str:
    """A typed value as the scorer's label text: what an accounts file would have held."""
    if isinstance(value, str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class AttributeSeries:
    """One attribute's history, sorted by (account row, day)."""

    keys: np.ndarray  # int64: row * span + (day - first day)
    rows: np.ndarray  # int64 account row of each entry
    codes: np.ndarray  # int32 into ``values``; −1: cleared from that day
    days: np.ndarray  # int64 epoch day of each entry
    values: tuple[str, ...]
    has: np.ndarray  # bool per account: has any history for this attribute
    first: int  # epoch day of the earliest entry
    span: int  # days from the earliest to the latest entry, + 2

    def at(self, day: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, code, epoch day) per account: its latest entry on or before ``day``."""
        n = len(self.has)
        offset = (day - EPOCH).days - self.first
        found = np.zeros(n, dtype=bool)
        codes = np.full(n, -1, dtype=np.int32)
        days = np.full(n, -1, dtype=np.int64)
        if offset < 0:
            return found, codes, days
        offset = min(offset, self.span - 2)
        accounts = np.arange(n, dtype=np.int64)
        pos = np.searchsorted(self.keys, accounts * self.span + offset, side="right") - 1
        ok = pos >= 0
        ok[ok] = self.rows[pos[ok]] == accounts[ok]
        found[ok] = True
        codes[ok] = self.codes[pos[ok]]
        days[ok] = self.days[pos[ok]]
        return found, codes, days


class AttributesAsOf:
    """Every account's attribute history, held sorted, read at any date."""

    def __init__(
        self, n: int, series: Mapping[str, AttributeSeries], synced: np.ndarray | None = None
    ) -> None:
        self.n = n
        self.series = dict(series)
        # epoch day each account's current attributes were read (None: undated, older than
        # any history row)
        self.synced = synced

    def __len__(self) -> int:
        return sum(len(s.keys) for s in self.series.values())

    @classmethod
    def from_rows(
        cls,
        account_ids: Sequence[str],
        rows: Iterable[tuple[str, str, date, float | date | str | None]],
        synced: Sequence[date | None] | None = None,
    ) -> AttributesAsOf:
        """From (account_id, attribute, day, typed value) rows in any order; rows of
        accounts not in ``account_ids`` are left out. ``synced``: the day each account's
        current attributes were read (its last sync or import)."""
        index = {a: i for i, a in enumerate(account_ids)}
        grouped: dict[str, tuple[list[int], list[int], list[int], dict[object, int]]] = {}
        epoch = EPOCH.toordinal()
        for account_id, attribute, day, value in rows:
            i = index.get(account_id)
            if i is None:
                continue
            r, d, c, values = grouped.setdefault(attribute, ([], [], [], {}))
            r.append(i)
            d.append(day.toordinal() - epoch)
            # keyed by the typed value (its text is made once per distinct value below)
            c.append(-1 if value is None else values.setdefault(value, len(values)))
        n = len(account_ids)
        series = {}
        for attribute, (r, d, c, values) in grouped.items():
            rows_, days = np.array(r, np.int64), np.array(d, np.int64)
            first = int(days.min())
            span = int(days.max()) - first + 2
            keys = rows_ * span + (days - first)
            order = np.argsort(keys, kind="stable")
            has = np.zeros(n, dtype=bool)
            has[rows_] = True
            series[attribute] = AttributeSeries(
                keys[order],
                rows_[order],
                np.array(c, np.int32)[order],
                days[order],
                tuple(as_text(v) for v in values),  # type: ignore[arg-type]
                has,
                first,
                span,
            )
        read = None
        if synced is not None:
            read = np.array([-1 if d is None else (d - EPOCH).days for d in synced], np.int64)
        return cls(n, series, read)

    @classmethod
    def load(
        cls,
        store: Store,
        accounts: Sequence[Account],
        attributes: Iterable[str],
        *,
        today: date | None = None,
    ) -> AttributesAsOf:
        """The whole history of the wanted attributes (a row dated after the scored date
        still tells that the account's value then is not its current one) — or, for a live
        score (``today``: every account synced by then), each one's newest row by today."""
        rows = (
            store.attribute_history(attributes)
            if today is None
            else store.attribute_history(attributes, until=today, latest=True)
        )
        return cls.from_rows(
            [a.id for a in accounts],
            rows,
            [None if a.updated_at is None else day_of(a.updated_at) for a in accounts],
        )

    def overlay(self, labels: Mapping[str, LabelColumn], day: date) -> dict[str, LabelColumn]:
        """``labels`` (the attributes as they are now) with each attribute that has a history
        replaced by its value on ``day``."""
        out = dict(labels)
        for attribute, series in self.series.items():
            current = labels.get(attribute)
            now_codes = np.full(self.n, -1, np.int32) if current is None else current.codes
            merged = list(current.values) if current is not None else []
            position = {v: k for k, v in enumerate(merged)}
            remap = np.empty(len(series.values) + 1, np.int32)
            for k, value in enumerate(series.values):
                if value not in position:
                    position[value] = len(merged)
                    merged.append(value)
                remap[k] = position[value]
            remap[-1] = -1  # a cleared value (code −1) stays missing
            found, codes, when = series.at(day)
            known_now = now_codes >= 0  # the current value, and whether it was read by ``day``
            if self.synced is not None:
                read_by = known_now & (self.synced <= (day - EPOCH).days)
                found &= ~read_by | (when > self.synced)  # a later history row still wins
            else:
                read_by = np.zeros(self.n, dtype=bool)
            codes = np.where(
                found,
                remap[codes],
                np.where(series.has & ~read_by, -1, now_codes),
            )
            out[attribute] = LabelColumn(codes.astype(np.int32), tuple(merged))
        return out
