"""The ``healthscore`` command line."""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from .errors import ConfigError, HealthscoreError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  pretty_exceptions_show_locals=False,  # locals may hold secrets
                  help="Customer health scores: pull, score, write back to the CRM, alert.")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="YAML configuration (default: $HEALTHSCORE_CONFIG or "
    "./healthscore.yaml)")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="show what would happen; write nothing "
                                                        "to the CRM or Slack")]


def reports_errors(fn: F) -> F:
    """Print a HealthscoreError as one clear message and exit non-zero (2 for config)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HealthscoreError as exc:
            console.print(f"[bold red]error[/] ({exc.failure_type}): {exc}", markup=True,
                          highlight=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper  # type: ignore[return-value]


def _runtime(config: Path | None):
    from .runtime import load_runtime, setup_logging

    setup_logging()
    return load_runtime(config)


@app.command()
@reports_errors
def validate(path: Annotated[Path | None, typer.Argument(help="file to check")] = None) -> None:
    """Check a configuration file (sources, scorecard, alerts) without running anything."""
    from .config import load_config
    from .settings import load_settings

    target = path or load_settings().healthscore_config
    config = load_config(target)
    card = config.scorecard
    console.print(f"[green]ok[/] {target}: scorecard {card.name!r} (version {card.version}), "
                  f"{len(card.groups)} groups, {len(card.measures)} measures, "
                  f"{len(card.derived)} derived metrics, {len(card.segments)} segments, "
                  f"{len(config.sources.salesforce.metrics)} Salesforce metrics")


@app.command()
@reports_errors
def run(config: ConfigOption = None, dry_run: DryRun = False) -> None:
    """Run one full cycle in-process (no broker): pull, score, write back, alert."""
    rt = _runtime(config)
    pipeline = rt.pipeline()
    if dry_run:
        sync, _ = pipeline.sync_all()
        report, _ = pipeline.score(dry_run=True)
        print(json.dumps({"dry_run": True, "accounts_pulled": sync.records,
                          "records_skipped": sync.skipped, "scored": report.scored,
                          "grades": report.grades}))
        return
    cycle = pipeline.run_cycle()
    print(json.dumps(cycle.summary()))
    if cycle.write.pending:
        console.print(f"[yellow]{cycle.write.pending} CRM writes stay pending[/] and will be "
                      f"retried next cycle ({cycle.write.error or 'record errors'})")


@app.command()
@reports_errors
def sync(source: Annotated[str, typer.Argument(help="salesforce, hubspot or all")] = "all",
         config: ConfigOption = None,
         full: Annotated[bool, typer.Option("--full", help="ignore the cursor: re-read "
                                                            "everything")] = False) -> None:
    """Pull changed records from one source (or all) into the store."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    pipeline = _runtime(config).pipeline()
    sources_cfg = pipeline.config.sources
    enabled = (["salesforce"] if sources_cfg.salesforce.enabled else []) + (
        ["hubspot"] if sources_cfg.hubspot.enabled else [])
    wanted = enabled if source == "all" else [source]
    unknown = [w for w in wanted if w not in enabled]
    if unknown:
        raise ConfigError(f"unknown or disabled source {unknown[0]!r} (enabled: "
                          f"{', '.join(enabled)})")
    results = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed} records"), console=console,
                  transient=not console.is_terminal) as bar:
        def tracker(label: str) -> Callable[[int], None]:
            task = bar.add_task(f"{label} {'(full)' if full else 'since cursor'}", total=None)
            return lambda n: bar.advance(task, n)

        for name in wanted:
            if name == "salesforce":
                results[name] = asdict(pipeline.sync_salesforce(
                    full=full, progress=tracker("salesforce Account")))
                for obj in sources_cfg.salesforce.related:
                    report = pipeline.sync_related(full=full, objects=[obj],
                                                   progress=tracker(f"salesforce {obj}"))
                    results[f"salesforce.{obj}"] = asdict(report[obj])
            else:
                results[name] = asdict(pipeline.sync_hubspot(
                    full=full, progress=tracker("hubspot companies")))
    print(json.dumps(results, default=str))


