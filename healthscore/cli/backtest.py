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
    observable,
    pipeline_scorer,
    write_report,
)
from healthscore.backtest.scores_out import write_scores
from healthscore.backtest.view import render_backtest, render_fit
from healthscore.cli.app import stdout_console
from healthscore.core.durations import parse_duration, parse_step
from healthscore.core.errors import ConfigError
from scoring.backtest import json_safe
from scoring.fit import DateSplit, Holdout, split_dates


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: not a date (YYYY-MM-DD): {value!r}") from None


def parse_dates(text: str) -> list[date]:
    """``--dates D1,D2,…`` (order and repeats are checked by :meth:`Plan.of_dates`)."""
    items = [item.strip() for item in text.split(",")]
    out = []
    for k, item in enumerate(items, 1):
        if not item:
            raise ConfigError(f"--dates: date {k} of {text!r} is empty")
        out.append(parse_day(item, f"--dates (date {k})"))
    return out


def make_plan(
    start: str | None,
    end: str | None,
    every: str | None,
    horizon: str,
    dates: str | None = None,
) -> Plan:
    """The snapshot dates: ``--from``/``--to``/``--every`` (14d by default; ``1mo`` steps by
    calendar month), or explicit ``--dates`` — one or the other."""
    try:
        span = parse_duration(horizon)
    except ValueError as exc:
        raise ConfigError(f"--horizon {exc}") from None
    if dates is not None:
        mixed = [o for o, v in (("--from", start), ("--to", end), ("--every", every)) if v]
        if mixed:
            raise ConfigError(
                f"--dates names the snapshot dates itself: drop {' and '.join(mixed)}"
            )
        return Plan.of_dates(parse_dates(dates), span)
    if start is None or end is None:
        raise ConfigError(
            "which snapshots? give --from and --to (and --every, default 14d), or --dates D1,D2,…"
        )
    try:
        step = parse_step(every or "14d")
    except ValueError as exc:
        raise ConfigError(f"--every {exc}") from None
    return Plan(parse_day(start, "--from"), parse_day(end, "--to"), step, span)


def make_split(holdout: float | None, train_until: str | None, test_from: str | None) -> Holdout:
    """``--holdout`` (the later share judged; 0.34 by default) or the explicit split."""
    if train_until is None and test_from is None:
        share = 0.34 if holdout is None else holdout
        if not 0 < share < 1:
            raise ConfigError(f"--holdout must be between 0 and 1; got {share}")
        return share
    if holdout is not None:
        raise ConfigError("--holdout and --train-until/--test-from are two ways to split: give one")
    try:
        return DateSplit(
            parse_day(train_until, "--train-until") if train_until else None,
            parse_day(test_from, "--test-from") if test_from else None,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
    split: Holdout | None = None,
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
    if split is not None:  # a split that cannot work fails before the long scoring
        try:
            split_dates(observable(plan, until)[0], plan.horizon, split)
        except ValueError as exc:
            raise ConfigError(f"cannot fit: {exc}") from None
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
    scores_out: Path | None = None,
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
    if scores_out is not None:
        rows = write_scores(result.data, scores_out)
        console.print(f"scores: {scores_out} ({rows} rows)", highlight=False)


def fit_command(
    rt: Any,
    plan: Plan,
    console: Console,
    *,
    outcomes: str | None,
    out: Path,
    bands: bool,
    holdout: Holdout,
    dry_run: bool,
    report: Path | None,
    outcomes_until: str | None,
    weights_only: bool = False,
    max_measures: int = 12,
    scores_out: Path | None = None,
) -> None:
    config_path = Path(rt.config_path)
    if out.resolve() == config_path.resolve():
        raise ConfigError(
            f"--out {out} is the live configuration: fit never replaces it; "
            "write the proposal elsewhere and review the diff"
        )
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
            scores_out=scores_out,
        )
        return
    result = _evaluate(
        rt,
        plan,
        console,
        outcomes=outcomes,
        outcomes_until=outcomes_until,
        split=holdout,
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
    _write_judged(console, fitted.judged, None if dry_run else scores_out)
    print(
        json.dumps(
            {
                "auc_default": fitted.auc_default,
                "auc_fitted": fitted.auc_fitted,
                "rows_compared": fitted.rows_compared,
                **_split_json(fitted.result.split, fitted.held_out),
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
    holdout: Holdout,
    dry_run: bool,
    report: Path | None,
    outcomes_until: str | None,
    max_measures: int,
    scores_out: Path | None = None,
) -> None:
    """`healthscore fit` (the default): learn measures, bands and weights; write the card."""
    from healthscore.backtest.inventory import inventory_of, pipeline_card_scorer
    from healthscore.backtest.learn import churn_probabilities, learn_card, write_probabilities
    from healthscore.backtest.view import render_learned

    config_path = Path(rt.config_path)
    run = _evaluate(
        rt, plan, console, outcomes=outcomes, outcomes_until=outcomes_until, split=holdout
    )
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
    _write_judged(console, fitted.judged, None if dry_run else scores_out)
    print(
        json.dumps(
            {
                "auc_default": fitted.auc_default,
                "auc_fitted": fitted.auc_fitted,
                "rows_compared": fitted.rows_compared,
                **_split_json(fitted.split, fitted.held_out),
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


def _write_judged(console: Console, judged: Any, scores_out: Path | None) -> None:
    """``fit --scores-out``: the fitted card's rows on the judged snapshots."""
    if scores_out is None or judged is None:
        return
    rows = write_scores(judged, scores_out)
    console.print(
        f"fitted card's scores on the judged snapshots: {scores_out} ({rows} rows)",
        highlight=False,
    )


def _split_json(split: Any, held_out: dict[str, Any] | None) -> dict[str, Any]:
    """The split and the headline's companions in the fit's one-line JSON."""
    detail = held_out or {}
    return json_safe(
        {
            "test_snapshots": len(split.test_dates),
            "train_snapshots": len(split.train_dates),
            "train_dates": split.train_dates,
            "test_dates": split.test_dates,
            "dropped_dates": split.dropped_dates,
            "overlap_dates": split.overlap_dates,
            "auc_counts": detail.get("auc_counts"),
            "auc_default_scored_only": detail.get("auc_default_scored_only"),
            "auc_fitted_scored_only": detail.get("auc_fitted_scored_only"),
            "insufficient_rows_default": (detail.get("insufficient_default") or {}).get("rows"),
            "insufficient_rows_fitted": (detail.get("insufficient_fitted") or {}).get("rows"),
        }
    )
