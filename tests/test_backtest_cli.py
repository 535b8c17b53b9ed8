"""`healthscore backtest` and `healthscore fit` as a CS lead runs them, on a population
known only from files (accounts, daily usage, outcomes) — no CRM, no demo generator's card
beyond the YAML written for its metrics."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthscore.cli.main import app
from healthscore.config import load_config
from sandbox.population import (
    generate_population,
    write_accounts_csv,
    write_outcomes_csv,
    write_usage_csv,
)

USAGE_EXAMPLE = Path(__file__).parent.parent / "healthscore" / "usage.example.yaml"
END = date.today() - timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("population")
    pop = generate_population(400, seed=11, end=END, days=300)
    write_accounts_csv(pop, base / "accounts.csv")
    write_outcomes_csv(pop, base / "outcomes.csv")
    (base / "healthscore.yaml").write_text(USAGE_EXAMPLE.read_text())
    db = f"sqlite:///{base / 'hs.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", db)
    mp.setenv("HEALTHSCORE_CONFIG", str(base / "healthscore.yaml"))
    write_usage_csv(pop, base / "usage.csv")
    assert CliRunner().invoke(app, ["import-accounts"]).exit_code == 0
    loaded = CliRunner().invoke(app, ["load-usage", str(base / "usage.csv")])
    assert loaded.exit_code == 0, loaded.output
    yield base
    mp.undo()


def _args(first: date, last: date) -> list[str]:
    return [
        "--horizon",
        "30d",
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
        "--every",
        "14d",
    ]


def test_backtest_writes_html_and_json_and_prints_their_paths(world: Path) -> None:
    out = world / "report"
    first, last = END - timedelta(days=250), END - timedelta(days=30)
    result = CliRunner().invoke(
        app, ["backtest", *_args(first, last), "--out", str(out), "--draws", "50"]
    )
    assert result.exit_code == 0, result.output
    assert str(out / "backtest.html") in result.output
    assert "churn by grade" in result.output and "ROC AUC" in result.output
    report = json.loads((out / "backtest.json").read_text())
    s = report["summary"]
    assert s["snapshots"] == len(range(0, 221, 14))
    assert s["roc_auc"] > 0.7 and s["roc_auc_ci"][0] < s["roc_auc"] < s["roc_auc_ci"][1]
    assert report["scorecard"]["name"] == "usage-windows"
    assert {m["measure"] for m in report["measures"]} == set(
        load_config(world / "healthscore.yaml").scorecard.measures
    )
    assert (out / "backtest.html").read_text().count("<svg") == 5
    # --json prints the same JSON on stdout; an explicit outcomes file works too
    again = CliRunner().invoke(
        app,
        [
            "backtest",
            *_args(first, last),
            "--out",
            str(out),
            "--json",
            "--draws",
            "50",
            "--outcomes",
            str(world / "outcomes.csv"),
        ],
    )
    assert again.exit_code == 0, again.output
    printed = json.loads(next(line for line in again.stdout.splitlines() if line.startswith("{")))
    assert printed["summary"]["roc_auc"] == pytest.approx(s["roc_auc"])


def test_backtest_leaves_out_snapshots_whose_outcomes_are_not_known_yet(world: Path) -> None:
    out = world / "late"
    result = CliRunner().invoke(
        app, ["backtest", *_args(END - timedelta(days=60), END), "--out", str(out), "--draws", "20"]
    )
    assert result.exit_code == 0, result.output
    s = json.loads((out / "backtest.json").read_text())["summary"]
    assert s["last_snapshot"] <= (END - timedelta(days=30)).isoformat()
    assert len(s["censored_snapshots"]) == 2


def test_backtest_errors_are_plain(world: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["backtest", "--from", "2026-13-01", "--to", "2026-02-01"])
    assert bad.exit_code == 2 and "--from: not a date" in bad.output
    late = runner.invoke(app, ["backtest", *_args(END, END)])
    assert late.exit_code == 2 and "no snapshot" in late.output


def test_fit_writes_a_proposal_beside_the_live_file_and_never_over_it(world: Path) -> None:
    live = world / "healthscore.yaml"
    before = live.read_text()
    out = world / "fitted.yaml"
    first, last = END - timedelta(days=250), END - timedelta(days=30)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "fit",
            "--weights-only",
            *_args(first, last),
            "--out",
            str(out),
            "--report",
            str(world / "fit-report"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["written"] == str(out)
    assert summary["auc_fitted"] is not None and summary["auc_default"] is not None
    assert "held-out ROC AUC" in result.output
    assert live.read_text() == before  # the live scorecard is untouched
    fitted = load_config(out)  # validates
    old, new = yaml.safe_load(before), yaml.safe_load(out.read_text())
    for doc in (old, new):
        for m in doc["scorecard"]["measures"].values():
            m.pop("weight")
        for g in doc["scorecard"]["groups"].values():
            g.pop("weight")
    assert old == new
    assert all(m.weight >= 0 for m in fitted.scorecard.measures.values())
    html = (world / "fit-report" / "backtest.html").read_text()
    assert "Fitted scorecard (proposal)" in html
    refused = runner.invoke(app, ["fit", *_args(first, last), "--out", str(live)])
    assert refused.exit_code == 2 and "never replaces" in refused.output
    assert live.read_text() == before
    dry = runner.invoke(
        app, ["fit", *_args(first, last), "--out", str(world / "dry.yaml"), "--dry-run"]
    )
    assert dry.exit_code == 0 and not (world / "dry.yaml").exists()
