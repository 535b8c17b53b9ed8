"""Accounts from a file, outcomes (file and CRM), churn exclusion, and the file-only flow."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from connectors.accounts_file.config import AccountsFile
from connectors.registry import Settings
from healthscore.cli.main import app
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from healthscore.pipeline.outcomes import (
    Outcome,
    churned_by,
    churned_within,
    load_outcomes,
    read_outcomes_file,
)
from sandbox.population import (
    generate_population,
    write_accounts_csv,
    write_outcomes_csv,
    write_usage_csv,
)
from store import AccountRow, SignalRow, Store

from .test_point_in_time import example_with_usage

USAGE_EXAMPLE = Path(__file__).parent.parent / "healthscore" / "usage.example.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_outcomes_file_skips_bad_rows_with_their_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path / "outcomes.csv",
        "account_id,churn_date,renewal_date\n"
        "A1,2026-02-01,\n"
        "A2,,2026-03-01\n"
        "A3,01/02/2026,\n"
        ",2026-01-01,\n"
        "A4,2026-04-05T00:00:00Z,\n",
    )
    with caplog.at_level(logging.WARNING):
        got = read_outcomes_file(path)
    assert got == {
        "A1": Outcome("A1", date(2026, 2, 1)),
        "A2": Outcome("A2", None, date(2026, 3, 1)),
        "A4": Outcome("A4", date(2026, 4, 5)),
    }
    assert f"{path}:4: skipped outcome of 'A3'" in caplog.text
    assert f"{path}:5: skipped outcome of '?'" in caplog.text
    with pytest.raises(
        ConfigError,
        match=r"bad.csv:1: outcomes file has no column "
        r"'churn_date'",
    ):
        read_outcomes_file(write(tmp_path / "bad.csv", "account_id,churned\nA1,2026-01-01\n"))


def test_crm_outcomes_from_closed_lost_renewals_and_a_churn_date_field(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upsert_accounts([AccountRow(id=a, crm="salesforce", name=a) for a in ("A1", "A2", "A3")])
    lost = datetime(2026, 1, 15, tzinfo=UTC).timestamp()
    store.record_signals(
        [
            SignalRow("A1", "renewal_lost_at", lost, datetime.now(UTC), "sf"),
            SignalRow("A2", "renewal_lost_at", None, datetime.now(UTC), "sf"),
        ]
    )
    config = example_with_usage()
    assert load_outcomes(config, store) == {"A1": Outcome("A1", date(2026, 1, 15))}
    # a churn-date field named in the YAML wins over the opportunity
    text = (
        (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml")
        .read_text()
        .replace(
            "      customer_since: Customer_Since__c",
            "      customer_since: Customer_Since__c\n      churned_on: Churn_Date__c",
        )
    )
    text += "\noutcomes:\n  churn_metric: churned_on\n  file: outcomes.csv\n"
    config = load_config(write(tmp_path / "healthscore.yaml", text))
    assert config.outcomes.file == tmp_path / "outcomes.csv"  # relative to the YAML
    store.record_signals(
        [
            SignalRow(
                "A1",
                "churned_on",
                datetime(2026, 1, 31, tzinfo=UTC).timestamp(),
                datetime.now(UTC),
                "sf",
            )
        ]
    )
    write(tmp_path / "outcomes.csv", "account_id,churn_date\nA3,2026-02-02\n")
    assert load_outcomes(config, store) == {
        "A1": Outcome("A1", date(2026, 1, 31)),
        "A3": Outcome("A3", date(2026, 2, 2)),
    }
    store.close()
    bad = text.replace("churn_metric: churned_on", "churn_metric: churned_at")
    with pytest.raises(ConfigError, match=r"outcomes.churn_metric: unknown metric 'churned_at'"):
        load_config(write(tmp_path / "bad.yaml", bad))


def test_churned_by_and_within_use_whole_days() -> None:
    outcomes = {
        "A": Outcome("A", date(2026, 3, 10)),
        "B": Outcome("B", date(2026, 4, 9)),
        "C": Outcome("C", None, date(2026, 3, 1)),
    }
    assert churned_by(outcomes, date(2026, 3, 9)) == set()
    assert churned_by(outcomes, datetime(2026, 3, 10, 23, 59, tzinfo=UTC)) == {"A"}
    ids = ["A", "B", "C", "D"]
    assert churned_within(ids, outcomes, date(2026, 3, 10), timedelta(days=30)).tolist() == [
        False,
        True,
        False,
        False,
    ]  # A churned on the snapshot day: already gone
    assert churned_within(ids, outcomes, date(2026, 3, 9), timedelta(days=30)).tolist() == [
        True,
        False,
        False,
        False,
    ]


ACCOUNTS = (
    "account_id,name,start_date,plan,seats\n"
    "a1,Alpha,2025-01-01,Growth,10\n"
    "a2,Beta,2026-02-01,Starter,3\n"
    "a3,Gamma,yesterday,Starter,3\n"
    "a1,Alpha again,2025-01-01,Growth,10\n"
    ",Nameless,2025-01-01,Growth,1\n"
)


def file_config(tmp_path: Path, accounts: str = ACCOUNTS) -> Path:
    write(tmp_path / "accounts.csv", accounts)
    data = yaml.safe_load(USAGE_EXAMPLE.read_text())
    data["scorecard"]["derived"]["tenure_days"] = {"days_since": "start_date"}
    data["scorecard"]["segments"] = [
        {
            "name": "new",
            "when": [{"field": "tenure_days", "below": 60}],
            "weights": {"login_trend": 0},
        }
    ]
    return write(tmp_path / "healthscore.yaml", yaml.safe_dump(data, sort_keys=False))


def test_accounts_file_import_keeps_attributes_skips_bad_rows_and_deletes_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = file_config(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(config_path))
    runner = CliRunner()
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(app, ["import-accounts"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["records"], report["skipped"], report["deleted"]) == (2, 3, 0)
    assert "accounts.csv:4: skipped account 'a3': start_date is not a date" in caplog.text
    assert "accounts.csv:5: skipped account 'a1': account_id 'a1' appears twice" in caplog.text
    store = Store(f"sqlite:///{tmp_path / 'hs.db'}")
    accounts = {a.id: a for a in store.accounts()}
    assert accounts["a1"].crm == "file" and accounts["a1"].name == "Alpha"
    assert accounts["a1"].attributes == {
        "start_date": "2025-01-01",
        "plan": "Growth",
        "seats": "10",
    }
    # the file is the full list: a1 gone from it is deleted
    write(
        tmp_path / "accounts.csv",
        "account_id,name,start_date,plan,seats\na2,Beta,2026-02-01,Starter,3\n",
    )
    result = runner.invoke(app, ["import-accounts"])
    assert json.loads(result.stdout.strip().splitlines()[-1])["deleted"] == 1
    assert [a.id for a in store.accounts()] == ["a2"]
    # start dates are attributes numbers can read: the segment rule on tenure works
    pipeline = Pipeline(
        load_config(config_path),
        Settings(database_url=store.url),
        store,
        clock=lambda: datetime(2026, 3, 1, tzinfo=UTC),
    )
    batch = pipeline.compute()
    assert batch.table.column("tenure_days").tolist() == [28.0]
    assert batch.segment_name(0) == "new"
    store.close()


def test_accounts_file_config_errors_name_the_line(tmp_path: Path) -> None:
    text = USAGE_EXAMPLE.read_text().replace(
        "sources:\n", "sources:\n  salesforce: {enabled: true, metrics: {}}\n"
    )
    path = write(tmp_path / "healthscore.yaml", text)
    line = text.splitlines().index("sources:") + 1
    with pytest.raises(
        ConfigError,
        match=rf"healthscore.yaml:{line} sources: accounts_file "
        r"is the record system",
    ):
        load_config(path)
    write(tmp_path / "accounts.csv", "id,title\nx,y\n")
    spec = AccountsFile(path=tmp_path / "accounts.csv")
    from connectors.accounts_file.sync import read_accounts

    with pytest.raises(
        ConfigError,
        match=r"accounts.csv:1: accounts file has no column "
        r"'account_id'",
    ):
        read_accounts(spec)


def insert_population_usage(store: Store, pop, metrics: tuple[str, ...]) -> int:
    """Test helper: the population's non-zero days straight into usage_daily (SQLite)."""
    conn = store.engine.raw_connection()
    try:
        rows = []
        for metric in metrics:
            values = pop.usage[metric]
            r, d = np.nonzero(values > 0)
            rows += [
                (
                    pop.account_ids[i],
                    metric,
                    (pop.first_day + timedelta(days=int(k))).isoformat(),
                    float(values[i, k]),
                    "test",
                )
                for i, k in zip(r, d, strict=True)
            ]
        conn.cursor().executemany(
            "INSERT INTO usage_daily (account_id, metric, day, value, "
            "source) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
    finally:
        conn.close()
    return len(rows)


def test_a_population_from_files_alone_backfills_and_scores_point_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The independent-population path: accounts, usage and outcomes files, no CRM."""
    end = date.today() - timedelta(days=1)
    pop = generate_population(150, seed=3, end=end, days=120)
    write_accounts_csv(pop, tmp_path / "accounts.csv")
    write_outcomes_csv(pop, tmp_path / "outcomes.csv")
    written = write_usage_csv(pop, tmp_path / "usage.csv")
    assert written == sum(int((v > 0).sum()) for v in pop.usage.values())
    header = (tmp_path / "usage.csv").read_text().splitlines()[:2]
    assert header[0] == "account_id,date,metric,value"
    write(tmp_path / "healthscore.yaml", USAGE_EXAMPLE.read_text())
    db = f"sqlite:///{tmp_path / 'hs.db'}"
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(tmp_path / "healthscore.yaml"))
    runner = CliRunner()
    assert runner.invoke(app, ["import-accounts"]).exit_code == 0
    store = Store(db)
    insert_population_usage(
        store, pop, ("logins", "active_users", "feature_events", "invites", "support_tickets")
    )
    first, last = end - timedelta(days=60), end - timedelta(days=4)
    args = ["backfill", "--from", first.isoformat(), "--to", last.isoformat(), "--every", "14d"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["saved"] == 5
    assert "accounts (" in result.stderr or "accounts (" in result.output
    assert json.loads(runner.invoke(app, args).stdout.strip().splitlines()[-1])["skipped"] == 5
    churned = {
        a
        for a, d in zip(pop.account_ids, pop.churn_dates, strict=True)
        if d is not None and d <= first
    }
    started_later = {a for a, d in zip(pop.account_ids, pop.start_dates, strict=True) if d > first}
    first_run = next(r for r in store.runs() if r.started_at.date() == first)
    assert first_run.accounts_scored == 150 - len(churned | started_later)
    pipeline = Pipeline(
        load_config(tmp_path / "healthscore.yaml"), Settings(database_url=db), store
    )
    outcomes = load_outcomes(pipeline.config, store)  # outcomes.file from the YAML
    assert sum(o.churn_date is not None for o in outcomes.values()) == sum(
        d is not None for d in pop.churn_dates
    )
    ((_, batch),) = pipeline.score_at_dates([last], outcomes=outcomes)
    assert np.isfinite(batch.score).mean() > 0.9
    store.close()


def test_a_closed_lost_hubspot_renewal_deal_is_a_churn(tmp_path: Path) -> None:
    from connectors.hubspot.related_signals import RelatedRules, deal_metrics

    now = datetime(2026, 3, 1, tzinfo=UTC)
    deals = [
        {"dealtype": "renewal", "dealstage": "closedlost", "closedate": "2026-01-20"},
        {"dealtype": "renewal", "dealstage": "closedlost", "closedate": "2025-01-20"},
        {"dealtype": "newbusiness", "dealstage": "closedlost", "closedate": "2026-02-20"},
        {"dealtype": "renewal", "dealstage": "closedwon", "closedate": "2026-02-01"},
    ]
    metrics = deal_metrics(deals, now, RelatedRules())
    assert metrics["hubspot_renewal_lost_at"] == datetime(2026, 1, 20, tzinfo=UTC).timestamp()
    assert deal_metrics(deals[2:], now, RelatedRules())["hubspot_renewal_lost_at"] is None
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upsert_accounts([AccountRow(id="H1", crm="hubspot", name="H1")])
    store.record_signals(
        [
            SignalRow(
                "H1", "hubspot_renewal_lost_at", metrics["hubspot_renewal_lost_at"], now, "hubspot"
            )
        ]
    )
    assert load_outcomes(example_with_usage(), store) == {"H1": Outcome("H1", date(2026, 1, 20))}
    store.close()


def test_the_sync_task_imports_the_accounts_file(
    sandbox_env: dict[str, str], redis_url: str
) -> None:
    from healthscore.worker import tasks

    # Celery reads celeryconfig (and the beat schedule from the YAML) lazily, once per
    # process: let it read the example's now, as the worker tests expect
    assert "score-cycle" in tasks.app.conf.beat_schedule
    config_path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
    assert file_config(config_path.parent) == config_path  # the worker's YAML: file accounts
    tasks.runtime.cache_clear()
    try:
        result = tasks.sync_source.apply(args=("accounts_file",)).get()
    finally:
        tasks.runtime.cache_clear()
    assert (result["records"], result["skipped"]) == (2, 3)
    store = Store(sandbox_env["DATABASE_URL"])
    assert [a.id for a in store.accounts()] == ["a1", "a2"]
    store.close()
