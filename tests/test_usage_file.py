"""The usage file drop: CSV and Parquet, long and wide, bad rows, re-loads, chunking, config."""

from __future__ import annotations

import gzip
import json
from datetime import date
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from connectors.identity import DOMAIN
from connectors.usage.config import UsageFileSource
from connectors.usage.load import load_usage_files
from healthscore.cli.main import app
from healthscore.config import config_from_document, load_config
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import parse_yaml
from store import AccountRow, Store

LONG = """account_id,date,metric,value
A1,2026-03-01,logins,3
A1,2026-03-01,active_users,2
A2,2026-03-01,logins,10
A2,2026-03-02,logins,12
"""


def usage_rows(store: Store) -> list[tuple[str, str, str, float, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT account_id, metric, day, value, source FROM "
                "usage_daily ORDER BY account_id, metric, day"
            )
        ).all()
    return [(a, m, str(d), v, s) for a, m, d, v, s in rows]


def usage_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM usage_daily")).scalar_one())


@pytest.fixture
def accounts(store: Store) -> Store:
    store.upsert_accounts([AccountRow(f"A{i}", "salesforce", f"Account {i}") for i in range(1, 6)])
    store.set_account_keys(DOMAIN, {"A3": ["acme.com"], "A4": ["globex.io"]})
    return store


def write(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def source(path: Path | str, **kw: object) -> UsageFileSource:
    return UsageFileSource(enabled=True, path=str(path), **kw)


def test_long_csv_loads_every_value(accounts: Store, tmp_path: Path) -> None:
    report = load_usage_files(accounts, source(write(tmp_path / "u.csv", LONG)))
    assert report.tally.values == 4 and report.rows_changed == 4
    assert report.files[0].status == "loaded"
    assert usage_rows(accounts) == [
        ("A1", "active_users", "2026-03-01", 2.0, "usage_file"),
        ("A1", "logins", "2026-03-01", 3.0, "usage_file"),
        ("A2", "logins", "2026-03-01", 10.0, "usage_file"),
        ("A2", "logins", "2026-03-02", 12.0, "usage_file"),
    ]
    assert (report.tally.first_day, report.tally.last_day) == (date(2026, 3, 1), date(2026, 3, 2))
    assert accounts.signal_counts()["usage_file"] == 4


def test_wide_csv_by_domain_with_a_date_format(accounts: Store, tmp_path: Path) -> None:
    body = (
        "customer,day,Logins,Seats Used,notes\n"
        "www.acme.com,01/03/2026,5,3,x\n"
        "jane@globex.io,01/03/2026,,7,\n"  # a blank cell is no value, not an error
        "acme.com,02/03/2026,6,abc,\n"
    )  # a bad cell skips that cell only
    cfg = source(
        write(tmp_path / "wide.csv", body),
        form="wide",
        account_column="customer",
        match_by="domain",
        date_column="day",
        date_format="%d/%m/%Y",
        metrics={"Logins": "logins", "Seats Used": "active_users"},
    )
    report = load_usage_files(accounts, cfg)
    assert usage_rows(accounts) == [
        ("A3", "active_users", "2026-03-01", 3.0, "usage_file"),
        ("A3", "logins", "2026-03-01", 5.0, "usage_file"),
        ("A3", "logins", "2026-03-02", 6.0, "usage_file"),
        ("A4", "active_users", "2026-03-01", 7.0, "usage_file"),
    ]
    assert report.tally.empty_cells == 1
    assert [str(p) for p in report.tally.problems] == [
        "wide.csv:4: bad_value: column 'Seats Used': 'abc' is not a number"
    ]


def test_parquet_long_and_wide_with_typed_columns(accounts: Store, tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "account_id": ["A1", "A2", "A9", None],
                "date": pa.array(
                    [date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 1)],
                    pa.date32(),
                ),
                "metric": ["logins"] * 4,
                "value": pa.array([1, 2, 3, 4], pa.int64()),
            }
        ),
        tmp_path / "long.parquet",
        row_group_size=2,
    )
    report = load_usage_files(accounts, source(tmp_path / "long.parquet", chunk_rows=1))
    assert [r[:4] for r in usage_rows(accounts)] == [
        ("A1", "logins", "2026-03-01", 1.0),
        ("A2", "logins", "2026-03-01", 2.0),
    ]
    assert [str(p) for p in report.tally.problems] == [
        "long.parquet:row 3: unknown_account: no account with account id 'A9'",
        "long.parquet:row 4: missing_account: no value in column 'account_id'",
    ]

    pq.write_table(
        pa.table(
            {
                "acct": ["A5"],
                "ts": pa.array([1772582400_000], pa.timestamp("ms")),
                "minutes": pa.array([12.5]),
            }
        ),
        tmp_path / "wide.parquet",
    )
    cfg = source(
        tmp_path / "wide.parquet",
        form="wide",
        account_column="acct",
        date_column="ts",
        metrics=["minutes"],
    )
    load_usage_files(accounts, cfg)
    assert ("A5", "minutes", "2026-03-04", 12.5, "usage_file") in usage_rows(accounts)


