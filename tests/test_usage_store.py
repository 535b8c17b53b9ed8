"""usage_daily writes on both backends: upserts, newer values, duplicates, load records."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from sqlalchemy import text

from connectors.usage.rows import OUT_SCHEMA
from store import AccountRow, Store


def chunk(*rows: tuple[str, str, date, float]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(OUT_SCHEMA.names, r, strict=True)) for r in rows], schema=OUT_SCHEMA
    )


def held(store: Store) -> list[tuple[str, str, str, float, str]]:
    with store.engine.connect() as conn:
        return [
            (a, m, str(d), v, s)
            for a, m, d, v, s in conn.execute(
                text(
                    "SELECT account_id, metric, day, value, source FROM usage_daily "
                    "ORDER BY account_id, metric, day"
                )
            )
        ]


D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def test_upsert_newer_wins_and_unchanged_values_are_not_rewritten(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        assert writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D2, 2.0))) == 2
        # overlapping chunk: one key exists with the same value, one with a new value, one new
        assert (
            writer.write(
                chunk(
                    ("A1", "logins", D1, 1.0), ("A1", "logins", D2, 5.0), ("A2", "seats", D3, 7.0)
                )
            )
            == 2
        )
        assert writer.write(chunk(("A1", "logins", D1, 1.0))) == 0
        assert writer.write(chunk()) == 0
    assert writer.counts.rows == 6 and writer.counts.chunks == 3
    assert held(store) == [
        ("A1", "logins", "2026-03-01", 1.0, "usage_file"),
        ("A1", "logins", "2026-03-02", 5.0, "usage_file"),
        ("A2", "seats", "2026-03-03", 7.0, "usage_file"),
    ]
    # another source loading the same day takes it over (one value per account, metric, day)
    with store.usage_writer("warehouse") as writer:
        assert writer.write(chunk(("A2", "seats", D3, 7.0))) == 1
    assert held(store)[-1] == ("A2", "seats", "2026-03-03", 7.0, "warehouse")


def test_the_same_key_twice_in_one_chunk_keeps_the_last(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        writer.write(
            chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D1, 2.0), ("A1", "logins", D2, 3.0))
        )
        writer.write(chunk(("A1", "logins", D2, 4.0), ("A1", "logins", D2, 3.5)))
    assert [r[3] for r in held(store)] == [2.0, 3.5]


def test_a_failed_chunk_leaves_the_others(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0)))
        bad = pa.table(
            {"account_id": ["A1"], "metric": [None], "day": pa.array([D2]), "value": [2.0]},
            schema=OUT_SCHEMA,
        )
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
    store.record_usage_load(
        "usage_file",
        "ab" * 32,
        name="/drop/u.csv",
        size=10,
        rows_read=2,
        values_loaded=2,
        rows_skipped=0,
        unmatched=0,
        first_day=D1,
        last_day=D2,
    )
    store.record_usage_load(
        "usage_file",
        "ab" * 32,
        name="/drop/renamed.csv",
        size=10,
        rows_read=2,
        values_loaded=2,
        rows_skipped=0,
        unmatched=0,
        first_day=D1,
        last_day=D2,
    )
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
                assert conn.execute(text("SHOW wal_compression")).scalar_one() == "off"
                assert (
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_class WHERE relname = "
                            "'healthscore_usage_stage' "
                            "AND relnamespace = pg_my_temp_schema()"
                        )
                    ).scalar_one()
                    == 0
                )
                conn.close()
    finally:
        store.close()


def test_a_half_overlapping_chunk_after_direct_copies_merges(store: Store) -> None:
    """New days are COPYed in place; a chunk half made of loaded keys is merged instead."""
    days = [date(2026, 3, d) for d in range(1, 11)]
    first = [
        (f"A{a}", m, d, float(a + d.day))
        for a in range(20)
        for m in ("logins", "seats")
        for d in days[:5]
    ]
    # days 3-5 again (days 3 and 4 unchanged, day 5 with new values), days 6-10 new
    second = [
        (f"A{a}", m, d, float(a + d.day) + (100.0 if d == days[4] else 0.0))
        for a in range(20)
        for m in ("logins", "seats")
        for d in days[2:]
    ]
    with store.usage_writer("usage_file") as writer:
        assert writer.write(chunk(*first)) == 200
        if writer.dialect == "postgresql":
            assert writer.counts.merged == 0  # the direct COPY took it
        # changed: the 40 day-5 values and the 200 new rows; days 3 and 4 are not rewritten
        assert writer.write(chunk(*second)) == 40 + 200
        if writer.dialect == "postgresql":
            assert writer.counts.merged == 1
        assert writer.write(chunk(*second)) == 0  # a re-load changes nothing
        assert writer.write(chunk(*first[:3])) == 0
    want = {(a, m, str(d)): v for a, m, d, v in first + second}
    got = {(a, m, d): v for a, m, d, v, _ in held(store)}
    assert got == want and len(got) == 20 * 2 * 10


def test_after_a_merged_chunk_new_days_still_land(store: Store) -> None:
    """The chunk after a merge is merged too; the one after that is COPYed in place again."""
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0)))
        assert writer.write(chunk(("A1", "logins", D1, 2.0), ("A1", "logins", D2, 2.0))) == 2
        assert writer.write(chunk(("A1", "logins", D3, 3.0))) == 1  # merged: all new
        assert writer.write(chunk(("A2", "logins", D3, 4.0))) == 1  # direct again
        if writer.dialect == "postgresql":
            assert writer.counts.merged == 2
    assert [r[3] for r in held(store)] == [2.0, 2.0, 3.0, 4.0]


def test_duplicates_in_a_chunk_that_meets_existing_rows_keep_the_last(store: Store) -> None:
    with store.usage_writer("usage_file") as writer:
        writer.write(chunk(("A1", "logins", D1, 1.0), ("A1", "logins", D2, 1.0)))
        # the merge path: D1 exists; D1 three times and D3 twice, out of key order
        writer.write(
            chunk(
                ("A1", "logins", D3, 7.0),
                ("A1", "logins", D1, 5.0),
                ("A1", "logins", D1, 6.0),
                ("A1", "logins", D3, 8.0),
                ("A1", "logins", D1, 1.0),
            )
        )
        # the direct path: only new days, a key three times
        writer.write(
            chunk(("A2", "logins", D1, 1.0), ("A2", "logins", D1, 2.0), ("A2", "logins", D1, 3.0))
        )
    assert [(r[0], r[2], r[3]) for r in held(store)] == [
        ("A1", "2026-03-01", 1.0),
        ("A1", "2026-03-02", 1.0),
        ("A1", "2026-03-03", 8.0),
        ("A2", "2026-03-01", 3.0),
    ]


def test_values_and_texts_round_trip_exactly(store: Store) -> None:
    """The binary COPY keeps every value: far dates, extreme numbers, NULL, non-ASCII text."""
    rows = [
        ("Ä-ß-𝔘", "logins", date(1999, 12, 31), -0.0),
        ("A1", 'métrique, "quoted"\n', date(2000, 1, 1), 1.7976931348623157e308),
        ("A1", "seats", date(2000, 1, 2), 5e-324),
        ("A1", "seats", date(2199, 12, 31), -123.456),
        ("A2", "x" * 128, date(1970, 1, 1), None),
        ("a" * 64, "logins", date(2026, 3, 1), 42.0),
    ]
    with store.usage_writer("usage_file") as writer:
        assert writer.write(chunk(*rows)) == len(rows)
        assert writer.write(chunk(*rows)) == 0  # NULL is not distinct from NULL
        assert writer.write(chunk(("A2", "x" * 128, date(1970, 1, 1), 1.0))) == 1
    got = sorted((a, m, d, v) for a, m, d, v, _ in held(store))
    want = [(a, m, str(d), v) for a, m, d, v in rows if v is not None]
    assert got == sorted([*want, ("A2", "x" * 128, "1970-01-01", 1.0)])


def test_last_per_key_keeps_the_last_row_of_each_key() -> None:
    from store.usage import last_per_key

    table = chunk(
        ("A1", "logins", D1, 1.0),
        ("A1", "logins", D1, 2.0),
        ("A1", "logins", D2, 3.0),
        ("A1", "seats", D2, 4.0),
        ("A1", "seats", D2, 5.0),
        ("A1", "seats", D2, 6.0),
        ("A2", "seats", D2, 7.0),
    )
    assert last_per_key(table).column("value").to_pylist() == [2.0, 3.0, 6.0, 7.0]
    assert last_per_key(table.slice(2, 2)).num_rows == 2  # nothing to drop: the same table
    assert last_per_key(chunk(("A1", "logins", D1, 1.0))).num_rows == 1


def test_a_chunk_larger_than_an_encoding_piece(store: Store) -> None:
    """A chunk is encoded in pieces (store.usage._ENCODE_ROWS rows): all of them arrive."""
    n = 140_000
    table = pa.table(
        {
            "account_id": [f"A{i % 7000:05d}" for i in range(n)],
            "metric": ["logins"] * n,
            "day": pa.array([date(2026, 1, 1 + i // 7000) for i in range(n)], pa.date32()),
            "value": [float(i) for i in range(n)],
        },
        schema=OUT_SCHEMA,
    )
    with store.usage_writer("usage_file") as writer:
        assert writer.write(table) == n
    with store.engine.connect() as conn:
        count, total, last = conn.execute(
            text("SELECT count(*), sum(value), max(day) FROM usage_daily")
        ).one()
    assert (count, total, str(last)) == (n, n * (n - 1) / 2, "2026-01-20")


def test_postgres_wal_compression_only_where_the_role_may(pg_url: str) -> None:
    """A superuser's load compresses its WAL (then resets it); a plain role loads without."""
    import uuid

    db_url = pg_url

    import psycopg

    store = Store(db_url)
    role = f"hs_usage_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(db_url, autocommit=True)
    try:
        with store.usage_writer("usage_file") as writer:
            superuser = admin.execute("SHOW is_superuser").fetchone()[0] == "on"
            assert writer.wal_compression == superuser
            writer.write(chunk(("A1", "logins", D1, 1.0)))
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        schema = admin.execute("SELECT current_schema()").fetchone()[0]
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT INSERT, UPDATE ON usage_daily TO {role}")
        plain = Store(db_url.replace("postgres@", f"{role}@", 1))
        try:
            with plain.usage_writer("usage_file") as writer:
                assert writer.wal_compression is False
                assert (
                    writer.write(chunk(("A1", "logins", D1, 2.0), ("A1", "logins", D2, 3.0))) == 2
                )
                assert writer.write(chunk(("A2", "logins", D1, 4.0))) == 1
        finally:
            plain.close()
        assert [r[3] for r in held(store)] == [2.0, 3.0, 4.0]
    finally:
        store.close()
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
        admin.close()
