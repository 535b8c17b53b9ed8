"""The scorecard's churn_model: validated at load with file, line and field; written by `fit`
from its held-out calibration; kept with each score in a store made before it existed."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import text

from healthscore.backtest.card_yaml import with_churn_model
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from scoring.churn_model import half_up
from store import Store
from store.models import utcnow

EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()
ANCHOR = "scorecard:\n  name: default-dear\n"
MODEL = """  churn_model:
    horizon: 30d
    intercept: 1.5
    slope: -0.06
    fitted_on: {rows: 1200, churned: 90, from: 2026-05-01, to: 2026-09-01}
    arr_attribute: arr
"""


def card_file(tmp_path: Path, model: str = MODEL) -> tuple[Path, str]:
    text = EXAMPLE.replace(ANCHOR, ANCHOR + model, 1)
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    return path, text


def error_for(tmp_path: Path, old: str, new: str) -> tuple[str, int]:
    """Load the card with one edit to its churn model; the error and the edit's line."""
    assert old in MODEL, old
    path, text = card_file(tmp_path, MODEL.replace(old, new, 1))
    line = text[: text.index(new)].count("\n") + 1
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value), line


def outside(text: str) -> list[str]:
    """The YAML's lines but for the scorecard's churn_model section."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("  churn_model:"):
            inside = True
            continue
        if inside and line.startswith("    "):
            continue
        inside = False
        out.append(line)
    return out


def test_a_churn_model_loads_and_does_not_change_the_scorecard_version(tmp_path: Path) -> None:
    path, _ = card_file(tmp_path)
    card = load_config(path).scorecard
    model = card.churn_model
    assert model is not None and model.horizon_days == 30 and model.arr_attribute == "arr"
    assert model.fitted_on is not None and model.fitted_on.churned == 90
    assert card.version == load_config().scorecard.version  # the score is the same
    p = model.probability(np.array([0.0, 50.0, 100.0, np.nan]))
    assert p[1] == pytest.approx(1 / (1 + math.exp(-(1.5 - 0.06 * 50))))
    assert p[0] > p[1] > p[2] and math.isnan(p[3])
    assert model.crm_roles() == ("churn_risk", "arr_at_risk")
    assert load_config().scorecard.churn_model is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("slope: -0.06", "slope: 0.06", "scorecard.churn_model.slope: must be ≤ 0"),
        ("horizon: 30d", "horizon: 36h", "scorecard.churn_model.horizon: must be whole days"),
        ("horizon: 30d", "horizon: soon", "scorecard.churn_model.horizon: must be a duration"),
        ("intercept: 1.5", "intercept: high", "scorecard.churn_model.intercept: Input should"),
        ("arr_attribute: arr", "arr_attribute: arrr", "unknown attribute 'arrr'"),
        ("churned: 90", "churned: 9000", "churned (9000) cannot exceed rows (1200)"),
        (
            "slope: -0.06",
            "slop: -0.06",
            "scorecard.churn_model.slop: unknown field (check the spelling)",
        ),
    ],
)
def test_a_malformed_churn_model_fails_at_load_with_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    msg, line = error_for(tmp_path, old, new)
    assert expected in msg
    assert f"healthscore.yaml:{line} scorecard.churn_model" in msg


def test_a_missing_slope_is_named(tmp_path: Path) -> None:
    msg, _ = error_for(tmp_path, "    slope: -0.06\n", "    # slope forgotten\n")
    assert "scorecard.churn_model.slope: Field required" in msg


def test_fit_writes_the_calibration_as_a_churn_model_that_validates(tmp_path: Path) -> None:
    """The fitted YAML gets the held-out calibration; a re-fit replaces it (ARR attribute
    kept) and leaves every other line as it was."""
    live = load_config().scorecard
    calibration = {
        "map": {
            "intercept": 2.25,
            "slope": -0.071,
            "horizon_days": 30,
            "rows": 512,
            "churned": 40,
        }
    }
    days = [datetime(2026, 8, 1, tzinfo=UTC).date(), datetime(2026, 9, 1, tzinfo=UTC).date()]
    fitted = with_churn_model(EXAMPLE, "healthscore.yaml", live, calibration, days)
    assert "# P(churn within 30d) = 1/(1+exp(-(intercept + slope·score)))" in fitted
    path = tmp_path / "fitted.yaml"
    path.write_text(fitted)
    model = load_config(path).scorecard.churn_model
    assert model is not None and (model.intercept, model.slope) == (2.25, -0.071)
    assert model.fitted_on is not None and model.fitted_on.rows == 512
    assert str(model.fitted_on.start) == "2026-08-01" and str(model.fitted_on.end) == "2026-09-01"
    assert outside(fitted) == EXAMPLE.splitlines()  # added; every other line as it was
    # a re-fit of a card that has one: replaced in place, its ARR attribute kept
    with_arr, _ = card_file(tmp_path)
    text = with_arr.read_text()
    card = load_config(with_arr).scorecard
    refit = with_churn_model(text, str(with_arr), card, calibration, days)
    assert refit.count("churn_model:") == 1 and "arr_attribute: arr" in refit
    doc = yaml.safe_load(refit)["scorecard"]["churn_model"]
    assert doc["intercept"] == 2.25 and doc["fitted_on"]["churned"] == 40
    assert outside(refit) == outside(text)
    # no calibration, or one where a higher score means more churn: nothing written
    assert with_churn_model(EXAMPLE, "x", live, {"map": None}, days) == EXAMPLE
    rising = {"map": {**calibration["map"], "slope": 0.02}}
    assert with_churn_model(EXAMPLE, "x", live, rising, days) == EXAMPLE


def test_half_up_matches_what_salesforce_stores() -> None:
    assert half_up(12.25, 1) == 12.3 and half_up(0.05, 1) == 0.1 and half_up(18000.5, 0) == 18001


def test_a_store_made_before_the_churn_columns_gets_them(db_url: str) -> None:
    """An existing deployment's scores table (no churn columns) is extended on open; old rows
    read NULL and new ones keep the probability and ARR at risk."""
    old = Store(db_url)
    now = utcnow()
    with old.engine.begin() as conn:
        conn.execute(text("ALTER TABLE scores DROP COLUMN churn_probability"))
        conn.execute(text("ALTER TABLE scores DROP COLUMN arr_at_risk"))
        conn.execute(
            text(
                "INSERT INTO score_runs (started_at, scorecard_version, accounts_scored) "
                "VALUES (:at, 'v1', 1)"
            ),
            {"at": now.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                "INSERT INTO scores (run_id, account_id, scored_at, score, grade, coverage, "
                "groups, reasons) VALUES (1, 'A1', :at, 40, 'red', 1, '{}', '{}')"
            ),
            {"at": now.replace(tzinfo=None)},
        )
    old.close()
    store = Store(db_url)  # a newer healthscore starts on it
    Store(db_url).close()  # and again: adding the columns is repeatable
    assert store.scores_as_of(utcnow())["A1"].churn_probability is None
    run = store.start_run("v2", started_at=utcnow())
    row = {
        "account_id": "A1",
        "scored_at": utcnow(),
        "score": 35.0,
        "grade": "red",
        "coverage": 1.0,
        "groups": {},
        "reasons": {},
        "churn_probability": 0.4213,
        "arr_at_risk": 21065.0,
    }
    store.save_scores(run, [row])
    latest = store.scores_as_of(utcnow())["A1"]
    assert (latest.churn_probability, latest.arr_at_risk) == (0.4213, 21065.0)
    store.close()
