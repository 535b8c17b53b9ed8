"""Commands that pull data in: sync, load-usage, import-accounts, sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from healthscore.cli.app import (
    ConfigOption,
    DryRun,
    _runtime,
    app,
    console,
    reports_errors,
    stdout_console,
)
from healthscore.core.errors import ConfigError
from healthscore.core.text import printable


@app.command()
@reports_errors
def sync(
    source: Annotated[
        str, typer.Argument(help="a source name (see `healthscore sources --list`) or all")
    ] = "all",
    config: ConfigOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="ignore the cursor: re-read everything")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="usage sources: read and check everything, write nothing"),
    ] = False,
) -> None:
    """Pull changed records from one source (or all, in dependency order) into the store."""
    from connectors.contract import summarize
    from connectors.registry import source as registered

    pipeline = _runtime(config).pipeline()
    enabled = pipeline.enabled_sources()
    wanted = enabled if source == "all" else [source]
    unknown = [w for w in wanted if w not in enabled]
    if unknown:
        raise ConfigError(
            f"unknown or disabled source {unknown[0]!r} (enabled: {', '.join(enabled)})"
        )
    if dry_run:
        wanted = [w for w in wanted if registered(w).dry_run] if source == "all" else wanted
        if not wanted or not all(registered(w).dry_run for w in wanted):
            supported = [w for w in enabled if registered(w).dry_run]
            raise ConfigError(
                f"--dry-run is for the usage sources, which can check without writing "
                f"({', '.join(supported) or 'none enabled'})"
            )
    results = {}
    failed = False
    with rows_progress("records") as bar:

        def tracker(label: str) -> Callable[[int], None]:
            task = bar.add_task(f"{label} {'(full)' if full else 'since cursor'}", total=None)
            return lambda n: bar.advance(task, n)

        for name in wanted:
            report = pipeline.sync(name, full=full, dry_run=dry_run, tracker=tracker)
            results[name] = summarize(report)
            if hasattr(report, "tally"):
                failed |= _print_usage_problems(report)
    print(json.dumps(results, default=str))
    if failed:
        raise typer.Exit(1)


def rows_progress(unit: str = "rows") -> Progress:
    """A spinner with a running count of ``unit`` and its speed (transient when piped)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} " + unit),
        RowsPerSecond(),
        console=console,
        transient=not console.is_terminal,
    )


