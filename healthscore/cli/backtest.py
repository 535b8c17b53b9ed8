"""What ``healthscore backtest`` and ``healthscore fit`` do (cli.py only declares options)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from healthscore.backtest.run import (
    Evaluation,
    Plan,
    churn_dates,
    evaluate,
    pipeline_scorer,
    write_report,
)
from healthscore.backtest.view import render_backtest, render_fit
from healthscore.cli.app import stdout_console
from healthscore.core.durations import parse_duration
from healthscore.core.errors import ConfigError


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: not a date (YYYY-MM-DD): {value!r}") from None


def make_plan(start: str, end: str, every: str, horizon: str) -> Plan:
    try:
        return Plan(
            parse_day(start, "--from"),
            parse_day(end, "--to"),
            parse_duration(every),
            parse_duration(horizon),
        )
    except ValueError as exc:  # a malformed duration
        raise ConfigError(f"{exc}") from None


@dataclass
class _Run:
    evaluation: Evaluation
    pipeline: Any
    outcomes: dict[str, Any]


def _evaluate(
    rt: Any,
    plan: Plan,
    console: Console,
    *,
    outcomes: str | None,
    outcomes_until: str | None,
    **kwargs: Any,
) -> _Run:
    from healthscore.pipeline.outcomes import load_outcomes

    pipeline = rt.pipeline()
    known = load_outcomes(rt.config, rt.store, outcomes)
    churn = churn_dates(known)
    if not any(d is not None for d in churn.values()):
        raise ConfigError(
            "no churn outcomes found: pass --outcomes FILE (account_id, "
            "churn_date) or configure outcomes in the YAML"
        )
    until = (
        parse_day(outcomes_until, "--outcomes-until") if outcomes_until else pipeline.clock().date()
    )
    with Progress(
        TextColumn("scoring snapshots"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(plan.dates()))
        result = evaluate(
            rt.config.scorecard,
            pipeline_scorer(pipeline, known),
            churn,
            plan,
            observed_until=until,
            progress=lambda d: bar.update(task, advance=1, description=str(d)),
            **kwargs,
        )
    return _Run(result, pipeline, known)


def backtest_command(
    rt: Any,
    plan: Plan,
    console: Console,
    *,
    outcomes: str | None,
    out: Path,
    as_json: bool,
    draws: int,
    seed: int,
    outcomes_until: str | None,
) -> None:
    result = _evaluate(
        rt, plan, console, outcomes=outcomes, outcomes_until=outcomes_until, draws=draws, seed=seed
    ).evaluation
    json_path, html_path = write_report(result.report, out)
    if as_json:
        print(json.dumps(json.loads(json_path.read_text())))
    else:
        render_backtest(stdout_console(), result.report)
    console.print(f"report: {html_path}\njson:   {json_path}", highlight=False)


def fit_command(
    rt: Any,
    plan: Plan,
    console: Console,
    *,
    outcomes: str | None,
    out: Path,
    bands: bool,
    holdout: float,
    dry_run: bool,
    report: Path | None,
    outcomes_until: str | None,
    weights_only: bool = False,
    max_measures: int = 12,
) -> None:
    config_path = Path(rt.config_path)
    if out.resolve() == config_path.resolve():
        raise ConfigError(
            f"--out {out} is the live configuration: fit never replaces it; "
            "write the proposal elsewhere and review the diff"
        )
    if not 0 < holdout < 1:
        raise ConfigError(f"--holdout must be between 0 and 1; got {holdout}")
    if max_measures < 1:
        raise ConfigError(f"--max-measures must be at least 1; got {max_measures}")
    text = config_path.read_text(encoding="utf-8")
    if not weights_only:
        _learn_command(
            rt,
            plan,
            console,
            text=text,
            outcomes=outcomes,
            out=out,
            bands=bands,
            holdout=holdout,
            dry_run=dry_run,
            report=report,
            outcomes_until=outcomes_until,
            max_measures=max_measures,
        )
        return
    result = _evaluate(
        rt,
        plan,
        console,
        outcomes=outcomes,
        outcomes_until=outcomes_until,
        fit_card=(text, str(config_path)),
        holdout=holdout,
        bands=bands,
    ).evaluation
    fitted = result.fitted
    assert fitted is not None
    render_fit(stdout_console(), fitted.as_dict(str(out)))
    if fitted.result.kept_current:
        console.print(
            "[yellow]the outcomes do not pay for other weights[/]: no reweighting "
            "beat the current proportions on the last fitting snapshots, so the "
            "proposal keeps them"
        )
    if fitted.diff:
        stdout_console().print(fitted.diff, markup=False, highlight=False, end="")
    if bands and fitted.bands is None:
        console.print("[yellow]no grade borders met the lift targets[/]; kept the current ones")
    if dry_run:
        console.print(f"dry run: {out} not written")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(fitted.text, encoding="utf-8")
        console.print(
            f"fitted scorecard: {out} (the live {config_path} is unchanged; "
            f"`healthscore validate {out}` checks it)",
            highlight=False,
        )
    if report is not None:
        result.report["fit"] = fitted.as_dict(str(out))
        json_path, html_path = write_report(result.report, report)
        console.print(f"report: {html_path}\njson:   {json_path}", highlight=False)
    print(
        json.dumps(
            {
                "auc_default": fitted.auc_default,
                "auc_fitted": fitted.auc_fitted,
                "rows_compared": fitted.rows_compared,
                "test_snapshots": len(fitted.result.split.test_dates),
                "train_snapshots": len(fitted.result.split.train_dates),
                "weights": fitted.result.weights,
                "bands": fitted.bands,
                "kept_current": fitted.result.kept_current,
                "written": None if dry_run else str(out),
            }
        )
    )


def _learn_command(
    rt: Any,
    plan: Plan,
    console: Console,
    *,
    text: str,
    outcomes: str | None,
    out: Path,
    bands: bool,
    holdout: float,
    dry_run: bool,
    report: Path | None,
    outcomes_until: str | None,
    max_measures: int,
) -> None:
    """`healthscore fit` (the default): learn measures, bands and weights; write the card."""
    from healthscore.backtest.inventory import inventory_of, pipeline_card_scorer
    from healthscore.backtest.learn import churn_probabilities, learn_card, write_probabilities
    from healthscore.backtest.view import render_learned

    config_path = Path(rt.config_path)
    run = _evaluate(rt, plan, console, outcomes=outcomes, outcomes_until=outcomes_until)
    scorer = pipeline_card_scorer(run.pipeline, run.outcomes)
    inventory = inventory_of(rt.config, rt.store, run.pipeline.start_attribute)

    def say(message: str) -> None:
        console.print(f"[dim]fit:[/] {message}", highlight=False)

    fitted = learn_card(
        rt.config.scorecard,
        text,
        str(config_path),
        run.evaluation.data,
        scorer,
        inventory,
        holdout=holdout,
        max_measures=max_measures,
        bands=bands,
        say=say,
    )
    summary = fitted.as_dict(str(out))
    render_learned(stdout_console(), summary)
    if fitted.auc_fitted < fitted.auc_default:
        console.print(
            "[yellow]the fitted card ranks the judged snapshots worse than the current one[/]: "
            "keep the current card (the proposal is written for review only)"
        )
    if fitted.diff:
        stdout_console().print(fitted.diff, markup=False, highlight=False, end="")
    if bands and fitted.bands is None:
        console.print("[yellow]no grade borders met the lift targets[/]; kept the current ones")
    churn_file = out.with_name(f"{out.stem}.churn.csv")
    today = run.pipeline.clock().date()
    if dry_run:
        console.print(f"dry run: {out} and {churn_file} not written")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(fitted.text, encoding="utf-8")
        write_probabilities(churn_probabilities(scorer, fitted, today), churn_file)
        console.print(
            f"fitted scorecard: {out} (the live {config_path} is unchanged; "
            f"`healthscore validate {out}` checks it)\n"
            f"churn probability within {plan.horizon.days}d per account as of {today}: "
            f"{churn_file}",
            highlight=False,
        )
    if report is not None and not dry_run:
        run.evaluation.report["fit"] = summary
        json_path, html_path = write_report(run.evaluation.report, report)
        console.print(f"report: {html_path}\njson:   {json_path}", highlight=False)
    print(
        json.dumps(
            {
                "auc_default": fitted.auc_default,
                "auc_fitted": fitted.auc_fitted,
                "rows_compared": fitted.rows_compared,
                "test_snapshots": len(fitted.split.test_dates),
                "train_snapshots": len(fitted.split.train_dates),
                "measures": [m.name for m in fitted.learned.measures],
                "weights": {n: m.weight for n, m in fitted.card.measures.items()},
                "calibration_max_gap": summary["calibration"].get("max_gap"),
                "bands": fitted.bands,
                "kept_current": False,
                "written": None if dry_run else str(out),
                "probabilities": None if dry_run else str(churn_file),
            }
        )
    )
