"""The attribute history in the store (SQLite and PostgreSQL) and its vectorized as-of read,
checked against a plain per-account loop."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from connectors.registry import Settings
from healthscore.config import load_config
from healthscore.pipeline.attributes_as_of import AttributesAsOf, as_text
from healthscore.pipeline.cycle import Pipeline
from scoring import LabelColumn
from store import AccountRow, Store
from store.attribute_history import AttributeValue

START = date(2026, 1, 1)


def test_bulk_writes_are_typed_keyed_and_idempotent(store: Store) -> None:
    rows = [
        AttributeValue(f"a{i}", "seats", START + timedelta(days=k), float(i + k))
        for i in range(300)
        for k in range(0, 50, 10)
    ]
    rows += [
        AttributeValue("a1", "plan", START, "Growth"),
        AttributeValue("a1", "renewal_date", START, date(2026, 9, 30)),
        AttributeValue("a1", "mrr", START, 1234.5),
        AttributeValue("a1", "plan", START + timedelta(days=3), None),  # cleared
    ]
    counts = store.write_attribute_history(rows)
    assert (counts.inserted, counts.updated, counts.unchanged) == (len(rows), 0, 0)
    held = list(store.attribute_history())
    assert len(held) == len(rows)
    typed = {(a, n, d): v for a, n, d, v in held}
    assert typed[("a1", "plan", START)] == "Growth"
    assert typed[("a1", "renewal_date", START)] == date(2026, 9, 30)
    assert typed[("a1", "mrr", START)] == 1234.5
    assert typed[("a1", "plan", START + timedelta(days=3))] is None
    again = store.write_attribute_history(rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(rows))
    # one changed value is one update; the rest stay
    changed = [*rows[:-1], AttributeValue("a1", "plan", START + timedelta(days=3), "Starter")]
    third = store.write_attribute_history(changed)
    assert (third.inserted, third.updated) == (0, 1)
    assert len(list(store.attribute_history())) == len(rows)
    assert [r[3] for r in store.attribute_history(["plan"])] == ["Growth", "Starter"]
    assert store.attribute_names() == ["mrr", "plan", "renewal_date", "seats"]
    # a live score's read: each account's newest row by a date
    by = START + timedelta(days=25)
    newest = list(store.attribute_history(["seats", "plan"], until=by, latest=True))
    assert ("a7", "seats", START + timedelta(days=20), 27.0) in newest
    assert ("a1", "plan", START + timedelta(days=3), "Starter") in newest
    assert len(newest) == 301
    samples = store.attribute_samples(2)
    assert samples["renewal_date"] == [date(2026, 9, 30)] and samples["mrr"] == [1234.5]
    assert len(samples["seats"]) == 2 and all(isinstance(v, float) for v in samples["seats"])


def plain_as_of(
    n: int,
    rows: list[tuple[int, int, str | None]],
    current: list[str | None],
    synced: list[int],
    day: int,
) -> list[str | None]:
    """Account by account: the newest row by ``day``, unless the current value was read
    later (by ``day``); accounts with no rows keep the current value."""
    out = []
    for i in range(n):
        mine = [(d, v) for r, d, v in rows if r == i]
        if not mine:
            out.append(current[i])
            continue
        seen = [(d, v) for d, v in mine if d <= day]
        read_by = current[i] is not None and synced[i] <= day
        if seen:
            d, v = max(seen, key=lambda x: x[0])
            out.append(v if not read_by or d > synced[i] else current[i])
        else:
            out.append(current[i] if read_by else None)
    return out


def test_vectorized_as_of_matches_a_plain_loop() -> None:
    rng = random.Random(7)
    n = 200
    ids = [f"a{i}" for i in range(n)]
    plans = ["Starter", "Growth", "Enterprise"]
    rows: list[tuple[int, int, str | None]] = []
    seen: set[tuple[int, int]] = set()
    for _ in range(600):
        i, d = rng.randrange(n), rng.randrange(0, 100)
        if (i, d) in seen:
            continue
        seen.add((i, d))
        rows.append((i, d, rng.choice([*plans, "Strategic", None])))
    current = [rng.choice([*plans, None]) for _ in range(n)]
    synced = [rng.randrange(0, 120) for _ in range(n)]
    history = AttributesAsOf.from_rows(
        ids,
        [(ids[i], "plan", START + timedelta(days=d), v) for i, d, v in rows],
        [START + timedelta(days=s) for s in synced],
    )
    now = {"plan": LabelColumn.from_list(current)}
    for day in (-5, 0, 17, 50, 99, 130):
        got = history.overlay(now, START + timedelta(days=day))["plan"]
        want = plain_as_of(n, rows, current, synced, day)
        assert [got.text(i) for i in range(n)] == want, day


def test_typed_values_read_as_the_accounts_file_would_hold_them() -> None:
    assert [as_text(v) for v in (20.0, 12.5, date(2026, 9, 30), "Growth")] == [
        "20",
        "12.5",
        "2026-09-30",
        "Growth",
    ]


def test_point_in_time_with_50k_accounts_reads_each_date_at_once() -> None:
    """The as-of read is per date for all accounts: 50k accounts x 26 dates stays quick."""
    import time

    n = 50_000
    ids = [f"a{i}" for i in range(n)]
    history = AttributesAsOf.from_rows(
        ids,
        (
            (ids[i], "seats", START + timedelta(days=d), float(i % 40 + d))
            for i in range(n)
            for d in (0, 60, 120)
        ),
    )
    now = {"seats": LabelColumn.from_list([str(i % 40) for i in range(n)])}
    started = time.perf_counter()
    for k in range(26):
        seats = history.overlay(now, START + timedelta(days=7 * k))["seats"].as_numbers()
        assert seats[5] == 5 + (0 if 7 * k < 60 else 60 if 7 * k < 120 else 120)
    assert time.perf_counter() - started < 10  # ~0.3 s on a busy 2-core machine


def test_no_history_changes_nothing(store: Store) -> None:
    config = load_config()
    store.upsert_accounts(
        [
            AccountRow(f"A{i}", "salesforce", f"Acme {i}", attributes={"plan_tier": "Growth"})
            for i in range(3)
        ]
    )
    pipeline = Pipeline(config, Settings(database_url=store.url), store)
    history = AttributesAsOf.load(store, store.accounts(), config.scorecard.source_metrics())
    assert not history.series
    for batch in (pipeline.compute(), pipeline.compute(as_of=datetime(2025, 6, 1, tzinfo=UTC))):
        labels = batch.table.labels
        assert [labels["plan_tier"].text(i) for i in range(3)] == ["Growth"] * 3