def test_bad_lines_are_reported_with_file_and_line_and_skipped(
    accounts: Store, tmp_path: Path
) -> None:
    body = (
        "account_id,date,metric,value\n"
        "A1,2026-03-01,logins,3\n"  # 2
        "A1,2026-03-01,logins\n"  # 3 wrong column count
        "\n"  # 4 blank line
        "A2,2026-02-30,logins,1\n"  # 5 no such day
        "A2,2026-03-01,logins,many\n"  # 6 not a number
        "A2,2026-03-01,,4\n"  # 7 no metric
        "A2,,logins,4\n"  # 8 no date
        "A2,2026-03-01,logins,\n"  # 9 no value
        "A2,2026-03-01,logins,inf\n"  # 10 not finite
        "ZZ,2026-03-01,logins,4\n"  # 11 unknown account
        "A2,2026-03-03,logins,8\n"
    )  # 12
    report = load_usage_files(accounts, source(write(tmp_path / "bad.csv", body), chunk_rows=4))
    problems = sorted((str(p) for p in report.tally.problems), key=lambda p: int(p.split(":")[1]))
    assert problems == [
        "bad.csv:3: bad_row: 3 columns, the header has 4",
        "bad.csv:4: missing_account: no value in column 'account_id'",
        "bad.csv:5: bad_date: '2026-02-30' is not a date (%Y-%m-%d)",
        "bad.csv:6: bad_value: column 'value': 'many' is not a number",
        "bad.csv:7: missing_metric: no value in column 'metric'",
        "bad.csv:8: missing_date: no value in column 'date'",
        "bad.csv:9: missing_value: no value in column 'value'",
        "bad.csv:10: bad_value: column 'value': 'inf' is not a number",
        "bad.csv:11: unknown_account: no account with account id 'ZZ'",
    ]
    assert report.tally.rows_read == 11 and report.tally.values == 2
    assert dict(report.tally.skipped) == {
        "bad_row": 1,
        "missing_account": 1,
        "bad_date": 1,
        "bad_value": 2,
        "missing_metric": 1,
        "missing_date": 1,
        "missing_value": 1,
        "unknown_account": 1,
    }
    assert [r[:4] for r in usage_rows(accounts)] == [
        ("A1", "logins", "2026-03-01", 3.0),
        ("A2", "logins", "2026-03-03", 8.0),
    ]
    summary = report.summary()
    assert summary["unmatched_accounts"] == 1 and summary["unmatched_rows_by_id"] == {"ZZ": 1}
    assert [(u.record_id, u.reason) for u in accounts.unmatched("usage_file")] == [
        ("ZZ", "no_match")
    ]


