"""The backtest counts every row (insufficient_data ranked riskiest), and the snapshot and
split options: ``--every 1mo``, ``--dates``, ``fit --train-until/--test-from``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from healthscore.backtest.run import Plan, backtest, score_dates
from healthscore.cli.main import app
from healthscore.config import config_from_document
from healthscore.core.durations import Months, parse_step
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import parse_yaml
from scoring import ScoreBatch, score
from scoring.fit import DateSplit, overlapping, split_dates

from .backtest_population import CONFIG, population

H30 = timedelta(days=30)
MONTH_ENDS = [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


# -- the headline counts every row -------------------------------------------------------------
def _dark_before_churn(pop, card, dark: set[str], days: int = 75):
    """The population's scorer, except that ``dark`` accounts report nothing in their last
    ``days`` before churning (the card cannot score them there: insufficient_data)."""
    churn = np.array(
        [pop.churn[a].toordinal() if pop.churn[a] else 10**9 for a in pop.ids], dtype=float
    )
    is_dark = np.array([a in dark for a in pop.ids])

    def run(times: Sequence[datetime]) -> Iterator[tuple[datetime, ScoreBatch]]:
        previous = None
        for when in times:
            table = pop.table(when.date())
            blank = is_dark & (churn - when.date().toordinal() <= days)
            columns = {k: np.where(blank, np.nan, v) for k, v in table.columns.items()}
            batch = score(card, replace(table, columns=columns), when, previous_grades=previous)
            previous = batch.grade
            yield when, batch

    return run


def test_insufficient_rows_that_churn_raise_the_headline_above_the_scored_only_auc() -> None:
    card = config_from_document(parse_yaml(CONFIG, "t.yaml")).scorecard
    pop = population(600, seed=5)
    churners = sorted(a for a, d in pop.churn.items() if d is not None)
    dark = set(churners[::3])  # a third of the churners go dark before they leave
    plan = Plan(date(2026, 1, 5), date(2026, 8, 1), timedelta(days=14), H30)
    # dark within the 30-day horizon before churning: every unscored row is a churner
    scored = score_dates(_dark_before_churn(pop, card, dark, 30), plan.dates())
    data, report = backtest(card, scored.snapshots, pop.churn, plan, draws=20)
    s = report["summary"]
    missing = np.isnan(data.score)
    ins = s["insufficient"]
    # the count is right: rows, accounts, their churn against the base rate
    assert ins["rows"] == int(missing.sum()) > 0
    assert ins["accounts"] == len({data.account_ids[a] for a in data.account[missing]})
    assert {data.account_ids[a] for a in data.account[missing]} <= dark
    assert ins["churned_rows"] == int(data.churned[missing].sum())
    assert ins["churn_rate"] == 1.0 and ins["base_churn_rate"] < 0.1
    # the dark churners ranked riskiest lift the headline above the scored-only AUC
    assert s["roc_auc"] > s["roc_auc_scored_only"] + 0.01
    assert s["roc_auc_ci"][0] <= s["roc_auc"] <= s["roc_auc_ci"][1]
    # per snapshot too: unscored churners ranked first can only raise it
    snaps = [x for x in report["snapshots"] if x["insufficient_churned"]]
    assert snaps and all(x["roc_auc"] >= x["roc_auc_scored_only"] for x in snaps)
    assert sum(x["insufficient_rows"] for x in report["snapshots"]) == ins["rows"]
    grades = {g["bucket"]: g for g in report["grades"]}
    assert grades["insufficient_data"]["rows"] == ins["rows"]


def test_insufficient_rows_that_stay_lower_the_headline() -> None:
    card = config_from_document(parse_yaml(CONFIG, "t.yaml")).scorecard
    pop = population(400, seed=6)
    plan = Plan(date(2026, 1, 5), date(2026, 6, 1), timedelta(days=14), H30)
    stayers = sorted(a for a, d in pop.churn.items() if d is None)
    dark = set(stayers[::4])  # never churn: "dark" for good (churn date far away)
    scorer = _dark_before_churn(pop, card, set(), 0)

    def run(times: Sequence[datetime]) -> Iterator[tuple[datetime, ScoreBatch]]:
        is_dark = np.array([a in dark for a in pop.ids])
        for when, batch in scorer(times):
            s = np.where(is_dark, np.nan, batch.score)
            g = np.where(is_dark, "insufficient_data", batch.grade)
            yield when, replace(batch, score=s, grade=g)

    scored = score_dates(run, plan.dates())
    _, report = backtest(card, scored.snapshots, pop.churn, plan, draws=10)
    s = report["summary"]
    assert s["insufficient"]["churn_rate"] == 0.0
    assert s["roc_auc"] < s["roc_auc_scored_only"] - 0.01


# -- snapshot dates ----------------------------------------------------------------------------
def test_calendar_months_keep_month_ends() -> None:
    assert parse_step("1mo") == Months(1) and parse_step("2 months") == Months(2)
    assert parse_step("14d") == timedelta(days=14) and parse_step("2w") == timedelta(weeks=2)
    assert parse_step("15m") == timedelta(minutes=15)  # m stays minutes
    plan = Plan(date(2026, 1, 31), date(2026, 4, 30), Months(1), H30)
    assert plan.dates() == MONTH_ENDS
    mid = Plan(date(2026, 1, 30), date(2026, 4, 30), Months(1), H30)
    assert mid.dates() == [
        date(2026, 1, 30),
        date(2026, 2, 28),
        date(2026, 3, 30),
        date(2026, 4, 30),
    ]
    assert Plan(date(2025, 11, 30), date(2026, 3, 1), Months(1), H30).dates()[1:3] == [
        date(2025, 12, 31),
        date(2026, 1, 31),
    ]
    assert plan.describe()["every"] == "1mo" and plan.describe()["every_days"] is None
    with pytest.raises(ValueError, match="1mo"):
        parse_step("0mo")
    with pytest.raises(ValueError, match="calendar months"):
        parse_step("monthly")


def test_explicit_dates_are_checked() -> None:
    assert Plan.of_dates(MONTH_ENDS, H30).dates() == MONTH_ENDS
    with pytest.raises(ConfigError, match="ascending"):
        Plan.of_dates([MONTH_ENDS[1], MONTH_ENDS[0]], H30)
    with pytest.raises(ConfigError, match="twice"):
        Plan.of_dates([MONTH_ENDS[0], MONTH_ENDS[0]], H30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dates", "2026-01-31,2026-02-30"], "--dates (date 2): not a date"),
        (["--dates", "2026-02-28,2026-01-31"], "ascending"),
        (["--dates", "2026-01-31,2026-01-31"], "given twice"),
        (["--dates", "2026-01-31,,2026-02-28"], "date 2 of"),
        (["--dates", "2026-01-31", "--from", "2026-01-01"], "drop --from"),
        (["--dates", "2026-01-31", "--every", "1mo"], "drop --every"),
        (["--from", "2026-01-31"], "give --from and --to"),
        (["--from", "2026-01-31", "--to", "2026-03-31", "--every", "1month!"], "--every"),
        (["--from", "2026-01-31", "--to", "2026-03-31", "--every", "1m"], "at least 1d"),
    ],
)
def test_snapshot_options_fail_plainly(args: list[str], message: str) -> None:
    for command in ("backtest", "fit"):
        result = CliRunner().invoke(app, [command, *args])
        assert result.exit_code == 2, result.output
        assert message in result.output


# -- the explicit split ------------------------------------------------------------------------
def test_explicit_split_fits_on_the_first_and_judges_on_the_last_months() -> None:
    split = DateSplit(date(2026, 2, 28), date(2026, 3, 31))
    assert split_dates(MONTH_ENDS, H30, split) == ([0, 1], [2, 3], [])
    assert split_dates(MONTH_ENDS, H30, DateSplit(test_from=date(2026, 3, 31)))[:2] == (
        [0, 1],
        [2, 3],
    )
    assert split_dates(MONTH_ENDS, H30, DateSplit(train_until=date(2026, 1, 31)))[:2] == (
        [0],
        [1, 2, 3],
    )
    # taken exactly as named, even where a fitting label reaches the judged period: that
    # snapshot is reported, not dropped (the share split drops it)
    assert split_dates(MONTH_ENDS, timedelta(days=45), split) == ([0, 1], [2, 3], [])
    assert overlapping(MONTH_ENDS, timedelta(days=45), [0, 1], [2, 3]) == [1]
    assert split_dates(MONTH_ENDS, timedelta(days=45), 0.5) == ([0], [2, 3], [1])


def test_explicit_split_errors_name_the_dates() -> None:
    with pytest.raises(ValueError, match="cannot both fit and judge"):
        DateSplit(date(2026, 3, 31), date(2026, 3, 31))
    with pytest.raises(ValueError, match="2026-01-31, 2026-02-28, 2026-03-31, 2026-04-30"):
        split_dates(MONTH_ENDS, H30, DateSplit(test_from=date(2026, 5, 31)))
    with pytest.raises(ValueError, match="no snapshot left to fit"):
        split_dates(MONTH_ENDS, H30, DateSplit(train_until=date(2026, 1, 1)))
    with pytest.raises(ValueError, match="--train-until/--test-from"):
        split_dates(MONTH_ENDS, timedelta(days=90), 0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-until", "2026-03-31", "--test-from", "2026-02-28"], "cannot both fit"),
        (["--train-until", "2026-02-28", "--holdout", "0.5"], "give one"),
        (["--test-from", "2026-31-03"], "--test-from: not a date"),
        (["--holdout", "1.5"], "between 0 and 1"),
    ],
)
def test_split_options_fail_plainly(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["fit", "--dates", ",".join(map(str, MONTH_ENDS)), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
