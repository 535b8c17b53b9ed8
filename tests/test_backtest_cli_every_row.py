"""`backtest` and `fit` as a reviewer runs them on a population known only from files
(accounts, usage in long form, outcomes): monthly snapshots, explicit dates, the explicit
split, per-row scores out — every row counted, the accounts the card cannot score too."""

from __future__ import annotations

import calendar
import csv
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from healthscore.cli.main import app
from sandbox.population import (
    generate_population,
    write_accounts_csv,
    write_outcomes_csv,
    write_usage_csv,
)
from scoring.backtest import roc_auc
from scoring.counted import risk_of

USAGE_EXAMPLE = Path(__file__).parent.parent / "healthscore" / "usage.example.yaml"
END = date.today() - timedelta(days=1)
COLUMNS = ["account_id", "as_of", "score", "grade", "probability", "churned"]


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _month_ends() -> list[date]:
    """The last four month-ends whose 30-day horizon has known outcomes."""
    last = _month_end(END - timedelta(days=31))
    while last + timedelta(days=30) > END:
        last = _month_end(last.replace(day=1) - timedelta(days=1))
    out = [last]
    while len(out) < 4:
        out.insert(0, _month_end(out[0].replace(day=1) - timedelta(days=1)))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 accounts; a quarter of the churners never report usage (the card cannot score
    them: insufficient_data), as accounts that never deployed."""
    base = tmp_path_factory.mktemp("every-row")
    pop = generate_population(400, seed=11, end=END, days=300)
    write_accounts_csv(pop, base / "accounts.csv")
    write_outcomes_csv(pop, base / "outcomes.csv")
    write_usage_csv(pop, base / "full.csv")
    with (base / "outcomes.csv").open() as handle:
        churners = sorted(r["account_id"] for r in csv.DictReader(handle) if r["churn_date"])
    dark = set(churners[::4])
    with (base / "full.csv").open() as src, (base / "usage.csv").open("w") as dst:
        dst.writelines(line for line in src if line.split(",", 1)[0] not in dark)
    (base / "dark.txt").write_text("\n".join(sorted(dark)))
    (base / "healthscore.yaml").write_text(USAGE_EXAMPLE.read_text())
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", f"sqlite:///{base / 'hs.db'}")
    mp.setenv("HEALTHSCORE_CONFIG", str(base / "healthscore.yaml"))
    assert CliRunner().invoke(app, ["import-accounts"]).exit_code == 0
    loaded = CliRunner().invoke(app, ["load-usage", str(base / "usage.csv")])
    assert loaded.exit_code == 0, loaded.output
    yield base
    mp.undo()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _headline(rows: list[dict[str, str]]) -> float:
    """The AUC of a scores file, recomputed: unscored rows ranked riskiest."""
    score = np.array([float(r["score"]) if r["score"] else np.nan for r in rows])
    return roc_auc(risk_of(score), np.array([r["churned"] == "1" for r in rows]))


def test_monthly_backtest_counts_every_row_and_writes_the_scores(world: Path) -> None:
    months = _month_ends()
    out, scores = world / "monthly", world / "scores.csv"
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--from",
            months[0].isoformat(),
            "--to",
            months[-1].isoformat(),
            "--every",
            "1mo",
            "--out",
            str(out),
            "--draws",
            "20",
            "--scores-out",
            str(scores),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scored rows only" in result.output and "insufficient" in result.output
    report = json.loads((out / "backtest.json").read_text())
    s = report["summary"]
    assert [x["date"] for x in report["snapshots"]] == [d.isoformat() for d in months]
    assert report["plan"]["every"] == "1mo"
    rows = _rows(scores)
    assert len(rows) == s["rows"]
    unscored = [r for r in rows if not r["score"]]
    dark = set((world / "dark.txt").read_text().split())
    assert len(unscored) == s["insufficient"]["rows"] > 0
    dark_rows = [r for r in rows if r["account_id"] in dark]
    assert dark_rows and all(not r["score"] for r in dark_rows)  # never deployed: unscored
    assert len({r["account_id"] for r in unscored}) == s["insufficient"]["accounts"]
    assert all(r["grade"] == "insufficient_data" and not r["probability"] for r in unscored)
    probs = [float(r["probability"]) for r in rows if r["score"]]
    assert probs and all(0 < p < 1 for p in probs)
    assert sum(r["churned"] == "1" for r in rows) == s["churn_rows"]
    # the headline ranks the never-deployed churners first: above the scored-only AUC
    assert s["insufficient"]["churn_rate"] > s["insufficient"]["base_churn_rate"]
    assert s["roc_auc"] > s["roc_auc_scored_only"]
    assert _headline(rows) == pytest.approx(s["roc_auc"])
    html = (out / "backtest.html").read_text()
    assert "ROC AUC on the scored rows only" in html and "insufficient data" in html


def test_fit_on_the_first_two_months_judges_the_last_two_counting_every_row(
    world: Path,
) -> None:
    months = [d.isoformat() for d in _month_ends()]
    out, scores = world / "fitted.yaml", world / "fit-scores.csv"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            "--dates",
            ",".join(months),
            "--train-until",
            months[1],
            "--test-from",
            months[2],
            "--out",
            str(out),
            "--scores-out",
            str(scores),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["train_dates"] == months[:2] and summary["test_dates"] == months[2:]
    assert summary["dropped_dates"] == []
    assert f"fitted on {months[0]}, {months[1]}; judged on {months[2]}, {months[3]}" in (
        result.output
    )
    # the fitted card's judged rows, every one: its reported AUC is theirs, unscored first
    rows = _rows(scores)
    assert {r["as_of"] for r in rows} == set(months[2:])
    assert summary["rows_compared"] == len(rows)
    assert summary["auc_fitted"] == pytest.approx(_headline(rows))
    assert summary["insufficient_rows_default"] > 0
    assert summary["auc_default_scored_only"] is not None
    assert summary["auc_counts"] == "every row; insufficient_data ranked riskiest"
    # the same split from monthly steps
    again = CliRunner().invoke(
        app,
        [
            "fit",
            "--from",
            months[0],
            "--to",
            months[-1],
            "--every",
            "1mo",
            "--train-until",
            months[1],
            "--test-from",
            months[2],
            "--dry-run",
        ],
    )
    assert again.exit_code == 0, again.output
    same = json.loads(again.stdout.strip().splitlines()[-1])
    assert same["train_dates"] == months[:2] and same["test_dates"] == months[2:]
    assert same["auc_default"] == pytest.approx(summary["auc_default"])


def test_a_split_with_no_snapshot_on_one_side_names_the_dates(world: Path) -> None:
    months = [d.isoformat() for d in _month_ends()]
    result = CliRunner().invoke(
        app, ["fit", "--dates", ",".join(months), "--test-from", "2099-01-31", "--dry-run"]
    )
    assert result.exit_code == 2, result.output
    assert "no snapshot left to judge" in result.output and ", ".join(months) in result.output