@app.command()
@reports_errors
def sources(config: ConfigOption = None,
            unmatched: Annotated[bool, typer.Option("--unmatched", help="list records that "
                                                    "matched no account")] = False) -> None:
    """Each source's cursor, last sync, values held and unmatched records."""
    pipeline = _runtime(config).pipeline()
    store = pipeline.store
    if unmatched:
        table = Table(title="unmatched records")
        for col in ("source", "object", "record id", "reason", "detail", "seen"):
            table.add_column(col, overflow="fold")
        for u in store.unmatched():
            table.add_row(u.source, u.object, u.record_id, u.reason, u.detail,
                          f"{u.seen_at:%Y-%m-%d %H:%M}")
        Console().print(table)
        return
    counts, missing = store.signal_counts(), store.unmatched_counts()
    table = Table(title="sources")
    for col in ("source", "object", "cursor", "last sync", "values held", "unmatched"):
        table.add_column(col)
    for c in store.cursors():
        table.add_row(c.source, c.object, c.value, f"{c.updated_at:%Y-%m-%d %H:%M:%S}",
                      str(counts.get(c.source, 0)), str(missing.get(c.source, 0)))
    Console().print(table)
    print(json.dumps({"signals_by_source": counts, "unmatched_by_source": missing}))


@app.command(name="setup-crm")
@reports_errors
def setup_crm(config: ConfigOption = None,
              dry_run: DryRun = False) -> None:
    """Check (Salesforce) or create (HubSpot) the health fields the score is written to."""
    from connectors.hubspot import ensure_properties
    from connectors.salesforce import check_fields

    rt = _runtime(config)
    pipeline = rt.pipeline()
    if rt.config.sources.salesforce.enabled:
        check_fields(pipeline.salesforce.describe("Account"), rt.config.sources.salesforce,
                     rt.config_path)
        console.print("[green]ok[/] Salesforce Account has every configured field")
    hubspot = rt.config.sources.hubspot
    if hubspot.enabled and hubspot.write_back.enabled:
        if dry_run:
            console.print("dry run: HubSpot properties not checked or created")
            return
        created = ensure_properties(pipeline.hubspot, hubspot.write_back)
        console.print("[green]ok[/] HubSpot company properties ready"
                      + (f" (created: {', '.join(created)})" if created else ""))
    task_rules = any(a.task is not None for r in rt.config.active_rules for a in r.actions)
    if hubspot.record_system and task_rules and not dry_run:
        from actions.tasks import ensure_task_key_property

        key = rt.config.actions.hubspot_task_key_property
        made = ensure_task_key_property(pipeline.hubspot, key)
        console.print(f"[green]ok[/] HubSpot task property {key} "
                      f"{'created' if made else 'present'} (the tasks' idempotency key)")


@app.command()
@reports_errors
def score(config: ConfigOption = None, dry_run: DryRun = False,
          show: Annotated[int, typer.Option(help="accounts to list, lowest first")] = 15) -> None:
    """Score every account; with --dry-run nothing is recorded or queued."""
    from scoring import reasons_for

    pipeline = _runtime(config).pipeline()
    report, batch = pipeline.score(dry_run=dry_run)
    names = {a.id: a.name for a in pipeline.store.accounts()}
    table = Table(title=f"scores ({'dry run' if dry_run else f'run {report.run_id}'}) — "
                        f"scorecard {report.scorecard_version}")
    for col in ("account", "score", "grade", "segment", "coverage", "top reasons"):
        table.add_column(col)
    rows = sorted(range(len(batch.account_ids)),
                  key=lambda i: (batch.score[i] == batch.score[i], batch.score[i]))
    for i in rows[:show]:
        value = batch.score[i]
        table.add_row(names.get(batch.account_ids[i], batch.account_ids[i]),
                      "–" if value != value else f"{value:.0f}", str(batch.grade[i]),
                      batch.segment_name(i), f"{batch.coverage[i]:.0%}",
                      "; ".join(str(r) for r in reasons_for(batch, i)))
    Console().print(table)
    print(json.dumps({"dry_run": dry_run, "scored": report.scored, "grades": report.grades,
                      "entered_red": report.entered_red, "writes_queued": report.writes_queued}))


@app.command()
@reports_errors
def explain(account: Annotated[str, typer.Argument(help="account id or exact name")],
            config: ConfigOption = None,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON instead")] = False,
            ) -> None:
    """Why an account scores what it does: every measure, its points, weight and loss."""
    from .explain_view import render_explanation

    pipeline = _runtime(config).pipeline()
    found, explanation = pipeline.explain(account)
    if as_json:
        print(json.dumps({"name": found.name, **explanation.as_dict()}, default=str))
        return
    render_explanation(Console(), found.name, explanation, pipeline.config.scorecard)


