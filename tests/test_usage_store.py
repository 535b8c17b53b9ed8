"""usage_daily writes on both backends: upserts, newer values, duplicates, load records."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from sqlalchemy import text

from connectors.usage_rows import OUT_SCHEMA
from store import AccountRow, Store


def chunk(*rows: tuple[str, str, date, float]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(OUT_SCHEMA.names, r, strict=True)) for r in rows],
                                schema=OUT_SCHEMA)


def held(store: Store) -> list[tuple[str, str, str, float, str]]:
    with store.engine.connect() as conn:
        return [(a, m, str(d), v, s) for a, m, d, v, s in conn.execute(text(
            "SELECT account_id, metric, day, value, source FROM usage_daily "
            "ORDER BY account_id, metric, day"))]


D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def test_upsert_newer_wins_and_unchanged_values_are_not_rewritten(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        assert writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D2, 2.0))) == 2
        # overlapping chunk: one key exists with the same value, one with a new value, one new
        assert writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D2, 5.0),
                                  ("A2", "seats", D3, 7.0))) == 2
        assert writer.write(chunk(("A1", "logins", D1, 1.0))) == 0
        assert writer.write(chunk()) == 0
    assert writer.counts.rows == 6 and writer.counts.chunks == 3
    assert held(store) == [("A1", "logins", "2026-03-01", 1.0, "usage_file"),
                           ("A1", "logins", "2026-03-02", 5.0, "usage_file"),
                           ("A2", "seats", "2026-03-03", 7.0, "usage_file")]
    # another source loading the same day takes it over (one value per account, metric, day)
    with store.usage_writer("warehouse") as writer:
        assert writer.write(chunk(("A2", "seats", D3, 7.0))) == 1
    assert held(store)[-1] == ("A2", "seats", "2026-03-03", 7.0, "warehouse")


def test_the_same_key_twice_in_one_chunk_keeps_the_last(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D1, 2.0),
                           ("A1", "logins", D2, 3.0)))
        writer.write(chunk(("A1", "logins", D2, 4.0), ("A1", "logins", D2, 3.5)))
    assert [r[3] for r in held(store)] == [2.0, 3.5]


def test_a_failed_chunk_leaves_the_others(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0)))
        bad = pa.table({"account_id": ["A1"], "metric": [None], "day": pa.array([D2]),
                        "value": [2.0]}, schema=OUT_SCHEMA)
        try:
            writer.write(bad)  # metric is NOT NULL (part of the key)
        except Exception:  # either backend's integrity error
            pass
        else:
            raise AssertionError("a NULL metric was accepted")
        writer.write(chunk(("A1", "logins", D3, 3.0)))
    assert [r[2] for r in held(store)] == ["2026-03-01", "2026-03-03"]


def test_signal_counts_include_usage_and_loads_are_remembered(store: Store) -> None:
    store.upsert_accounts([AccountRow("A1", "salesforce", "One")])
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D2, 2.0)))
    with store.usage_writer("warehouse") as writer:
        writer.write(chunk(("A1", "seats", D1, 1.0)))
    assert store.signal_counts() == {"usage_file": 2, "warehouse": 1}
    assert store.usage_load("usage_file", "ab" * 32) is None
    store.record_usage_load("usage_file", "ab" * 32, name="/drop/u.csv", size=10, rows_read=2,
                            values_loaded=2, rows_skipped=0, unmatched=0, first_day=D1,
                            last_day=D2)
    store.record_usage_load("usage_file", "ab" * 32, name="/drop/renamed.csv", size=10,
                            rows_read=2, values_loaded=2, rows_skipped=0, unmatched=0,
                            first_day=D1, last_day=D2)
    load = store.usage_load("usage_file", "ab" * 32)
    assert load is not None and load.name == "/drop/renamed.csv" and load.last_day == D2
    assert [u.name for u in store.usage_loads()] == ["/drop/renamed.csv"]


def test_postgres_staging_is_private_to_the_load(db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.usage_writer("usage_file") as one, store.usage_writer("warehouse") as two:
            one.write(chunk(("A1", "logins", D1, 1.0)))
            two.write(chunk(("A2", "logins", D1, 2.0)))
            one.write(chunk(("A1", "logins", D2, 3.0)))
        assert len(held(store)) == 3
        if store.engine.dialect.name == "postgresql":  # the pooled connections are clean
            conns = [store.engine.connect() for _ in range(store.engine.pool.checkedin() + 1)]
            for conn in conns:
                assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
                assert conn.execute(text(
                    "SELECT count(*) FROM pg_class WHERE relname = 'healthscore_usage_stage' "
                    "AND relnamespace = pg_my_temp_schema()")).scalar_one() == 0
                conn.close()
    finally:
        store.close()
