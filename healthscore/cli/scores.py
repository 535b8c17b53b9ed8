"""Commands that score: validate, run, score, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from healthscore.cli.app import (
    ConfigOption,
    DryRun,
    _runtime,
    app,
    console,
    reports_errors,
    stdout_console,
)


@app.command()
@reports_errors
def validate(path: Annotated[Path | None, typer.Argument(help="file to check")] = None) -> None:
    """Check a configuration file (sources, scorecard, alerts) without running anything."""
    from connectors.registry import load_settings
    from healthscore.config import load_config

    target = path or load_settings().healthscore_config
    config = load_config(target)
    card = config.scorecard
    from healthscore.governance.versioning import scorecard_version

    console.print(
        f"[green]ok[/] {target}: scorecard {card.name!r} (version "
        f"{scorecard_version(card, target)}), "
        f"{len(card.groups)} groups, {len(card.measures)} measures, "
        f"{len(card.derived)} derived metrics, {len(card.segments)} segments, "
        f"{len(config.metrics)} source metrics"
    )


@app.command()
@reports_errors
def run(config: ConfigOption = None, dry_run: DryRun = False) -> None:
    """Run one full cycle in-process (no broker): pull, score, write back, alert."""
    rt = _runtime(config)
    pipeline = rt.pipeline()
    if dry_run:
        syncs = pipeline.sync_all()
        record = syncs.get(pipeline.config.sources.record_crm)
        report, _ = pipeline.score(dry_run=True)
        print(
            json.dumps(
                {
                    "dry_run": True,
                    "accounts_pulled": getattr(record, "records", 0),
                    "records_skipped": getattr(record, "skipped", 0),
                    "scored": report.scored,
                    "grades": report.grades,
                }
            )
        )
        return
    cycle = pipeline.run_cycle()
    print(json.dumps(cycle.summary()))
    if cycle.write.pending:
        console.print(
            f"[yellow]{cycle.write.pending} CRM writes stay pending[/] and will be "
            f"retried next cycle ({cycle.write.error or 'record errors'})"
        )


@app.command()
@reports_errors
def score(
    config: ConfigOption = None,
    dry_run: DryRun = False,
    show: Annotated[int, typer.Option(help="accounts to list, lowest first")] = 15,
) -> None:
    """Score every account; with --dry-run nothing is recorded or queued."""
    from scoring import reasons_for

    pipeline = _runtime(config).pipeline()
    report, batch = pipeline.score(dry_run=dry_run)
    names = {a.id: a.name for a in pipeline.store.accounts()}
    table = Table(
        title=f"scores ({'dry run' if dry_run else f'run {report.run_id}'}) — "
        f"scorecard {report.scorecard_version}"
    )
    for col in ("account", "score", "grade", "segment", "coverage", "top reasons"):
        table.add_column(col)
    rows = sorted(
        range(len(batch.account_ids)),
        key=lambda i: (batch.score[i] == batch.score[i], batch.score[i]),
    )
    for i in rows[:show]:
        value = batch.score[i]
        table.add_row(
            names.get(batch.account_ids[i], batch.account_ids[i]),
            "–" if value != value else f"{value:.0f}",
            str(batch.grade[i]),
            batch.segment_name(i),
            f"{batch.coverage[i]:.0%}",
            "; ".join(str(r) for r in reasons_for(batch, i)),
        )
    stdout_console().print(table)
    print(
        json.dumps(
            {
                "dry_run": dry_run,
                "scored": report.scored,
                "grades": report.grades,
                "entered_red": report.entered_red,
                "writes_queued": report.writes_queued,
            }
        )
    )


@app.command()
@reports_errors
def explain(
    account: Annotated[str, typer.Argument(help="account id or exact name")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead")] = False,
) -> None:
    """Why an account scores what it does: every measure, its points, weight and loss."""
    from healthscore.cli.explain_view import render_explanation

    pipeline = _runtime(config).pipeline()
    found, explanation = pipeline.explain(account)
    if as_json:
        print(json.dumps({"name": found.name, **explanation.as_dict()}, default=str))
        return
    render_explanation(stdout_console(), found.name, explanation, pipeline.config.scorecard)
