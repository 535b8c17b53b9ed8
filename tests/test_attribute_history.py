"""Attribute history: loaded through the CLI, read point in time by the backtest path."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from healthscore.backtest.inventory import inventory_of
from healthscore.cli.main import app
from healthscore.pipeline.point_in_time import snapshot_moment
from healthscore.pipeline.runtime import load_runtime
from store import Store

TODAY = date.today()
D1 = TODAY - timedelta(days=60)  # the two snapshots
D2 = TODAY - timedelta(days=20)
SEAT_CHANGE = TODAY - timedelta(days=40)  # between them

CARD = {
    "sources": {
        "accounts_file": {"path": "accounts.csv"},
        "attribute_history": {"path": "attributes.csv", "attributes": ["renewal_date"]},
    },
    "scorecard": {
        "derived": {
            "logins_30d": {"window": {"metric": "logins", "agg": "sum", "within": "30d"}},
            "logins_per_seat": {"ratio": ["logins_30d", "seats"]},
            "days_to_renewal": {"days_until": "renewal_date"},
        },
        "groups": {
            "engagement": {"label": "Engagement", "weight": 1},
            "contract": {"label": "Contract", "weight": 1},
        },
        "measures": {
            "per_seat": {
                "label": "Logins per seat (30d)",
                "group": "engagement",
                "weight": 1,
                "metric": "logins_per_seat",
                "linear": {"from": 0, "to": 30},
            },
            "renewal": {
                "label": "Days to renewal",
                "group": "contract",
                "weight": 1,
                "metric": "days_to_renewal",
                "linear": {"from": 0, "to": 100},
                "unit": "days",
            },
        },
        "segments": [
            {
                "name": "enterprise",
                "when": [{"field": "plan", "is": "Enterprise"}],
                "weights": {"renewal": 0},
            }
        ],
    },
}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Accounts (seats as they are now), 100 days of usage and the attribute history."""
    write(tmp_path / "healthscore.yaml", yaml.safe_dump(CARD, sort_keys=False))
    write(
        tmp_path / "accounts.csv",
        "account_id,name,start_date,plan,seats\n"
        "a1,Alpha,2020-01-01,Enterprise,20\n"
        "a2,Beta,2020-01-01,Growth,5\n"
        "a3,Gamma,2020-01-01,Growth,10\n",
    )
    lines = ["account_id,date,metric,value"]
    for k in range(100):
        day = TODAY - timedelta(days=k)
        lines += [f"a1,{day},logins,10", f"a2,{day},logins,10", f"a3,{day},logins,10"]
    write(tmp_path / "usage.csv", "\n".join(lines) + "\n")
    renewal = TODAY + timedelta(days=30)
    write(
        tmp_path / "attributes.csv",
        "account_id,date,attribute,value\n"
        f"a1,{D1 - timedelta(days=5)},seats,10\n"  # 2
        f"a1,{SEAT_CHANGE},seats,20\n"
        f"a1,{D1 - timedelta(days=5)},plan,Growth\n"  # 4
        f"a1,{SEAT_CHANGE},plan,Enterprise\n"
        f"a2,{SEAT_CHANGE},seats,5\n"  # 6: a2's seats are unknown before this
        f"a1,{D1 - timedelta(days=90)},renewal_date,{D1 + timedelta(days=10)}\n"  # 7
        f"a1,{D1 + timedelta(days=11)},renewal_date,{renewal}\n"
        "a1,2026-02-30,seats,3\n"  # 9: no such day
        "ghost,2026-01-01,seats,3\n"  # 10: unknown account
        "ghost,2026-01-02,seats,4\n"
        "a2,2026-01-01,,7\n",  # 12: no attribute
    )
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(tmp_path / "healthscore.yaml"))
    runner = CliRunner()
    for args in (["import-accounts"], ["load-usage", str(tmp_path / "usage.csv")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return tmp_path


def load(*args: str) -> dict:
    result = CliRunner().invoke(app, ["load-attributes", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loaded_through_the_cli_with_bad_rows_named_and_reloads_changing_nothing(
    folder: Path,
) -> None:
    report = load()
    assert (report["rows_read"], report["values_loaded"], report["inserted"]) == (11, 7, 7)
    assert report["attributes"] == {"plan": 2, "renewal_date": 2, "seats": 3}
    assert report["skipped"] == {"bad_date": 1, "missing_attribute": 1, "unknown_account": 2}
    assert report["unmatched_accounts"] == 1
    problems = report["problems"]
    assert any(
        p.endswith("attributes.csv:9: bad_date: date '2026-02-30' is not a date (YYYY-MM-DD)")
        for p in problems
    )
    assert any(
        "attributes.csv:10: unknown_account: no account with account id 'ghost'" in p
        for p in problems
    )
    assert any("attributes.csv:12: missing_attribute: no attribute" in p for p in problems)
    store = Store(f"sqlite:///{folder / 'hs.db'}")
    before = list(store.attribute_history())
    # typed as written: numbers, dates, text
    values = {(a, name, day): v for a, name, day, v in before}
    assert values[("a1", "seats", SEAT_CHANGE)] == 20.0
    assert values[("a1", "plan", SEAT_CHANGE)] == "Enterprise"
    assert values[("a1", "renewal_date", D1 + timedelta(days=11))] == TODAY + timedelta(days=30)
    again = load()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 7)
    assert list(store.attribute_history()) == before
    # the configured file is a source like the others: `sync` (and each cycle) loads it
    result = CliRunner().invoke(app, ["sync", "attribute_history"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["attribute_history"]["unchanged"] == 7
    # a dry run of a changed file says what would change and writes nothing
    text = (
        (folder / "attributes.csv")
        .read_text()
        .replace(f"{SEAT_CHANGE},seats,20", f"{SEAT_CHANGE},seats,25")
    )
    write(folder / "changed.csv", text)
    dry = load(str(folder / "changed.csv"), "--dry-run")
    assert (dry["dry_run"], dry["updated"], dry["unchanged"]) == (True, 1, 6)
    assert list(store.attribute_history()) == before
    store.close()


def test_a_file_without_a_column_is_refused_with_its_header(folder: Path) -> None:
    write(folder / "bad.csv", "account_id,day,attribute,value\na1,2026-01-01,seats,3\n")
    result = CliRunner().invoke(app, ["load-attributes", str(folder / "bad.csv")])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "bad.csv:1: attribute history file has no column 'date'" in said


def test_point_in_time_scores_see_seats_plan_and_renewal_as_of_each_date(folder: Path) -> None:
    load()
    pipeline = load_runtime(folder / "healthscore.yaml").pipeline()
    (m1, b1), (m2, b2) = pipeline.score_at_dates([D1, D2], hysteresis=False)
    per_seat = b1.measure_names.index("per_seat")
    renewal = b1.measure_names.index("renewal")
    # 30 days × 10 logins = 300 over the seats as of each date
    assert b1.raw[b1.index("a1"), per_seat] == 30.0  # 10 seats then
    assert b2.raw[b2.index("a1"), per_seat] == 15.0  # 20 seats after the change
    assert b1.score[b1.index("a1")] != b2.score[b2.index("a1")]
    # the plan: Growth then, Enterprise now (the segment that switches renewal off)
    assert (b1.segment_name(b1.index("a1")), b2.segment_name(b2.index("a1"))) == (
        "default",
        "enterprise",
    )
    # a2's seats have a history that starts between the snapshots: unknown on D1
    assert np.isnan(b1.raw[b1.index("a2"), per_seat])
    assert b2.raw[b2.index("a2"), per_seat] == 60.0
    # a3 has no history: its seats as they are now, at every date
    assert b1.raw[b1.index("a3"), per_seat] == b2.raw[b2.index("a3"), per_seat] == 30.0
    # days_until the renewal date as known on D1 (10 days ahead), not today's renewal date
    assert b1.raw[b1.index("a1"), renewal] == 10.0
    assert b1.table.label("renewal_date").text(b1.index("a1")) == str(D1 + timedelta(days=10))
    # the same through compute(as_of) (a backfill's and explain's path)
    single = pipeline.compute(as_of=snapshot_moment(D1))
    np.testing.assert_array_equal(single.raw, b1.raw)
    # live: a1 was imported today (seats 20, as the file says now); the history's renewal
    # date (its only source) is 30 days ahead
    live = pipeline.compute()
    assert live.raw[live.index("a1"), per_seat] == 15.0
    assert live.table.column("days_to_renewal")[live.index("a1")] == 30.0
    assert m1 == snapshot_moment(D1) and m2 == snapshot_moment(D2)
    # `fit` finds the history's fields too: days to the renewal date is a candidate
    inventory = inventory_of(pipeline.config, pipeline.store, pipeline.start_attribute)
    assert "renewal_date" in inventory.dates and "seats" in inventory.numbers


def test_live_reads_a_history_row_newer_than_the_last_import(folder: Path) -> None:
    load()
    store = Store(f"sqlite:///{folder / 'hs.db'}")
    with store.session() as s:  # the accounts were last imported 10 days ago
        from store.models import Account

        for account in s.query(Account):
            account.updated_at = datetime.now(UTC) - timedelta(days=10)
    write(
        folder / "later.csv",
        f"account_id,date,attribute,value\na1,{TODAY - timedelta(days=2)},seats,50\n",
    )
    assert load(str(folder / "later.csv"))["inserted"] == 1
    pipeline = load_runtime(folder / "healthscore.yaml").pipeline()
    live = pipeline.compute()
    per_seat = live.measure_names.index("per_seat")
    assert live.raw[live.index("a1"), per_seat] == 6.0  # 300 logins / 50 seats
    assert live.raw[live.index("a3"), per_seat] == 30.0  # no history: as imported
    store.close()
