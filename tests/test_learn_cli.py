"""`healthscore fit` (the learned card) and the backtest's calibration, as a CS lead runs
them on a population known only from files: accounts, daily usage, outcomes."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
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
    base = tmp_path_factory.mktemp("learn")
    pop = generate_population(600, seed=23, end=END, days=300)
    write_accounts_csv(pop, base / "accounts.csv")
    write_outcomes_csv(pop, base / "outcomes.csv")
    write_usage_csv(pop, base / "usage.csv")
    (base / "healthscore.yaml").write_text(USAGE_EXAMPLE.read_text())
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", f"sqlite:///{base / 'hs.db'}")
    mp.setenv("HEALTHSCORE_CONFIG", str(base / "healthscore.yaml"))
    assert CliRunner().invoke(app, ["import-accounts"]).exit_code == 0
    loaded = CliRunner().invoke(app, ["load-usage", str(base / "usage.csv")])
    assert loaded.exit_code == 0, loaded.output
    yield base
    mp.undo()


def _args() -> list[str]:
    first, last = END - timedelta(days=250), END - timedelta(days=30)
    return ["--horizon", "30d", "--from", first.isoformat(), "--to", last.isoformat()]


def test_fit_learns_a_card_writes_it_beside_the_live_one_and_explains_it(world: Path) -> None:
    live = world / "healthscore.yaml"
    before = live.read_text()
    out = world / "fitted.yaml"
    result = CliRunner().invoke(
        app, ["fit", *_args(), "--every", "14d", "--out", str(out), "--report", str(world / "r")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["written"] == str(out) and summary["measures"]
    assert summary["auc_fitted"] > 0.7 and summary["auc_default"] > 0.5
    assert "explained as points lost" in result.output
    assert "expected" in result.output and "observed" in result.output  # calibration
    assert "fit: binning" in result.output  # progress on the long steps
    assert live.read_text() == before
    fitted = load_config(out).scorecard  # validates, as `healthscore validate` would
    learned = [fitted.measures[n] for n in summary["measures"]]
    assert all(m.bands is not None or m.categories is not None for m in learned)
    assert all(m.weight > 0 for m in learned)
    assert "bands:  # share of accounts" in out.read_text()
    assert result.stdout.count(f"--- {live}") == 1  # the diff against the live file
    with (world / "fitted.churn.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"account_id", "score", "grade", "churn_probability"}
    probs = [float(r["churn_probability"]) for r in rows if r["churn_probability"]]
    assert all(0 < p < 1 for p in probs) and probs == sorted(probs, reverse=True)
    html = (world / "r" / "backtest.html").read_text()
    assert "Fitted scorecard (proposal)" in html and "candidate measures were binned" in html


def test_fit_dry_run_writes_nothing(world: Path) -> None:
    out = world / "dry.yaml"
    result = CliRunner().invoke(
        app, ["fit", *_args(), "--every", "28d", "--out", str(out), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert not out.exists() and not (world / "dry.churn.csv").exists()
    assert json.loads(result.stdout.strip().splitlines()[-1])["written"] is None


def test_backtest_reports_expected_against_observed_churn_per_decile(world: Path) -> None:
    out = world / "bt"
    result = CliRunner().invoke(
        app, ["backtest", *_args(), "--every", "14d", "--out", str(out), "--draws", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "expected vs observed churn per score decile" in result.output
    report = json.loads((out / "backtest.json").read_text())
    expected = report["expected_churn"]
    assert expected["cross_fitted_by"] == "snapshot" and expected["map"]["slope"] < 0
    deciles = expected["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["rows"] for d in deciles) == report["summary"]["scored_rows"]
    assert deciles[0]["observed"] > deciles[-1]["observed"]
    assert all(0 <= d["expected"] <= 1 for d in deciles)
    html = (out / "backtest.html").read_text()
    assert "Expected against observed churn per score decile" in html
