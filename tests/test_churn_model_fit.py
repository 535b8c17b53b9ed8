"""`healthscore fit` writes the held-out calibration into the fitted card as its churn_model;
the fitted card validates and a scoring run with it keeps each account's probability."""

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
from store import Store
from store.models import utcnow

USAGE_EXAMPLE = Path(__file__).parent.parent / "healthscore" / "usage.example.yaml"
END = date.today() - timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pop = generate_population(400, seed=29, end=END, days=300)
    write_accounts_csv(pop, tmp_path / "accounts.csv")
    write_outcomes_csv(pop, tmp_path / "outcomes.csv")
    write_usage_csv(pop, tmp_path / "usage.csv")
    (tmp_path / "healthscore.yaml").write_text(USAGE_EXAMPLE.read_text())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(tmp_path / "healthscore.yaml"))
    assert CliRunner().invoke(app, ["import-accounts"]).exit_code == 0
    loaded = CliRunner().invoke(app, ["load-usage", str(tmp_path / "usage.csv")])
    assert loaded.exit_code == 0, loaded.output
    return tmp_path


def test_fit_writes_a_churn_model_that_validates_and_scores(world: Path) -> None:
    out = world / "fitted.yaml"
    first, last = END - timedelta(days=250), END - timedelta(days=30)
    args = ["--horizon", "30d", "--from", first.isoformat(), "--to", last.isoformat()]
    result = CliRunner().invoke(app, ["fit", *args, "--every", "14d", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    text = out.read_text()
    assert "# P(churn within 30d) = 1/(1+exp(-(intercept + slope·score)))" in text
    assert "+  churn_model:" in result.stdout  # shown in the diff against the live card
    model = load_config(out).scorecard.churn_model  # validates, as `healthscore validate`
    assert model is not None and model.horizon_days == 30 and model.slope < 0
    assert model.fitted_on is not None and model.fitted_on.churned > 0
    held_out = yaml.safe_load(text)["scorecard"]["churn_model"]["fitted_on"]
    assert str(held_out["from"]) >= first.isoformat() and str(held_out["to"]) <= last.isoformat()
    assert summary["written"] == str(out)
    validated = CliRunner().invoke(app, ["validate", str(out)])
    assert validated.exit_code == 0, validated.output
    # the live product on the fitted card: each stored score carries its probability, and
    # `explain` shows it
    scored = CliRunner().invoke(app, ["score", "--config", str(out)])
    assert scored.exit_code == 0, scored.output
    store = Store(f"sqlite:///{world / 'hs.db'}")
    latest = store.scores_as_of(utcnow())
    store.close()
    with_score = [s for s in latest.values() if s.score is not None]
    assert len(with_score) > 300
    for s in with_score:
        assert s.churn_probability == pytest.approx(float(model.probability(s.score)), rel=1e-12)
    account = with_score[0].account_id
    shown = CliRunner().invoke(app, ["explain", account, "--config", str(out)])
    assert shown.exit_code == 0, shown.output
    p = 100 * with_score[0].churn_probability
    assert f"churn risk: {p:.1f} % within 30 days" in shown.stdout
