"""The store's bulk writes bind values themselves (``store.engine.execute_many``): what they
store must be exactly what SQLAlchemy's own ``session.execute(stmt, rows)`` stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite

from store import Store
from store.engine import insert_many, upsert
from store.models import Account, SignalHistory, SignalLatest, SourceRecord

EAST = timezone(timedelta(hours=5, minutes=30))
AT = datetime(2026, 11, 26, 15, 4, 5, 123456, tzinfo=UTC)


def _account(i: int) -> dict[str, Any]:
    return {
        "id": f"001{i:06d}",
        "crm": "salesforce",
        "name": f'Ac\'me "{i}" ✓',
        "owner_email": None if i % 3 else f"o{i}@x.test",
        "owner_name": None,
        "attributes": {"tier": "gold", "seats": i, "tags": ["a", None]} if i % 2 else {},
        "deleted": bool(i % 5 == 0),
        "updated_at": AT + timedelta(seconds=i),
    }


def _record(i: int) -> dict[str, Any]:
    return {
        "source": "zendesk",
        "object": "tickets",
        "id": str(i),
        "account_id": None if i % 4 == 0 else f"001{i:06d}",
        "fields": {"org": str(i % 7), "tags": ["x", "y"], "score": None, "n": 1.5},
        "deleted": i % 2 == 0,
        "modified": (AT + timedelta(minutes=i)).astimezone(EAST),
    }  # any offset: kept UTC


def _history(i: int) -> dict[str, Any]:
    return {
        "account_id": f"001{i:06d}",
        "metric": "m",
        "source": "s",
        "value": None if i % 3 == 0 else i / 7,
        "observed_at": AT - timedelta(days=i),
    }


def _stored(store: Store, table: Table) -> list[tuple[Any, ...]]:
    """The raw stored values (no type processing on the way out)."""
    with store.engine.connect() as conn:
        history = table.name == "signal_history"  # its serial id differs run to run
        cols = ", ".join(c.name for c in table.columns if not (history and c.name == "id"))
        order = (
            "account_id, observed_at"
            if history
            else ", ".join(c.name for c in table.primary_key.columns)
        )
        return [
            tuple(r)
            for r in conn.exec_driver_sql(f"SELECT {cols} FROM {table.name} ORDER BY {order}")
        ]


@pytest.mark.parametrize(
    "make, table, keys, update",
    [
        (_account, Account.__table__, ["id"], ["name", "attributes", "deleted", "updated_at"]),
        (
            _record,
            SourceRecord.__table__,
            ["source", "object", "id"],
            ["account_id", "fields", "deleted", "modified"],
        ),
    ],
)
def test_bulk_upsert_stores_what_sqlalchemy_stores(
    store: Store, make: Any, table: Table, keys: list[str], update: list[str]
) -> None:
    fast = store
    rows = [make(i) for i in range(4500)]  # more than one batch of 2,000
    changed = [{**r, "deleted": not r["deleted"]} for r in rows[::2]]
    with fast.session() as s:
        upsert(s, table, rows, keys, update)
    with fast.session() as s:
        upsert(s, table, changed, keys, update)
    stored = _stored(fast, table)
    # the same rows through SQLAlchemy's own executemany
    with fast.session() as s:
        s.execute(text(f"DELETE FROM {table.name}"))
    insert = sqlite.insert if fast.engine.dialect.name == "sqlite" else postgresql.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}
    )
    with fast.session() as s:
        s.execute(stmt, rows)
    with fast.session() as s:
        s.execute(stmt, changed)
    assert stored == _stored(fast, table)
    assert len(stored) == 4500


def test_bulk_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    table = SignalHistory.__table__
    rows = [_history(i) for i in range(2500)]
    with store.session() as s:
        insert_many(s, table, rows)
    stored = _stored(store, table)
    with store.session() as s:
        s.execute(text("DELETE FROM signal_history"))
        s.execute(table.insert(), rows)
    assert stored == _stored(store, table)
    assert len(stored) == 2500


def test_rows_given_as_tuples_store_what_dicts_store(store: Store) -> None:
    """With ``columns``, rows are tuples in that order (any order): the same values land."""
    history, latest = SignalHistory.__table__, SignalLatest.__table__
    columns = ("observed_at", "value", "source", "account_id", "metric")  # not the table's
    rows = [_history(i) for i in range(2500)]
    keys, update = ["account_id", "metric", "source"], ["value", "observed_at"]
    with store.session() as s:
        insert_many(s, history, rows)
        upsert(s, latest, rows, keys, update)
    as_dicts = _stored(store, history), _stored(store, latest)
    with store.session() as s:
        s.execute(text("DELETE FROM signal_history"))
        s.execute(text("DELETE FROM signal_latest"))
    tuples = [tuple(r[c] for c in columns) for r in rows]
    with store.session() as s:
        insert_many(s, history, tuples, columns=columns)
        upsert(s, latest, tuples, keys, update, columns=columns)
    assert (_stored(store, history), _stored(store, latest)) == as_dicts
    assert len(as_dicts[1]) == 2500


def test_bulk_write_refuses_a_naive_datetime(store: Store) -> None:
    row = {**_history(1), "observed_at": datetime(2026, 1, 1)}
    with pytest.raises(ValueError, match="naive datetime"), store.session() as s:
        insert_many(s, SignalHistory.__table__, [row])


def test_read_back_through_the_orm_is_aware_utc(store: Store) -> None:
    with store.session() as s:
        upsert(s, SourceRecord.__table__, [_record(3)], ["source", "object", "id"], ["fields"])
    with store.session() as s:
        held = s.get(SourceRecord, ("zendesk", "tickets", "3"))
        assert held is not None
        assert held.modified == AT + timedelta(minutes=3)
        assert held.modified.tzinfo is UTC
        assert held.fields == _record(3)["fields"]
        assert held.deleted is False