class RowsPerSecond(ProgressColumn):
    """The task's current speed, as rows/s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


def _shown(value: object, limit: int | None = 60) -> Text:
    """A value from a file or a vendor as a cell or line shows it: escaped, shortened, and
    plain text (never read as Rich markup: an id like ``[/x]`` would break the print)."""
    return Text(printable(value, limit))


def _print_usage_problems(report: Any) -> bool:
    """Say what a usage load skipped (on stderr); True if a whole file could not be read."""
    tally = report.tally
    for problem in tally.problems[:20]:
        console.print(Text("skipped ", style="yellow") + _shown(problem, 500), highlight=False)
    hidden = tally.problems_total - min(20, len(tally.problems))
    if hidden > 0:
        console.print(f"… and {hidden} more (counted by reason in the summary)")
    if tally.skipped:
        console.print(
            "skipped rows by reason: "
            + ", ".join(f"{reason} {count:,}" for reason, count in sorted(tally.skipped.items()))
        )
    return any(f.status == "failed" for f in getattr(report, "files", []))


@app.command(name="load-usage")
@reports_errors
def load_usage(
    files: Annotated[
        list[Path], typer.Argument(help="CSV or Parquet files", exists=True, dir_okay=False)
    ],
    config: ConfigOption = None,
    form: Annotated[
        str | None, typer.Option(help="long or wide (default: sources.usage_file.form)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read and check every row; write nothing")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="load even a file loaded before (same content)")
    ] = False,
) -> None:
    """Load usage files into the store with the sources.usage_file column mapping."""
    if form not in (None, "long", "wide"):
        raise ConfigError(f"--form must be long or wide, not {form!r}")
    pipeline = _runtime(config).pipeline()
    with rows_progress() as bar:
        task = bar.add_task("usage " + ("(dry run)" if dry_run else "load"), total=None)
        try:
            report = pipeline.sync(
                "usage_file",
                paths=list(files),
                form=form,
                dry_run=dry_run,
                force=force,
                progress=lambda n: bar.advance(task, n),
            )
        except ValueError as exc:  # the mapping does not fit --form (e.g. wide, no metrics)
            raise ConfigError(f"sources.usage_file with --form {form}: {exc}") from None
    failed = _print_usage_problems(report)
    print(json.dumps(report.summary(), default=str))
    if failed:
        raise typer.Exit(1)


@app.command(name="load-attributes")
@reports_errors
def load_attributes(
    path: Annotated[
        Path | None,
        typer.Argument(help="CSV: account_id,date,attribute,value (default: the configured)"),
    ] = None,
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read and check every row; write nothing")
    ] = False,
) -> None:
    """Load account attributes as of each date (seats, plan, renewal date …) for
    point-in-time scoring; loading the same file again changes nothing."""
    from connectors.attribute_history.config import SOURCE, AttributeHistoryFile
    from connectors.attribute_history.load import load_attribute_history
    from connectors.attribute_history.source import resolved

    pipeline = _runtime(config).pipeline()
    spec = getattr(pipeline.config.sources, SOURCE, None) or AttributeHistoryFile()
    with rows_progress() as bar:
        task = bar.add_task("attributes " + ("(dry run)" if dry_run else "load"), total=None)
        report = load_attribute_history(
            pipeline.store,
            resolved(spec, pipeline.config_path),
            path,
            dry_run=dry_run,
            progress=lambda n: bar.advance(task, n),
        )
    _print_usage_problems(report)
    print(json.dumps(report.summary(), default=str))


@app.command(name="import-accounts")
@reports_errors
def import_accounts(
    path: Annotated[
        Path | None, typer.Argument(help="CSV file (default: sources.accounts_file.path)")
    ] = None,
    config: ConfigOption = None,
    dry_run: DryRun = False,
) -> None:
    """Read accounts from a CSV file (id, name, start date, attributes) into the store."""
    pipeline = _runtime(config).pipeline()
    if pipeline.config.sources.accounts_file is None:
        raise ConfigError(
            "no sources.accounts_file in the configuration: add one to import accounts from a file"
        )
    report = pipeline.sync("accounts_file", path=path, dry_run=dry_run)
    if report.skipped:
        console.print(
            Text(f"{report.skipped} rows skipped", style="yellow") + Text(" (also in the log):"),
            highlight=False,
        )
        for problem in report.problems[:5]:
            console.print(Text("  ") + _shown(problem, 500), highlight=False)
    print(json.dumps({"dry_run": dry_run, **asdict(report)}))


@app.command()
@reports_errors
def sources(
    config: ConfigOption = None,
    unmatched: Annotated[
        bool, typer.Option("--unmatched", help="list records that matched no account")
    ] = False,
) -> None:
    """Each source's cursor, last sync, values held and unmatched records."""
    pipeline = _runtime(config).pipeline()
    store = pipeline.store
    if unmatched:
        table = Table(title="unmatched records")
        for col in ("source", "object", "record id", "reason", "detail", "seen"):
            table.add_column(col, overflow="fold")
        for u in store.unmatched():
            table.add_row(
                u.source,
                u.object,
                _shown(u.record_id, 80),  # a long usage id is kept as 60 chars + "…(N chars)"
                u.reason,
                _shown(u.detail, 200),
                f"{u.seen_at:%Y-%m-%d %H:%M}",
            )
        stdout_console().print(table)
        return
    counts, missing = store.signal_counts(), store.unmatched_counts()
    table = Table(title="sources")
    for col in ("source", "object", "cursor", "last sync", "values held", "unmatched"):
        table.add_column(col)
    for c in store.cursors():
        table.add_row(
            c.source,
            c.object,
            c.value,
            f"{c.updated_at:%Y-%m-%d %H:%M:%S}",
            str(counts.get(c.source, 0)),
            str(missing.get(c.source, 0)),
        )
    stdout_console().print(table)
    loads = store.usage_loads()
    if loads:
        usage = Table(title="usage files loaded")
        for col in ("file", "loaded", "rows", "values", "skipped", "unmatched", "days"):
            usage.add_column(col, overflow="fold")
        for u in loads[:50]:
            usage.add_row(
                _shown(u.name, 200),
                f"{u.loaded_at:%Y-%m-%d %H:%M}",
                f"{u.rows_read:,}",
                f"{u.values_loaded:,}",
                f"{u.rows_skipped:,}",
                str(u.unmatched),
                f"{u.first_day} … {u.last_day}" if u.first_day else "",
            )
        stdout_console().print(usage)
    from healthscore.governance.freshness import source_ages

    ages = source_ages(store, pipeline.config.freshness, pipeline.clock())
    for age in ages.values():
        if age.stale:
            console.print(f"[yellow]stale[/]: {age.describe()}", highlight=False)
    print(
        json.dumps(
            {
                "signals_by_source": counts,
                "unmatched_by_source": missing,
                "freshness": {
                    a.source: {
                        "last_sync": a.last_sync.isoformat(),
                        "age_seconds": int(a.age.total_seconds()),
                        "limit_seconds": int(a.limit.total_seconds()),
                        "stale": a.stale,
                    }
                    for a in ages.values()
                },
            }
        )
    )