def test_same_file_again_adds_nothing_and_overlap_takes_the_newer(
    accounts: Store, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write(drop / "2026-03-01.csv", LONG)
    cfg = source(drop)
    first = load_usage_files(accounts, cfg)
    held = usage_rows(accounts)
    again = load_usage_files(accounts, cfg)
    assert again.files[0].status == "already_loaded" and again.tally.rows_read == 0
    forced = load_usage_files(accounts, cfg, force=True)  # read again: nothing changes
    assert forced.tally.values == 4 and forced.rows_changed == 0
    assert usage_rows(accounts) == held and first.rows_changed == 4
    # a later export overlapping one day: its values win, new days are added
    write(
        drop / "2026-03-02.csv",
        "account_id,date,metric,value\nA2,2026-03-02,logins,15\nA2,2026-03-03,logins,9\n",
    )
    later = load_usage_files(accounts, cfg)
    assert [f.status for f in later.files] == ["already_loaded", "loaded"]
    assert later.rows_changed == 2 and usage_count(accounts) == 5
    assert ("A2", "logins", "2026-03-02", 15.0, "usage_file") in usage_rows(accounts)
    # the same day twice in one file (one chunk): the last line wins
    write(
        drop / "2026-03-04.csv",
        "account_id,date,metric,value\nA1,2026-03-04,logins,1\nA1,2026-03-04,logins,2\n",
    )
    load_usage_files(accounts, cfg)
    assert ("A1", "logins", "2026-03-04", 2.0, "usage_file") in usage_rows(accounts)
    assert usage_count(accounts) == 6


def test_chunks_smaller_than_the_file_load_everything(accounts: Store, tmp_path: Path) -> None:
    lines = [f"A{1 + i // 5 % 5},2026-01-{1 + i // 25:02d},m{i % 5},{i}" for i in range(700)]
    path = tmp_path / "many.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("account_id,date,metric,value\n" + "\n".join(lines) + "\n")
    seen: list[int] = []
    report = load_usage_files(
        accounts, source(path, chunk_rows=64, writers=3), progress=seen.append
    )
    assert report.tally.values == 700 and usage_count(accounts) == 700
    assert sum(seen) == 700 and len(seen) == 11  # ceil(700 / 64) chunks
    with accounts.engine.connect() as conn:
        total = conn.execute(text("SELECT sum(value) FROM usage_daily")).scalar_one()
    assert total == sum(range(700))


def test_missing_column_fails_that_file_only(accounts: Store, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write(drop / "a.csv", "acct,date,metric,value\nA1,2026-03-01,logins,1\n")
    write(drop / "b.csv", LONG)
    write(drop / "notes.md", "not usage")
    report = load_usage_files(accounts, source(drop))
    assert [(f.name, f.status) for f in report.files] == [("a.csv", "failed"), ("b.csv", "loaded")]
    assert "no column 'account_id'" in report.files[0].error
    assert "acct, date, metric, value" in report.files[0].error
    assert usage_count(accounts) == 4
    # the failed file is not remembered: fixed, it loads next time
    write(drop / "a.csv", "account_id,date,metric,value\nA1,2026-03-05,logins,1\n")
    assert [f.status for f in load_usage_files(accounts, source(drop)).files] == [
        "loaded",
        "already_loaded",
    ]


def test_long_form_metric_list_renames_and_ignores_others(accounts: Store, tmp_path: Path) -> None:
    cfg = source(write(tmp_path / "u.csv", LONG), metrics={"logins": "daily_logins"})
    report = load_usage_files(accounts, cfg)
    assert {r[1] for r in usage_rows(accounts)} == {"daily_logins"}
    assert dict(report.tally.ignored_metrics) == {"active_users": 1}


def test_dry_run_writes_nothing(accounts: Store, tmp_path: Path) -> None:
    report = load_usage_files(accounts, source(write(tmp_path / "u.csv", LONG)), dry_run=True)
    assert report.tally.values == 4 and usage_count(accounts) == 0
    assert accounts.usage_loads() == []


# -- configuration --------------------------------------------------------------------------
def _doc(usage: dict) -> str:
    example = resources.files("healthscore").joinpath("healthscore.example.yaml")
    data = yaml.safe_load(example.read_text("utf-8"))
    data["sources"]["usage_file"] = usage
    return yaml.safe_dump(data, sort_keys=False)


def test_config_errors_name_file_and_line() -> None:
    text_ = _doc({"enabled": True, "path": "/drop", "form": "wide"})
    with pytest.raises(ConfigError) as err:
        config_from_document(parse_yaml(text_, "hs.yaml"))
    line = text_.splitlines().index("  usage_file:") + 1
    assert f"hs.yaml:{line} sources.usage_file: form: wide needs metrics" in str(err.value)
    text_ = _doc({"enabled": True, "path": "/drop", "chunk_rows": 0, "match_by": "email"})
    with pytest.raises(ConfigError) as err:
        config_from_document(parse_yaml(text_, "hs.yaml"))
    lines = text_.splitlines()
    assert f"hs.yaml:{lines.index('    chunk_rows: 0') + 1} sources.usage_file.chunk_rows" in str(
        err.value
    )
    assert (
        f"hs.yaml:{lines.index('    match_by: email') + 1} sources.usage_file.match_by: "
        "must be account, domain" in str(err.value)
    )


def test_declared_usage_metrics_are_provided_metrics() -> None:
    base = load_config()
    assert "daily_logins" not in base.metrics
    text_ = _doc({"enabled": True, "path": "/drop", "metrics": {"logins": "daily_logins"}})
    config = config_from_document(parse_yaml(text_, "hs.yaml"))
    assert "daily_logins" in config.metrics


# -- command line ---------------------------------------------------------------------------
def test_load_usage_command(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    store = Store(sandbox_env["DATABASE_URL"])
    store.upsert_accounts(
        [AccountRow("A1", "salesforce", "One"), AccountRow("A2", "salesforce", "Two")]
    )
    path = write(tmp_path / "u.csv", LONG + "A7,2026-03-01,logins,1\nA1,2026-99-01,logins,1\n")
    runner = CliRunner()
    dry = runner.invoke(app, ["load-usage", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output.strip().splitlines()[-1])["values_loaded"] == 4
    assert usage_count(store) == 0
    result = runner.invoke(app, ["load-usage", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["values_loaded"] == 4 and summary["skipped"] == {
        "bad_date": 1,
        "unknown_account": 1,
    }
    assert "u.csv:7: bad_date" in result.output and "u.csv:6: unknown_account" in result.output
    assert usage_count(store) == 4
    again = runner.invoke(app, ["load-usage", str(path)])
    assert (
        json.loads(again.output.strip().splitlines()[-1])["files"][0]["status"] == "already_loaded"
    )
    wide = runner.invoke(app, ["load-usage", str(path), "--form", "wide"])
    assert wide.exit_code == 2 and "needs metrics" in wide.output
    listed = runner.invoke(app, ["sources"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output.strip().splitlines()[-1])["signals_by_source"] == {
        "usage_file": 4
    }
    assert "usage files loaded" in listed.output
    store.close()


def test_parallel_writers_keep_the_newer_value_of_a_key(accounts: Store, tmp_path: Path) -> None:
    # A1's 2026-03-01 logins appears in the first and the last chunk: the last line wins,
    # whichever writer connection the other accounts' chunks go through
    lines = ["A1,2026-03-01,logins,1"]
    lines += [f"A{2 + i % 4},2026-03-{1 + i // 20:02d},m{i % 5},{i}" for i in range(80)]
    lines += ["A1,2026-03-01,logins,99"]
    path = write(tmp_path / "u.csv", "account_id,date,metric,value\n" + "\n".join(lines) + "\n")
    report = load_usage_files(accounts, source(path, chunk_rows=7, writers=4))
    assert report.tally.values == 82
    assert ("A1", "logins", "2026-03-01", 99.0, "usage_file") in usage_rows(accounts)
