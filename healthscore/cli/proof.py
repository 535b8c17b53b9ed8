"""Commands that prove the score: backtest, fit, backfill."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from healthscore.cli.app import ConfigOption, DryRun, _runtime, app, console, reports_errors
from healthscore.core.errors import ConfigError


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} must be a date like 2026-01-31; got {value!r}") from None


@app.command()
@reports_errors
def backfill(
    start: Annotated[str, typer.Option("--from", help="first snapshot date (YYYY-MM-DD)")],
    end: Annotated[str, typer.Option("--to", help="last snapshot date (past)")],
    every: Annotated[str, typer.Option(help="days between snapshots")] = "7d",
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="score and report; save nothing")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="re-score snapshots already backfilled")
    ] = False,
) -> None:
    """Fill the score history at past dates from stored signals and usage (point in time)."""
    from healthscore.core.durations import parse_duration
    from healthscore.pipeline.backfill import backfill as run_backfill

    try:
        step = parse_duration(every)
    except ValueError as exc:
        raise ConfigError(f"--every {exc}") from None
    pipeline = _runtime(config).pipeline()

    def progress(item: dict[str, Any]) -> None:
        grades = ", ".join(f"{g} {n}" for g, n in item["grades"].items())
        console.print(
            f"{item['date']}: {item['accounts']} accounts ({grades}) — "
            f"{item['action']}{' (dry run)' if dry_run else ''}",
            highlight=False,
        )

    report = run_backfill(
        pipeline,
        _day(start, "--from"),
        _day(end, "--to"),
        step,
        dry_run=dry_run,
        replace=replace,
        progress=progress,
    )
    print(json.dumps(report.summary()))


Horizon = Annotated[
    str,
    typer.Option(
        "--horizon", help="churn within this long after a snapshot counts (e.g. 30d, 90d)"
    ),
]
FromDate = Annotated[str | None, typer.Option("--from", help="first snapshot date (YYYY-MM-DD)")]
ToDate = Annotated[str | None, typer.Option("--to", help="last snapshot date (YYYY-MM-DD)")]
Every = Annotated[
    str | None,
    typer.Option(
        "--every",
        help="time between snapshots: 14d, 2w, or 1mo for calendar months (month-ends stay "
        "month-ends) [default: 14d]",
    ),
]
Dates = Annotated[
    str | None,
    typer.Option(
        "--dates",
        help="explicit snapshot dates D1,D2,… (ascending) instead of --from/--to/--every",
    ),
]
ScoresOut = Annotated[
    Path | None,
    typer.Option(
        "--scores-out",
        help="also write every row as CSV: account_id, as_of, score, grade, probability, churned",
    ),
]
OutcomesFile = Annotated[
    str | None,
    typer.Option(
        "--outcomes",
        help="CSV of account_id, churn_date[, renewal_date] (else the YAML's "
        "outcomes: file or CRM field)",
    ),
]
OutcomesUntil = Annotated[
    str | None,
    typer.Option(
        "--outcomes-until",
        help="last day outcomes are known for (default: today); snapshots "
        "whose horizon reaches past it are left out",
    ),
]


@app.command()
@reports_errors
def backtest(
    horizon: Horizon = "30d",
    start: FromDate = None,
    end: ToDate = None,
    every: Every = None,
    dates: Dates = None,
    outcomes: OutcomesFile = None,
    out: Annotated[
        Path, typer.Option("--out", help="folder for backtest.html and backtest.json")
    ] = Path("backtest"),
    as_json: Annotated[
        bool, typer.Option("--json", help="print the JSON instead of tables")
    ] = False,
    draws: Annotated[int, typer.Option(help="bootstrap draws for the AUC intervals")] = 200,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    outcomes_until: OutcomesUntil = None,
    scores_out: ScoresOut = None,
    config: ConfigOption = None,
) -> None:
    """Does the score predict churn? Score each past snapshot, compare with outcomes.

    The headline ROC AUC counts every row: accounts graded insufficient_data are ranked
    riskiest; the AUC without them and their count and churn rate are shown beside it.
    """
    from healthscore.cli.backtest import backtest_command, make_plan

    plan = make_plan(start, end, every, horizon, dates)
    backtest_command(
        _runtime(config),
        plan,
        console,
        outcomes=outcomes,
        out=out,
        as_json=as_json,
        draws=draws,
        seed=seed,
        outcomes_until=outcomes_until,
        scores_out=scores_out,
    )


@app.command()
@reports_errors
def fit(
    horizon: Horizon = "30d",
    start: FromDate = None,
    end: ToDate = None,
    every: Every = None,
    dates: Dates = None,
    outcomes: OutcomesFile = None,
    out: Annotated[Path, typer.Option("--out", help="where to write the fitted scorecard")] = Path(
        "fitted.yaml"
    ),
    bands: Annotated[
        bool, typer.Option("--bands", help="also learn the red/yellow borders")
    ] = False,
    weights_only: Annotated[
        bool,
        typer.Option(
            "--weights-only",
            help="only re-weight the card's measures (their normalizations as written)",
        ),
    ] = False,
    max_measures: Annotated[
        int, typer.Option("--max-measures", help="at most this many measures in a learned card")
    ] = 12,
    holdout: Annotated[
        float | None,
        typer.Option(help="share of the latest snapshots held out for judging [default: 0.34]"),
    ] = None,
    train_until: Annotated[
        str | None,
        typer.Option(
            "--train-until", help="fit on the snapshots up to this date (instead of --holdout)"
        ),
    ] = None,
    test_from: Annotated[
        str | None,
        typer.Option(
            "--test-from", help="judge on the snapshots from this date (instead of --holdout)"
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="also write the HTML/JSON report (with the fit) here"),
    ] = None,
    outcomes_until: OutcomesUntil = None,
    scores_out: ScoresOut = None,
    dry_run: DryRun = False,
    config: ConfigOption = None,
) -> None:
    """Learn the card from outcomes — measures, bands, weights — as a copy of the YAML + a diff.

    Candidate measures from every usage metric and field are binned, selected by held-out
    log loss and weighted on the earlier snapshots; the current and the fitted card are
    judged on the later ones (`--holdout`, or `--train-until`/`--test-from`), every row
    counted, and the fitted score is calibrated there as a churn probability.
    `--weights-only` only re-weights the card's own measures. The live configuration is
    never replaced.
    """
    from healthscore.cli.backtest import fit_command, make_plan, make_split

    plan = make_plan(start, end, every, horizon, dates)
    split = make_split(holdout, train_until, test_from)
    fit_command(
        _runtime(config),
        plan,
        console,
        outcomes=outcomes,
        out=out,
        bands=bands,
        holdout=split,
        dry_run=dry_run,
        report=report,
        outcomes_until=outcomes_until,
        weights_only=weights_only,
        max_measures=max_measures,
        scores_out=scores_out,
    )
