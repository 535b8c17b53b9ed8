"""Bad usage and accounts input gets a clear error and nothing else is lost.

Negative counts, 10,000-character ids, control characters and files that are not UTF-8 go
through the product's own commands (``load-usage``, ``import-accounts``, ``sources
--unmatched``) on SQLite and PostgreSQL: a bad row is skipped with its file and line, a bad
file fails alone, and every message shows the data escaped and shortened.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from healthscore.cli.main import app
from healthscore.config import config_from_document
from healthscore.core.errors import ConfigError
from healthscore.core.text import printable
from healthscore.core.yamlfile import parse_yaml
from store import Store

USAGE_EXAMPLE = resources.files("healthscore").joinpath("usage.example.yaml")
ACCOUNTS = (
    "account_id,name,start_date,seats\n"
    "A1,One,2025-01-01,5\n"
    "A2,Two,2025-01-01,5\n"
    "A3,Three,2025-01-01,5\n"
)
HEADER = "account_id,date,metric,value\n"
LONG_ID = "x" * 10_000
WIDE = {"COLUMNS": "500"}  # one problem per line: Rich would wrap at 80
RAW_CONTROLS = ("\x00", "\x07", "\x1b", "\x9b")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=WIDE)


def last_json(result: Result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def usage_rows(db_url: str) -> list[tuple[str, str, str, float]]:
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT account_id, metric, day, value FROM usage_daily ORDER BY 1, 2, 3")
            ).all()
    finally:
        store.close()
    return [(a, m, str(d), v) for a, m, d, v in rows]


def configure(tmp_path: Path, **usage: object) -> Path:
    """A file-only setup (the usage example) with this usage_file mapping."""
    data = yaml.safe_load(USAGE_EXAMPLE.read_text("utf-8"))
    data["sources"]["usage_file"] = {"path": str(tmp_path / "drop"), **usage}
    path = tmp_path / "healthscore.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """Accounts A1–A3 imported from a file; the usage mapping of :func:`configure`."""
    (tmp_path / "accounts.csv").write_text(ACCOUNTS, encoding="utf-8")
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(configure(tmp_path)))
    monkeypatch.setenv("DATABASE_URL", db_url)
    imported = run("import-accounts")
    assert imported.exit_code == 0, imported.output
    return tmp_path


def write(path: Path, body: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(body.encode(encoding))
    return path


def assert_no_raw_controls(output: str) -> None:
    assert not [c for c in RAW_CONTROLS if c in output], repr(output[:500])


# -- negative values ----------------------------------------------------------------------------
NEGATIVES = HEADER + (
    "A1,2026-03-01,logins,3\n"  # 2
    "A2,2026-03-01,logins,-50\n"  # 3 a negative count
    "A2,2026-03-01,net_seats,-2\n"  # 4 negative: fine only where allowed
    "A3,2026-03-02,logins,0\n"  # 5
)


def test_negative_counts_are_skipped_with_file_and_line_and_the_rest_loads(
    workspace: Path, db_url: str
) -> None:
    result = run("load-usage", str(write(workspace / "usage.csv", NEGATIVES)))
    assert result.exit_code == 0, result.output
    assert (
        "usage.csv:3: negative_value: column 'value': -50 is below 0 (metric 'logins'; "
        "list it under allow_negative if it may be)" in result.output
    )
    assert "usage.csv:4: negative_value: column 'value': -2 is below 0" in result.output
    summary = last_json(result)
    assert summary["skipped"] == {"negative_value": 2} and summary["values_loaded"] == 2
    assert usage_rows(db_url) == [
        ("A1", "logins", "2026-03-01", 3.0),
        ("A3", "logins", "2026-03-02", 0.0),
    ]


def test_metrics_listed_under_allow_negative_load_their_negative_values(
    workspace: Path, db_url: str
) -> None:
    configure(workspace, allow_negative=["net_seats"])
    result = run("load-usage", str(write(workspace / "usage.csv", NEGATIVES)))
    assert result.exit_code == 0, result.output
    assert last_json(result)["skipped"] == {"negative_value": 1}
    assert "usage.csv:3: negative_value" in result.output and "usage.csv:4" not in result.output
    assert ("A2", "net_seats", "2026-03-01", -2.0) in usage_rows(db_url)


def test_wide_form_skips_a_negative_cell_not_its_row(workspace: Path, db_url: str) -> None:
    configure(
        workspace,
        form="wide",
        metrics={"Logins": "logins", "Net Seats": "net_seats"},
        allow_negative="net_seats",  # one name is a list of one
    )
    body = "account_id,date,Logins,Net Seats\nA1,2026-03-01,-4,-1\nA2,2026-03-01,5,2\n"
    result = run("load-usage", str(write(workspace / "wide.csv", body)))
    assert result.exit_code == 0, result.output
    assert "wide.csv:2: negative_value: column 'Logins': -4 is below 0" in result.output
    assert last_json(result)["skipped"] == {"negative_value": 1}
    assert usage_rows(db_url) == [
        ("A1", "net_seats", "2026-03-01", -1.0),
        ("A2", "logins", "2026-03-01", 5.0),
        ("A2", "net_seats", "2026-03-01", 2.0),
    ]


def test_allow_negative_is_checked_at_config_load_with_file_and_line() -> None:
    data = yaml.safe_load(USAGE_EXAMPLE.read_text("utf-8"))
    data["sources"]["usage_file"] = {
        "path": "/drop",
        "metrics": {"Logins": "logins"},
        "allow_negative": ["seats"],
    }
    text_ = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as err:
        config_from_document(parse_yaml(text_, "hs.yaml"))
    line = text_.splitlines().index("    allow_negative:") + 1
    assert (
        f"hs.yaml:{line} sources.usage_file.allow_negative: 'seats' is not one of "
        "this source's metrics (logins)" in str(err.value)
    )
    data["sources"]["usage_file"] = {"path": "/drop", "allow_negative": ["net seats"]}
    with pytest.raises(ConfigError, match="'net seats' is not a metric name"):
        config_from_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "hs.yaml"))


# -- long ids and control characters ------------------------------------------------------------
def test_a_10000_character_id_is_skipped_and_shown_shortened(workspace: Path, db_url: str) -> None:
    unknown = "u" * 200  # no account; longer than the store's unmatched record id column
    body = HEADER + (
        "A1,2026-03-01,logins,3\n"
        f"{LONG_ID},2026-03-01,logins,4\n"  # 3
        f"A2,2026-03-01,{'m' * 300},5\n"  # 4 a metric name the store cannot hold
        f"{unknown},2026-03-01,logins,6\n"  # 5
    )
    result = run("load-usage", str(write(workspace / "usage.csv", body)))
    assert result.exit_code == 0, result.output
    assert len(result.output) < 3_000 and LONG_ID[:100] not in result.output
    shown = f"'{'x' * 60}…(10,000 chars)'"
    assert (
        f"usage.csv:3: id_too_long: column 'account_id': 10,000 characters, more than 255: {shown}"
        in result.output
    )
    assert "usage.csv:4: id_too_long: column 'metric': 300 characters, more than 128" in (
        result.output
    )
    assert f"usage.csv:5: unknown_account: no account with account id '{'u' * 60}…(200 chars)'" in (
        result.output
    )
    summary = last_json(result)
    assert summary["skipped"] == {"id_too_long": 2, "unknown_account": 1}
    assert summary["unmatched_rows_by_id"] == {f"{'u' * 60}…(200 chars)": 1}
    assert usage_rows(db_url) == [("A1", "logins", "2026-03-01", 3.0)]

    # an over-long id from any source is listed shortened too
    store = Store(db_url)
    store.record_unmatched("hubspot", "company", {"h" * 120: ("no_match", "d" * 500)})
    store.close()
    listed = run("sources", "--unmatched")
    assert listed.exit_code == 0, listed.output
    assert len(listed.output) < 3_000
    assert f"{'u' * 60}…(" in listed.output and "u" * 61 not in listed.output
    assert f"{'h' * 80}…(120 chars)" in listed.output and "h" * 81 not in listed.output


def test_control_characters_are_escaped_in_every_message(
    workspace: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = HEADER + (
        "A1,2026-03-01,logins,3\n"
        "A\x1b[2J\x07,2026-03-01,logins,1\n"  # 3 clears a terminal, rings its bell
        "[/bold]\x00x,2026-03-01,logins,1\n"  # 4 Rich markup and a NUL (PostgreSQL refuses)
        "A2,2026-03-01,log\x9bins,1\n"  # 5 a metric with a C1 control character
        "A2,2026-03-0\x1b1,logins,1\n"  # 6
        "A2,2026-03-01,logins,1\x1b\n"  # 7
    )
    with caplog.at_level(logging.WARNING):
        result = run("load-usage", str(write(workspace / "usage.csv", body)))
    assert result.exit_code == 0, result.output
    assert_no_raw_controls(result.output)
    assert_no_raw_controls(caplog.text)
    for line in (
        "usage.csv:3: unknown_account: no account with account id 'A\\x1b[2J\\x07'",
        "usage.csv:4: unknown_account: no account with account id '[/bold]\\x00x'",
        "usage.csv:5: bad_metric: column 'metric': 'log\\x9bins' has control characters",
        "usage.csv:6: bad_date: '2026-03-0\\x1b1' is not a date (%Y-%m-%d)",
        "usage.csv:7: bad_value: column 'value': '1\\x1b' is not a number",
    ):
        assert line in result.output and line in caplog.text
    assert last_json(result)["values_loaded"] == 1
    listed = run("sources", "--unmatched")
    assert listed.exit_code == 0, listed.output
    assert_no_raw_controls(listed.output)
    assert "A\\x1b[2J\\x07" in listed.output and "[/bold]\\x00x" in listed.output


def test_an_unknown_domain_with_a_nul_is_kept_and_listed_escaped(
    workspace: Path, db_url: str
) -> None:
    configure(workspace, match_by="domain")
    body = HEADER + "evil\x00.example.com,2026-03-01,logins,1\n"
    result = run("load-usage", str(write(workspace / "usage.csv", body)))
    assert result.exit_code == 0, result.output
    assert "usage.csv:2: unknown_account: no account with domain evil\\x00.example.com" in (
        result.output
    )
    listed = run("sources", "--unmatched")
    assert listed.exit_code == 0, listed.output
    assert_no_raw_controls(listed.output)
    assert listed.output.count("evil\\x00.example.com") == 2  # the id and the detail


# -- files that are not UTF-8 -------------------------------------------------------------------
def test_files_that_are_not_utf8_fail_alone_with_a_clear_message(
    workspace: Path, db_url: str
) -> None:
    drop = workspace / "drop"
    drop.mkdir()
    good = write(drop / "a-good.csv", HEADER + "A1,2026-03-01,logins,3\n")
    bom = write(drop / "b-bom.csv", "\ufeff" + HEADER + "A2,2026-03-01,logins,4\n")
    utf16 = write(drop / "c-utf16.csv", HEADER + "A3,2026-03-01,logins,5\n", "utf-16")
    bare16 = write(drop / "d-utf16le.csv", HEADER + "A3,2026-03-02,logins,5\n", "utf-16-le")
    latin1 = write(
        drop / "e-latin1.csv", HEADER + "A3,2026-03-03,logins,1\nCafé,x,y,z\n", "latin-1"
    )
    result = run("load-usage", *map(str, (good, bom, utf16, bare16, latin1)))
    assert result.exit_code == 1, result.output  # a file failed
    assert_no_raw_controls(result.output)
    for line in (
        "c-utf16.csv: unreadable_file: not UTF-8: looks like UTF-16 (BOM FF FE); save it as UTF-8",
        "d-utf16le.csv: unreadable_file: not UTF-8: looks like UTF-16 little-endian (no BOM; "
        "every other byte is 00); save it as UTF-8",
        "e-latin1.csv: unreadable_file: not UTF-8: line 3 has byte 0xE9 (Latin-1 or "
        "Windows-1252?); save it as UTF-8",
    ):
        assert line in result.output
    summary = last_json(result)
    assert [(f["name"], f["status"]) for f in summary["files"]] == [
        ("a-good.csv", "loaded"),
        ("b-bom.csv", "loaded"),
        ("c-utf16.csv", "failed"),
        ("d-utf16le.csv", "failed"),
        ("e-latin1.csv", "failed"),
    ]
    assert usage_rows(db_url) == [
        ("A1", "logins", "2026-03-01", 3.0),
        ("A2", "logins", "2026-03-01", 4.0),
    ]


def test_a_latin1_byte_past_the_first_block_is_found_by_its_line(workspace: Path) -> None:
    rows = [f"A{1 + i % 3},2026-01-{1 + i % 28:02d},m{i % 50},{i}" for i in range(60_000)]
    body = HEADER + "\n".join(rows) + "\nA1,2026-02-01,Größe,1\n"
    path = write(workspace / "late.csv", body, "latin-1")  # 1.5 MB: the sniff reads 1 MiB
    result = run("load-usage", str(path))
    assert result.exit_code == 1, result.output
    assert (
        "late.csv: unreadable_file: not UTF-8: line 60002 has byte 0xF6 (Latin-1 or "
        "Windows-1252?); save it as UTF-8" in result.output
    )
    assert last_json(result)["files"][0]["status"] == "failed"  # not remembered: retried


# -- the accounts file --------------------------------------------------------------------------
def test_accounts_file_skips_long_and_control_character_ids_with_their_line(
    workspace: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    (workspace / "accounts.csv").write_text(
        ACCOUNTS
        + f"{LONG_ID},Long,2025-01-01,1\n"  # 5
        + f"{'k' * 100},Wider than the store,2025-01-01,1\n"  # 6: PostgreSQL refused the file
        + "B\x1b[2J,Clear screen,2025-01-01,1\n"  # 7
        + "B2,Bell\x07,19\x1b70-01-01,1\n"  # 8
        + "B3,Nul\x00,2025-01-01,1\n",  # 9
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        result = run("import-accounts")
    assert result.exit_code == 0, result.output
    assert len(result.output) < 3_000 and LONG_ID[:100] not in result.output
    assert_no_raw_controls(result.output)
    assert_no_raw_controls(caplog.text)
    report = last_json(result)
    assert (report["records"], report["skipped"]) == (3, 5)
    problems = "\n".join(report["problems"])
    for line in (
        f"accounts.csv:5: account_id of 10,000 characters, more than 64: '{'x' * 60}…(10,000 "
        "chars)'",
        "accounts.csv:6: account_id of 100 characters, more than 64",
        "accounts.csv:7: account_id 'B\\x1b[2J' has control characters",
        "accounts.csv:8: start_date is not a date (YYYY-MM-DD): '19\\x1b70-01-01'",
        "accounts.csv:9: name 'Nul\\x00' has a NUL character",
    ):
        assert line in problems
    assert "accounts.csv:5: skipped account" in caplog.text
    assert "accounts.csv:5: account_id of 10,000 characters" in result.output  # first 5 shown
    store = Store(db_url)
    assert sorted(a.id for a in store.accounts()) == ["A1", "A2", "A3"]
    store.close()


@pytest.mark.parametrize(
    ("encoding", "said"),
    [
        ("utf-16", "not UTF-8: looks like UTF-16 (BOM FF FE); save it as UTF-8"),
        ("utf-16-be", "not UTF-8: looks like UTF-16 big-endian (no BOM; every other byte is 00)"),
        ("latin-1", "not UTF-8: line 3 has byte 0xE9 (Latin-1 or Windows-1252?); save it as UTF-8"),
    ],
)
def test_an_accounts_file_that_is_not_utf8_is_refused_with_the_reason(
    workspace: Path, db_url: str, encoding: str, said: str
) -> None:
    write(workspace / "accounts.csv", ACCOUNTS.replace("Two", "Café"), encoding)
    result = run("import-accounts")
    assert result.exit_code == 2, result.output
    assert f"accounts.csv: {said}" in result.output
    assert_no_raw_controls(result.output)
    store = Store(db_url)
    assert len(store.accounts()) == 3  # the earlier import stands: nothing deleted
    store.close()


# -- the helper every message goes through ------------------------------------------------------
def test_printable_escapes_and_shortens_and_is_idempotent() -> None:
    assert printable("plain") == "plain"
    assert printable("a\x1b[31m\n\t\x00\x9b\u202e") == "a\\x1b[31m\\n\\t\\x00\\x9b\\u202e"
    assert printable("x" * 10_000) == "x" * 60 + "…(10,000 chars)"
    assert printable("ab\x00cd", limit=3) == "ab\\x00…(5 chars)"
    once = printable("C:\\drop\\a\x1b.csv", None)
    assert once == "C:\\drop\\a\\x1b.csv" and printable(once, None) == once