@app.command()
@reports_errors
def actions(config: ConfigOption = None,
            dry_run: Annotated[bool, typer.Option(
                "--dry-run", help="list what would be delivered, to whom and why; no request "
                                  "to Slack, the CRM or the email provider")] = False,
            show_log: Annotated[bool, typer.Option("--log", help="show the action log")] = False,
            limit: Annotated[int, typer.Option(help="rows to show (newest last)")] = 200,
            ) -> None:
    """Deliver pending actions (Slack, tasks, emails); --dry-run lists them; --log shows what
    was delivered."""
    from actions.preview import plan
    from store.models import utcnow

    pipeline = _runtime(config).pipeline()
    if dry_run:
        now = utcnow()
        rows = plan(pipeline.store, pipeline.config.actions, now)
        upcoming = plan(pipeline.store, pipeline.config.actions, now,
                        intents=pipeline.preview_rules())
        for title, shown in ((f"pending: would deliver now ({len(rows)})", rows),
                             (f"would fire on the next scoring run ({len(upcoming)})",
                              upcoming)):
            table = Table(title=f"{title} — dry run, nothing sent")
            for col in ("key", "action", "rule", "account", "to", "why"):
                table.add_column(col, overflow="fold")
            for r in shown[-limit:]:
                table.add_row(r.key, r.kind, r.rule, r.account, r.target, r.why)
            Console().print(table)
        print(json.dumps({"dry_run": True, "would_deliver": len(rows),
                          "by_action": dict(sorted(
                              Counter(r.kind.split(" ")[0] for r in rows).items())),
                          "would_fire_next_run": len(upcoming),
                          "next_run_by_action": dict(sorted(
                              Counter(r.kind.split(" ")[0] for r in upcoming).items()))}))
        return
    if show_log:
        table = Table(title="action log")
        for col in ("key", "kind", "status", "target", "account", "response id", "updated",
                    "error"):
            table.add_column(col, overflow="fold")
        for a in pipeline.store.actions()[-limit:]:
            table.add_row(a.key, a.kind, a.status, a.target or "",
                          str(a.payload.get("name", a.account_id)), a.response_id or "",
                          f"{a.updated_at:%Y-%m-%d %H:%M:%S}", a.error or "")
        Console().print(table)
        return
    report = pipeline.deliver()
    print(json.dumps({"slack_messages": report.sent, "tasks_created": report.tasks_created,
                      "emails_sent": report.emails_sent, "emails_skipped": report.emails_skipped,
                      "reconciled": report.reconciled, "retry_later": report.retry_later,
                      "failed": report.failed, "unknown": report.unknown}))


@app.command()
@reports_errors
def check(config: ConfigOption = None) -> None:
    """Check every connection: database, Redis, Salesforce (fields too) and Slack."""
    from connectors.salesforce import check_fields

    from .locks import redis_client

    rt = _runtime(config)
    redis_client(rt.settings.redis_url)
    console.print("[green]ok[/] database and Redis reachable")
    pipeline = rt.pipeline()
    if rt.config.sources.salesforce.enabled:
        describe = pipeline.salesforce.describe("Account")
        check_fields(describe, rt.config.sources.salesforce, rt.config_path)
        console.print(f"[green]ok[/] Salesforce {pipeline.salesforce.instance_url}: Account "
                      f"fields present")
    if rt.config.sources.hubspot.enabled:
        owners = pipeline.hubspot.call("list owners",
                                       pipeline.hubspot.sdk.crm.owners.owners_api.get_page,
                                       limit=1)
        console.print(f"[green]ok[/] HubSpot reachable ({len(owners.results or [])} owner "
                      f"read)")
    if pipeline.slack is None:
        raise ConfigError("missing environment variable: SLACK_BOT_TOKEN")
    console.print(f"[green]ok[/] Slack workspace {pipeline.slack.check()!r}")


@app.command()
@reports_errors
def demo(accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = 500,
         cycles: Annotated[int, typer.Option(help="cycles to run on unchanged data")] = 2,
         seed: Annotated[int, typer.Option(help="random seed of the synthetic org")] = 42,
         crm: Annotated[str, typer.Option(help="the CRM of record: salesforce (HubSpot "
                                               "mirrored) or hubspot")] = "salesforce",
         chaos: Annotated[bool, typer.Option("--chaos", help="cycle 1 through a Slack 429 "
                                             "storm, with a worker killed after each vendor "
                                             "accepted a delivery, then restarted")] = False,
         ) -> None:
    """Start the sandbox, seed it, run cycles through the real clients, print a summary.

    The last line printed is one JSON object with each cycle's numbers.
    """
    from .demo import run_demo

    if crm not in ("salesforce", "hubspot"):
        raise ConfigError(f"--crm must be salesforce or hubspot, not {crm!r}")
    result = run_demo(accounts=accounts, cycles=cycles, seed=seed, crm=crm, chaos=chaos)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":  # pragma: no cover
    app()
