"""The SQL warehouse usage source against the real PostgreSQL (a private schema per test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from connectors.identity import DOMAIN
from connectors.usage.config import WarehouseSource
from connectors.usage.load import CURSOR_OBJECT, WAREHOUSE, sync_warehouse
from healthscore.cli.main import app
from healthscore.core.errors import ConfigError, FatalError, RetriableError
from store import AccountRow, Store

from .conftest import _pg_schema_url

TODAY = date(2026, 3, 20)
QUERY = (
    "SELECT account_ref, usage_day, metric, amount FROM product_usage "
    "WHERE usage_day >= :since ORDER BY usage_day, account_ref, metric"
)


@pytest.fixture
def warehouse() -> Iterator[str]:
    """A warehouse: its own PostgreSQL schema holding a product_usage table."""
    for url in _pg_schema_url():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE product_usage (account_ref text, usage_day date, "
                "metric text, amount numeric)"
            )
        yield url


def put(url: str, rows: list[tuple[str | None, date, str, object]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO product_usage VALUES (%s, %s, %s, %s)", rows)


def usage(store: Store) -> dict[tuple[str, str, str], float]:
    with store.engine.connect() as conn:
        return {
            (a, m, str(d)): v
            for a, m, d, v in conn.execute(
                text(
                    "SELECT account_id, metric, day, value FROM usage_daily "
                    "WHERE source = 'warehouse'"
                )
            )
        }


@pytest.fixture
def accounts(store: Store) -> Store:
    store.upsert_accounts([AccountRow(f"A{i}", "salesforce", f"Account {i}") for i in (1, 2, 3)])
    store.set_account_keys(DOMAIN, {"A3": ["initech.com"]})
    return store


def source(**kw: object) -> WarehouseSource:
    defaults: dict[str, object] = {
        "enabled": True,
        "url_env": "TEST_WAREHOUSE_URL",
        "query": QUERY,
        "account_column": "account_ref",
        "date_column": "usage_day",
        "value_column": "amount",
        "start_date": date(2026, 1, 1),
        "fetch_rows": 3,
    }
    return WarehouseSource(**{**defaults, **kw})


def test_incremental_since_cursor_with_overlap(accounts: Store, warehouse: str) -> None:
    env = {"TEST_WAREHOUSE_URL": warehouse}
    days = [date(2026, 3, d) for d in range(1, 11)]
    put(warehouse, [(a, d, m, 1) for d in days for a in ("A1", "A2") for m in ("logins", "seats")])
    first = sync_warehouse(accounts, source(), today=TODAY, environ=env)
    assert first.since == date(2026, 1, 1)
    assert first.tally.rows_read == 40 and first.rows_changed == 40
    assert first.cursor == "2026-03-10" == accounts.cursor(WAREHOUSE, CURSOR_OBJECT)
    assert len(usage(accounts)) == 40

    with psycopg.connect(warehouse, autocommit=True) as conn:
        # a late correction inside the overlap, one before it (not re-read), a new day
        conn.execute(
            "UPDATE product_usage SET amount = 5 WHERE usage_day = '2026-03-09' "
            "AND account_ref = 'A1' AND metric = 'logins'"
        )
        conn.execute("UPDATE product_usage SET amount = 9 WHERE usage_day = '2026-03-02'")
    put(warehouse, [("A1", date(2026, 3, 11), "logins", 4)])
    second = sync_warehouse(accounts, source(), today=TODAY, environ=env)
    assert second.since == date(2026, 3, 7)  # the cursor minus the 3-day overlap
    assert second.tally.rows_read == 4 * 4 + 1  # days 7..10 of both accounts, and day 11
    assert second.rows_changed == 2  # the correction and the new day; the rest unchanged
    held = usage(accounts)
    assert held[("A1", "logins", "2026-03-09")] == 5
    assert held[("A1", "logins", "2026-03-11")] == 4
    assert held[("A1", "logins", "2026-03-02")] == 1  # outside the window: not re-read
    assert second.cursor == "2026-03-11" and len(held) == 41

    full = sync_warehouse(accounts, source(), today=TODAY, environ=env, full=True)
    assert full.since == date(2026, 1, 1) and usage(accounts)[("A1", "logins", "2026-03-02")] == 9


def test_first_sync_without_start_date_looks_back(accounts: Store, warehouse: str) -> None:
    put(
        warehouse,
        [
            ("A1", TODAY - timedelta(days=400), "logins", 1),
            ("A1", TODAY - timedelta(days=30), "logins", 2),
        ],
    )
    report = sync_warehouse(
        accounts, source(start_date=None), today=TODAY, environ={"TEST_WAREHOUSE_URL": warehouse}
    )
    assert report.since == TODAY - timedelta(days=365)
    assert list(usage(accounts).values()) == [2.0]


def test_wide_query_by_domain_reports_bad_rows(accounts: Store, warehouse: str) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("CREATE TABLE daily (domain text, day timestamptz, logins int, minutes text)")
        conn.execute(
            "INSERT INTO daily VALUES ('initech.com', '2026-03-01', 3, '12.5'), "
            "('initech.com', '2026-03-02', NULL, 'lots'), (NULL, '2026-03-02', 1, '1'), "
            "('hooli.com', '2026-03-02', 1, '1')"
        )
    cfg = source(
        form="wide",
        query="SELECT * FROM daily ORDER BY day, domain",
        account_column="domain",
        match_by="domain",
        date_column="day",
        metrics={"logins": "logins", "minutes": "usage_minutes"},
    )
    report = sync_warehouse(accounts, cfg, today=TODAY, environ={"TEST_WAREHOUSE_URL": warehouse})
    assert usage(accounts) == {
        ("A3", "logins", "2026-03-01"): 3.0,
        ("A3", "usage_minutes", "2026-03-01"): 12.5,
    }
    assert sorted(str(p) for p in report.tally.problems) == [  # NULLs sort last
        "warehouse row 2: unknown_account: no account with domain hooli.com",
        "warehouse row 3: bad_value: column 'minutes': 'lots' is not a number",
        "warehouse row 4: missing_account: no value in column 'domain'",
    ]
    assert report.tally.empty_cells == 1
    assert [u.record_id for u in accounts.unmatched(WAREHOUSE)] == ["hooli.com"]


def test_dry_run_reads_but_writes_nothing(accounts: Store, warehouse: str) -> None:
    put(warehouse, [("A1", date(2026, 3, 1), "logins", 1)])
    report = sync_warehouse(
        accounts, source(), today=TODAY, dry_run=True, environ={"TEST_WAREHOUSE_URL": warehouse}
    )
    assert report.tally.values == 1 and usage(accounts) == {}
    assert accounts.cursor(WAREHOUSE, CURSOR_OBJECT) is None


def test_clear_errors_and_no_password_shown(accounts: Store, warehouse: str) -> None:
    with pytest.raises(ConfigError, match="missing environment variable: TEST_WAREHOUSE_URL"):
        sync_warehouse(accounts, source(), today=TODAY, environ={})
    with pytest.raises(ConfigError, match="returns no column 'amount'"):
        sync_warehouse(
            accounts,
            source(
                query="SELECT account_ref, usage_day, metric "
                "FROM product_usage WHERE usage_day >= :since"
            ),
            today=TODAY,
            environ={"TEST_WAREHOUSE_URL": warehouse},
        )
    with pytest.raises(FatalError, match="no_such_table"):
        sync_warehouse(
            accounts,
            source(query="SELECT * FROM no_such_table"),
            today=TODAY,
            environ={"TEST_WAREHOUSE_URL": warehouse},
        )
    secret = "s3cret-Pa55"
    with pytest.raises(RetriableError) as err:
        sync_warehouse(
            accounts,
            source(),
            today=TODAY,
            environ={"TEST_WAREHOUSE_URL": f"postgresql://reader:{secret}@127.0.0.1:1/warehouse"},
        )
    assert secret not in str(err.value) and "***" in str(err.value)


def test_url_env_must_be_a_name() -> None:
    with pytest.raises(ValueError, match="environment variable name"):
        WarehouseSource(url_env="postgresql://u:p@host/db")


def test_sync_warehouse_command(
    sandbox_env: dict[str, str], warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sandbox_env["DATABASE_URL"])
    store.upsert_accounts([AccountRow("A1", "salesforce", "One")])
    put(warehouse, [("A1", date(2026, 3, 1), "logins", 7), ("A1", date(2026, 3, 2), "seats", 3)])
    path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
    data = yaml.safe_load(path.read_text())
    data["sources"]["warehouse"] = {
        "enabled": True,
        "url_env": "TEST_WAREHOUSE_URL",
        "query": QUERY,
        "account_column": "account_ref",
        "date_column": "usage_day",
        "value_column": "amount",
        "start_date": "2026-01-01",
        "metrics": {"logins": "logins", "seats": "seats"},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("TEST_WAREHOUSE_URL", warehouse)
    runner = CliRunner()
    dry = runner.invoke(app, ["sync", "warehouse", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output.strip().splitlines()[-1])["warehouse"]["values_loaded"] == 2
    result = runner.invoke(app, ["sync", "warehouse"])
    assert result.exit_code == 0, result.output
    synced = json.loads(result.output.strip().splitlines()[-1])["warehouse"]
    assert synced["rows_changed"] == 2 and synced["cursor"] == "2026-03-02"
    assert warehouse not in result.output
    assert store.signal_counts() == {"warehouse": 2}
    bad = runner.invoke(app, ["sync", "salesforce", "--dry-run"])
    assert bad.exit_code == 2 and "--dry-run is for the usage sources" in bad.output
    store.close()
