"""Usage files into the default SQLite store: sorted chunks, large commits, same results."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy import text
from typer.testing import CliRunner

from connectors.usage.config import UsageFileSource
from connectors.usage.load import CHUNK_ROWS, load_usage_files
from connectors.usage.rows import OUT_SCHEMA
from healthscore.cli.main import app
from store import AccountRow, Store
from store.usage_sqlite import CACHE_KIB, rows_of

START = date(2026, 1, 1)
METRICS = ("logins", "minutes", "seats")


def day_ordered_csv(path: Path, accounts: int, days: int, bump: int = 0) -> int:
    """A warehouse-style export: day by day, then account, then metric."""
    lines = ["account_id,date,metric,value"]
    for d in range(days):
        stamp = (START + timedelta(days=d)).isoformat()
        for a in range(accounts):
            for k, metric in enumerate(METRICS):
                lines.append(f"A{a:03d},{stamp},{metric},{(a * 7 + d * 3 + k) % 50 + bump}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def indexes(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage_daily'"
            )
        )


def held(store: Store) -> dict[tuple[str, str, str], float]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, metric, day, value FROM usage_daily")).all()
    return {(a, m, str(d)): v for a, m, d, v in rows}


def test_load_usage_command_into_sqlite(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    url = sandbox_env["DATABASE_URL"]
    assert url.startswith("sqlite")
    store = Store(url)
    store.upsert_accounts([AccountRow(f"A{a:03d}", "salesforce", f"A{a}") for a in range(40)])
    first = tmp_path / "first.csv"
    rows = day_ordered_csv(first, 40, 30)
    with first.open("a", encoding="utf-8") as handle:  # a stranger, and a key given twice
        handle.write("B999,2026-01-02,logins,4\nA001,2026-01-01,logins,99\n")
    runner = CliRunner()
    result = runner.invoke(app, ["load-usage", str(first)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["values_loaded"] == rows + 1 and summary["skipped"] == {"unknown_account": 1}
    values = held(store)
    assert len(values) == rows  # the repeated key is one row: the later line's value
    assert values[("A001", "logins", "2026-01-01")] == 99.0
    assert values[("A039", "seats", "2026-01-30")] == (39 * 7 + 29 * 3 + 2) % 50
    assert "unknown_account" in result.output  # the unmatched id is still reported
    assert [r.record_id for r in store.unmatched("usage_file")] == ["B999"]

    # the same content again: skipped by its hash; forced: read, nothing changes
    again = runner.invoke(app, ["load-usage", str(first)])
    assert json.loads(again.output.strip().splitlines()[-1])["files"][0]["status"] == (
        "already_loaded"
    )
    forced = runner.invoke(app, ["load-usage", str(first), "--force"])
    assert json.loads(forced.output.strip().splitlines()[-1])["rows_changed"] == 0
    assert held(store) == values

    # a newer export over the same days (and ten more): every value replaced or added
    second = tmp_path / "second.csv"
    more = day_ordered_csv(second, 40, 40, bump=1)
    newer = runner.invoke(app, ["load-usage", str(second)])
    assert json.loads(newer.output.strip().splitlines()[-1])["rows_changed"] == more
    assert held(store)[("A001", "logins", "2026-01-01")] == (7 + 0 + 0) % 50 + 1
    assert len(held(store)) == more

    # the first load built the (metric, day) index at its end; the pooled connection the
    # writer used has its page cache back
    assert "ix_usage_daily_metric_day" in indexes(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() != -CACHE_KIB
    store.close()


def test_sqlite_writes_large_chunks_unless_told(store: Store, tmp_path: Path) -> None:
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL's chunking is bench_usage_load's business
    store.upsert_accounts([AccountRow(f"A{a:03d}", "salesforce", f"A{a}") for a in range(10)])
    path = tmp_path / "u.csv"
    rows = day_ordered_csv(path, 10, 20)
    seen: list[int] = []
    src = UsageFileSource(enabled=True, path=str(path))
    load_usage_files(store, src, progress=seen.append)
    assert seen == [rows] and CHUNK_ROWS["sqlite"] > rows  # one chunk, one commit
    seen.clear()
    small = UsageFileSource(enabled=True, path=str(path), chunk_rows=100)
    report = load_usage_files(store, small, progress=seen.append, force=True)
    assert sum(seen) == rows and len(seen) == -(-rows // 100)
    assert report.rows_changed == 0 and len(held(store)) == rows


def test_a_failed_first_chunk_keeps_the_index(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        return
    bad = pa.table(
        {"account_id": ["A1"], "metric": [None], "day": pa.array([START]), "value": [2.0]},
        schema=OUT_SCHEMA,
    )
    good = pa.Table.from_pylist(
        [{"account_id": "A1", "metric": "logins", "day": START, "value": 1.0}], schema=OUT_SCHEMA
    )
    with store.usage_writer("usage_file") as writer:
        try:
            writer.write(bad)  # into the empty table: the index was dropped with this chunk
        except Exception:
            pass
        else:
            raise AssertionError("a NULL metric was accepted")
        assert "ix_usage_daily_metric_day" in indexes(store)  # …and is back with its rollback
        writer.write(good)
    assert "ix_usage_daily_metric_day" in indexes(store) and len(held(store)) == 1


def test_rows_come_in_key_order_and_only_the_last_of_a_key() -> None:
    table = pa.Table.from_pylist(
        [
            {"account_id": "B", "metric": "logins", "day": date(2026, 1, 2), "value": 1.0},
            {"account_id": "A", "metric": "seats", "day": date(2026, 1, 1), "value": None},
            {"account_id": "A", "metric": "logins", "day": date(2026, 1, 2), "value": 2.0},
            {"account_id": "A", "metric": "logins", "day": date(2026, 1, 1), "value": 3.0},
            {"account_id": "A", "metric": "logins", "day": date(2026, 1, 2), "value": 4.0},
        ],
        schema=OUT_SCHEMA,
    )
    assert list(rows_of(table, "usage_file")) == [
        ("A", "logins", "2026-01-01", 3.0, "usage_file"),
        ("A", "logins", "2026-01-02", 4.0, "usage_file"),  # the later row of the key
        ("A", "seats", "2026-01-01", None, "usage_file"),
        ("B", "logins", "2026-01-02", 1.0, "usage_file"),
    ]
