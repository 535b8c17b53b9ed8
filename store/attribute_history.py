"""Account attributes as of each date (seats, MRR, plan, renewal date …), from an
attribute-history file: what point-in-time scoring reads instead of the attributes as they
are now.

One row per (account, attribute, date), the value typed as the file gave it: a number, an ISO
date or text (``NULL`` in all three: the attribute had no value from that date on). Writes
compare with what is held and touch only new or changed rows, so loading the same file again
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Date, Float, Index, String, Text, bindparam, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import StoreBase
from .engine import upsert
from .models import Base, utcnow


class AttributeHistory(Base):
    """One account attribute's value from ``day`` on (until the account's next row)."""

    __tablename__ = "attribute_history"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    number_value: Mapped[float | None] = mapped_column(Float)
    date_value: Mapped[date | None] = mapped_column(Date)
    text_value: Mapped[str | None] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_attribute_history_attribute", "attribute", "day"),)


Value = float | date | str | None


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One row of an attribute-history file, checked and typed."""

    account_id: str
    attribute: str
    day: date
    value: Value

    def columns(self) -> tuple[float | None, date | None, str | None]:
        v = self.value
        if isinstance(v, str):
            return None, None, v
        if isinstance(v, date):
            return None, v, None
        return v, None, None


@dataclass(frozen=True)
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class AttributeHistoryMixin(StoreBase):
    """The attribute history: written in bulk, read whole (per attribute) for scoring."""

    def attribute_history(
        self,
        attributes: Iterable[str] | None = None,
        until: date | None = None,
        *,
        latest: bool = False,
    ) -> Iterator[tuple[str, str, date, Value]]:
        """(account_id, attribute, day, typed value) rows, oldest first per account, of some
        attributes (all by default) dated on or before ``until``; with ``latest`` only the
        newest such row of each account and attribute (what a live score reads)."""
        sql = (
            "SELECT account_id, attribute, day, number_value, date_value, text_value "
            "FROM attribute_history"
        )
        where, params = [], {}
        if attributes is not None:
            wanted = sorted(set(attributes))
            if not wanted:
                return
            where.append("attribute IN :names")
            params["names"] = wanted
        if until is not None:
            where.append("day <= :until")
            params["until"] = until.isoformat() if self._sqlite else until
        if where:
            sql += " WHERE " + " AND ".join(where)
        if latest:
            newest = sql.replace(
                "account_id, attribute, day, number_value, date_value, text_value",
                "account_id, attribute, MAX(day) AS day",
            )
            sql = (
                "SELECT h.account_id, h.attribute, h.day, h.number_value, h.date_value, "
                f"h.text_value FROM attribute_history h JOIN ({newest} GROUP BY account_id, "
                "attribute) m ON h.account_id = m.account_id AND h.attribute = m.attribute "
                "AND h.day = m.day"
            )
        stmt = text(sql + " ORDER BY 2, 1, 3")
        if attributes is not None:
            stmt = stmt.bindparams(bindparam("names", expanding=True))
        days: dict[object, date] = {}  # SQLite hands dates back as text: parsed once each

        def day_of(value: object) -> date:
            if isinstance(value, date):
                return value
            found = days.get(value)
            if found is None:
                found = days[value] = date.fromisoformat(str(value)[:10])
            return found

        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(stmt, params)
            for account_id, attribute, day, number, day_value, text_ in result:
                typed: Value
                if number is not None:
                    typed = float(number)
                elif day_value is not None:
                    typed = day_of(day_value)
                else:
                    typed = text_
                yield account_id, attribute, day_of(day), typed

    @property
    def _sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def attribute_names(self) -> list[str]:
        """The attributes that have a history."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT attribute FROM attribute_history"))
            return sorted(r[0] for r in rows)

    def attribute_samples(self, per_attribute: int) -> dict[str, list[Value]]:
        """Up to ``per_attribute`` values of each attribute with a history (what kind of
        field it is: numbers, dates or text), typed."""
        out: dict[str, list[Value]] = {}
        sql = text(
            "SELECT number_value, date_value, text_value FROM attribute_history "
            "WHERE attribute = :name LIMIT :n"
        )
        with self.engine.connect() as conn:
            for name in self.attribute_names():
                values: list[Value] = []
                for number, day, text_ in conn.execute(sql, {"name": name, "n": per_attribute}):
                    if number is not None:
                        values.append(float(number))
                    elif day is not None:
                        values.append(day if isinstance(day, date) else date.fromisoformat(day))
                    elif text_ is not None:
                        values.append(text_)
                out[name] = values
        return out

    def write_attribute_history(
        self, rows: Sequence[AttributeValue], *, dry_run: bool = False
    ) -> WriteCounts:
        """Upsert the rows that are new or carry another value than the one held (the last
        row of a (account, attribute, day) given twice wins); count what happened."""
        latest: dict[tuple[str, str, date], AttributeValue] = {}
        for row in rows:
            latest[(row.account_id, row.attribute, row.day)] = row
        held = {
            (a, name, day): value
            for a, name, day, value in self.attribute_history({k[1] for k in latest})
        }
        inserted, updated, changed = 0, 0, []
        now = utcnow()
        for key, row in latest.items():
            if key not in held:
                inserted += 1
            elif held[key] != row.value:
                updated += 1
            else:
                continue
            changed.append((row.account_id, row.attribute, row.day, *row.columns(), now))
        if changed and not dry_run:
            with self.session() as s:
                upsert(
                    s,
                    AttributeHistory.__table__,
                    changed,
                    ["account_id", "attribute", "day"],
                    ["number_value", "date_value", "text_value", "loaded_at"],
                    columns=COLUMNS,
                )
        return WriteCounts(inserted, updated, len(latest) - inserted - updated)


COLUMNS = (
    "account_id",
    "attribute",
    "day",
    "number_value",
    "date_value",
    "text_value",
    "loaded_at",
)
