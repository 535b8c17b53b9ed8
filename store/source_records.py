"""Source records: related records (opportunities, tickets, ratings …) kept per source and
object, so a sync recomputes only the accounts whose records changed or moved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, bindparam, select, update
from sqlalchemy.orm import Session

from .base import StoreBase
from .engine import upsert
from .models import SourceRecord

# where follow_parent_records keeps one run's moves (per connection; gone at its end)
_FOLLOW_MOVES = Table(
    "follow_moves",
    MetaData(),
    Column("id", String(64)),
    Column("old", String(64)),
    Column("new", String(64)),
    prefixes=["TEMPORARY"],
)


class SourceRecordsMixin(StoreBase):
    """Kept records and the account each belongs to; writes return the accounts touched."""

    def upsert_source_records(
        self,
        source: str,
        obj: str,
        rows: Iterable[tuple[str, str | None, dict[str, Any], bool, datetime]],
    ) -> set[str]:
        """Keep (id, account_id, fields, deleted, modified) rows; return the accounts touched
        (the new one and, when a record moved, the old one)."""
        rows = list(rows)
        touched: set[str] = set()
        with self.session() as s:
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 5000):
                touched.update(
                    acct
                    for acct in s.scalars(
                        select(SourceRecord.account_id).where(
                            SourceRecord.source == source,
                            SourceRecord.object == obj,
                            SourceRecord.id.in_(ids[start : start + 5000]),
                        )
                    )
                    if acct
                )
            upsert(
                s,
                SourceRecord.__table__,
                [
                    {
                        "source": source,
                        "object": obj,
                        "id": rid,
                        "account_id": acct,
                        "fields": fields,
                        "deleted": deleted,
                        "modified": modified,
                    }
                    for rid, acct, fields, deleted, modified in rows
                ],
                ["source", "object", "id"],
                ["account_id", "fields", "deleted", "modified"],
            )
        touched |= {r[1] for r in rows if r[1]}
        return touched

    def source_records(
        self, source: str, obj: str, account_ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Live (not deleted) records per account."""
        ids = list(account_ids)
        out: dict[str, list[dict[str, Any]]] = {a: [] for a in ids}
        with self.session() as s:
            conn = s.connection()  # plain rows: no ORM loading for a read this size
            for start in range(0, len(ids), 5000):
                for acct, fields in conn.execute(
                    select(SourceRecord.account_id, SourceRecord.fields).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        SourceRecord.deleted.is_(False),
                        SourceRecord.account_id.in_(ids[start : start + 5000]),
                    )
                ):
                    out[acct].append(fields)
        return out

    def source_records_by_id(
        self, source: str, obj: str, ids: Iterable[str]
    ) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """(account_id, fields) of the kept records with these ids (deleted ones too)."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, tuple[str | None, dict[str, Any]]] = {}
        with self.session() as s:
            for start in range(0, len(wanted), 5000):
                for rid, acct, fields in s.execute(
                    select(SourceRecord.id, SourceRecord.account_id, SourceRecord.fields).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        SourceRecord.id.in_(wanted[start : start + 5000]),
                    )
                ):
                    out[rid] = (acct, fields)
        return out

    def relink_source_records(
        self, source: str, obj: str, field: str, links: Mapping[str, str | None]
    ) -> set[str]:
        """Point the records whose string field ``field`` has a value in ``links`` at that
        value's account (e.g. the tickets of an organization matched since); return the
        accounts touched (old and new)."""
        key = SourceRecord.fields[field].as_string()
        values = list(links)
        moves: list[dict[str, Any]] = []
        touched: set[str] = set()
        with self.session() as s:
            for start in range(0, len(values), 5000):
                for rid, old, value in s.execute(
                    select(SourceRecord.id, SourceRecord.account_id, key).where(
                        SourceRecord.source == source,
                        SourceRecord.object == obj,
                        key.in_(values[start : start + 5000]),
                    )
                ):
                    new = links.get(value)
                    if new != old:
                        moves.append({"rid": rid, "acct": new})
                        touched.update(a for a in (old, new) if a)
            _move_records(s, source, obj, moves)
        return touched

    def link_unowned_records(
        self, source: str, obj: str, field: str, links: Mapping[str, str]
    ) -> set[str]:
        """Give the records *without an account* whose string field ``field`` has a value in
        ``links`` that value's account (tickets kept before their organization was matched);
        return the accounts touched. Reads only the records without an account (an index
        range), however many records the source keeps."""
        if not links:
            return set()
        table = SourceRecord.__table__
        key = table.c.fields[field].as_string()
        with self.session() as s:
            moves = [
                {"rid": rid, "acct": links[value]}
                for rid, value in s.connection().execute(
                    select(table.c.id, key).where(
                        table.c.source == source,
                        table.c.object == obj,
                        table.c.account_id.is_(None),
                    )
                )
                if value in links
            ]
            _move_records(s, source, obj, moves)
        return {m["acct"] for m in moves}

    def follow_parent_records(self, source: str, obj: str, parent: str, field: str) -> set[str]:
        """Give each ``obj`` record the account of the ``parent`` record named by its string
        field ``field`` (a CSAT rating its ticket's account; none when the ticket is not
        kept); return the accounts touched (old and new).

        Each parent is looked up once, into a temporary table the update then joins: the
        moves stay in the database, never in this process."""
        table = SourceRecord.__table__
        held = table.alias("parent")
        account_of_parent = (
            select(held.c.account_id)
            .where(
                held.c.source == source,
                held.c.object == parent,
                held.c.id == table.c.fields[field].as_string(),
            )
            .scalar_subquery()
        )
        touched: set[str] = set()
        with self.session() as s:
            conn = s.connection()
            _FOLLOW_MOVES.create(conn)
            conn.execute(
                _FOLLOW_MOVES.insert().from_select(
                    ["id", "old", "new"],
                    select(table.c.id, table.c.account_id, account_of_parent).where(
                        table.c.source == source, table.c.object == obj
                    ),
                )
            )
            moves = _FOLLOW_MOVES.c
            moving = moves.old.is_distinct_from(moves.new)
            for old, new in conn.execute(select(moves.old, moves.new).where(moving).distinct()):
                touched.update(a for a in (old, new) if a)
            if touched:
                conn.execute(
                    update(table)
                    .values(account_id=moves.new)
                    .where(
                        table.c.source == source,
                        table.c.object == obj,
                        table.c.id == moves.id,
                        moving,
                    )
                )
            _FOLLOW_MOVES.drop(conn)
        return touched


def _move_records(s: Session, source: str, obj: str, moves: list[dict[str, Any]]) -> None:
    """Point kept records (``rid``) at accounts (``acct``): one statement, many parameter sets."""
    if moves:
        table = SourceRecord.__table__
        s.execute(
            update(table)
            .where(table.c.source == source, table.c.object == obj, table.c.id == bindparam("rid"))
            .values(account_id=bindparam("acct")),
            moves,
        )
