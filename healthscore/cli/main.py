"""The ``healthscore`` command line."""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from healthscore.core.errors import ConfigError, HealthscoreError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    help="Customer health scores: pull, score, write back to the CRM, alert.",
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration (default: $HEALTHSCORE_CONFIG or ./healthscore.yaml)",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="show what would happen; write nothing to the CRM or Slack"),
]


def reports_errors(fn: F) -> F:
    """Print a HealthscoreError as one clear message and exit non-zero (2 for config)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HealthscoreError as exc:
            console.print(
                f"[bold red]error[/] ({exc.failure_type}): {exc}", markup=True, highlight=False
            )
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper  # type: ignore[return-value]


def _runtime(config: Path | None):
    from healthscore.pipeline.runtime import load_runtime, setup_logging

    setup_logging()
    return load_runtime(config)


@app.command()
@reports_errors
def validate(path: Annotated[Path | None, typer.Argument(help="file to check")] = None) -> None:
    """Check a configuration file (sources, scorecard, alerts) without running anything."""
    from healthscore.config import load_config
    from healthscore.core.settings import load_settings

    target = path or load_settings().healthscore_config
    config = load_config(target)
    card = config.scorecard
    from healthscore.governance.versioning import scorecard_version

    console.print(
        f"[green]ok[/] {target}: scorecard {card.name!r} (version "
        f"{scorecard_version(card, target)}), "
        f"{len(card.groups)} groups, {len(card.measures)} measures, "
        f"{len(card.derived)} derived metrics, {len(card.segments)} segments, "
        f"{len(config.sources.salesforce.metrics)} Salesforce metrics"
    )


@app.command()
@reports_errors
def run(config: ConfigOption = None, dry_run: DryRun = False) -> None:
    """Run one full cycle in-process (no broker): pull, score, write back, alert."""
    rt = _runtime(config)
    pipeline = rt.pipeline()
    if dry_run:
        sync, _ = pipeline.sync_all()
        report, _ = pipeline.score(dry_run=True)
        print(
            json.dumps(
                {
                    "dry_run": True,
                    "accounts_pulled": sync.records,
                    "records_skipped": sync.skipped,
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
def sync(
    source: Annotated[
        str,
        typer.Argument(
            help="salesforce, hubspot, zendesk, sendgrid, mailchimp, hubspot_email, "
            "usage_file, warehouse or all"
        ),
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
    """Pull changed records from one source (or all) into the store."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    pipeline = _runtime(config).pipeline()
    sources_cfg = pipeline.config.sources
    enabled = [
        name
        for name in (
            "salesforce",
            "hubspot",
            "zendesk",
            "sendgrid",
            "mailchimp",
            "hubspot_email",
            "usage_file",
            "warehouse",
        )
        if getattr(sources_cfg, name).enabled
    ]
    wanted = enabled if source == "all" else [source]
    unknown = [w for w in wanted if w not in enabled]
    if unknown:
        raise ConfigError(
            f"unknown or disabled source {unknown[0]!r} (enabled: {', '.join(enabled)})"
        )
    if dry_run and any(w not in USAGE_SOURCES for w in wanted):
        raise ConfigError("--dry-run is for the usage sources (usage_file, warehouse)")
    results = {}
    failed = False
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} records"),
        RowsPerSecond(),
        console=console,
        transient=not console.is_terminal,
    ) as bar:

        def tracker(label: str) -> Callable[[int], None]:
            task = bar.add_task(f"{label} {'(full)' if full else 'since cursor'}", total=None)
            return lambda n: bar.advance(task, n)

        for name in wanted:
            if name == "salesforce":
                results[name] = asdict(
                    pipeline.sync_salesforce(full=full, progress=tracker("salesforce Account"))
                )
                for obj in sources_cfg.salesforce.related:
                    report = pipeline.sync_related(
                        full=full, objects=[obj], progress=tracker(f"salesforce {obj}")
                    )
                    results[f"salesforce.{obj}"] = asdict(report[obj])
            elif name == "zendesk":
                results[name] = asdict(
                    pipeline.sync_zendesk(
                        full=full, progress=tracker("zendesk organizations and tickets")
                    )
                )
            elif name == "sendgrid":
                results[name] = asdict(
                    pipeline.sync_sendgrid(full=full, progress=tracker("sendgrid recipients"))
                )
            elif name == "hubspot_email":
                results[name] = asdict(
                    pipeline.sync_hubspot_email(
                        full=full, progress=tracker("hubspot marketing email events")
                    )
                )
            elif name == "mailchimp":
                results[name] = asdict(
                    pipeline.sync_mailchimp(
                        full=full, progress=tracker("mailchimp campaign members")
                    )
                )
            elif name == "usage_file":
                usage = pipeline.sync_usage_file(
                    dry_run=dry_run, force=full, progress=tracker("usage files")
                )
                results[name] = usage.summary()
                failed |= _print_usage_problems(usage)
            elif name == "warehouse":
                usage = pipeline.sync_warehouse(
                    dry_run=dry_run, full=full, progress=tracker("warehouse rows")
                )
                results[name] = usage.summary()
                failed |= _print_usage_problems(usage)
            else:
                results[name] = asdict(
                    pipeline.sync_hubspot(full=full, progress=tracker("hubspot companies"))
                )
    print(json.dumps(results, default=str))
    if failed:
        raise typer.Exit(1)


USAGE_SOURCES = ("usage_file", "warehouse")


class RowsPerSecond(ProgressColumn):
    """The task's current speed, as rows/s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


def _print_usage_problems(report: Any) -> bool:
    """Say what a usage load skipped (on stderr); True if a whole file could not be read."""
    tally = report.tally
    for problem in tally.problems[:20]:
        console.print(f"[yellow]skipped[/] {problem}", markup=True, highlight=False)
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
    from rich.progress import Progress, SpinnerColumn, TextColumn

    if form not in (None, "long", "wide"):
        raise ConfigError(f"--form must be long or wide, not {form!r}")
    pipeline = _runtime(config).pipeline()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        RowsPerSecond(),
        console=console,
        transient=not console.is_terminal,
    ) as bar:
        task = bar.add_task("usage " + ("(dry run)" if dry_run else "load"), total=None)
        try:
            report = pipeline.sync_usage_file(
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


webhook_app = typer.Typer(no_args_is_help=True, help="Receive vendor webhooks (SendGrid events).")
app.add_typer(webhook_app, name="webhook")


@webhook_app.command("serve")
@reports_errors
def webhook_serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8025,
) -> None:
    """Serve POST /webhooks/sendgrid (signed Event Webhook) until interrupted.

    Put it behind your HTTPS reverse proxy; SendGrid's Event Webhook URL is then
    https://<your host>/webhooks/sendgrid with "Signed Event Webhook" on.
    """
    import signal
    import threading

    from healthscore.webhook import PATH, SendGridWebhookApp, make_server_for

    rt = _runtime(config)
    if not rt.config.sources.sendgrid.enabled:
        raise ConfigError(
            f"{rt.config_path}: sources.sendgrid.enabled is false; enable it to receive its events"
        )
    receiver = SendGridWebhookApp(
        rt.store, rt.settings.sendgrid_webhook_public_key, rt.config.sources.sendgrid
    )
    server = make_server_for(receiver, host, port)
    console.print(f"listening on http://{host}:{server.server_port}{PATH} (Ctrl-C stops)")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        receiver.close()  # the last recompute


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
                u.source, u.object, u.record_id, u.reason, u.detail, f"{u.seen_at:%Y-%m-%d %H:%M}"
            )
        Console().print(table)
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
    Console().print(table)
    loads = store.usage_loads()
    if loads:
        usage = Table(title="usage files loaded")
        for col in ("file", "loaded", "rows", "values", "skipped", "unmatched", "days"):
            usage.add_column(col, overflow="fold")
        for u in loads[:50]:
            usage.add_row(
                u.name,
                f"{u.loaded_at:%Y-%m-%d %H:%M}",
                f"{u.rows_read:,}",
                f"{u.values_loaded:,}",
                f"{u.rows_skipped:,}",
                str(u.unmatched),
                f"{u.first_day} … {u.last_day}" if u.first_day else "",
            )
        Console().print(usage)
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


@app.command(name="setup-crm")
@reports_errors
def setup_crm(config: ConfigOption = None, dry_run: DryRun = False) -> None:
    """Check (Salesforce) or create (HubSpot) the health fields the score is written to."""
    from connectors.hubspot import ensure_properties
    from connectors.salesforce import check_fields

    rt = _runtime(config)
    pipeline = rt.pipeline()
    if rt.config.sources.salesforce.enabled:
        check_fields(
            pipeline.salesforce.describe("Account"), rt.config.sources.salesforce, rt.config_path
        )
        console.print("[green]ok[/] Salesforce Account has every configured field")
    hubspot = rt.config.sources.hubspot
    if hubspot.enabled and hubspot.write_back.enabled:
        if dry_run:
            console.print("dry run: HubSpot properties not checked or created")
            return
        created = ensure_properties(
            pipeline.hubspot, hubspot.write_back, hubspot.override_properties
        )
        console.print(
            "[green]ok[/] HubSpot company properties ready"
            + (f" (created: {', '.join(created)})" if created else "")
        )
    task_rules = any(a.task is not None for r in rt.config.active_rules for a in r.actions)
    if hubspot.record_system and task_rules and not dry_run:
        from actions.tasks import ensure_task_key_property

        key = rt.config.actions.hubspot_task_key_property
        made = ensure_task_key_property(pipeline.hubspot, key)
        console.print(
            f"[green]ok[/] HubSpot task property {key} "
            f"{'created' if made else 'present'} (the tasks' idempotency key)"
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
    Console().print(table)
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
    render_explanation(Console(), found.name, explanation, pipeline.config.scorecard)


@app.command()
@reports_errors
def actions(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="list what would be delivered, to whom and why; no request "
            "to Slack, the CRM or the email provider",
        ),
    ] = False,
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
        upcoming = plan(
            pipeline.store, pipeline.config.actions, now, intents=pipeline.preview_rules()
        )
        for title, shown in (
            (f"pending: would deliver now ({len(rows)})", rows),
            (f"would fire on the next scoring run ({len(upcoming)})", upcoming),
        ):
            table = Table(title=f"{title} — dry run, nothing sent")
            for col in ("key", "action", "rule", "account", "to", "why"):
                table.add_column(col, overflow="fold")
            for r in shown[-limit:]:
                table.add_row(r.key, r.kind, r.rule, r.account, r.target, r.why)
            Console().print(table)
        print(
            json.dumps(
                {
                    "dry_run": True,
                    "would_deliver": len(rows),
                    "by_action": dict(sorted(Counter(r.kind.split(" ")[0] for r in rows).items())),
                    "would_fire_next_run": len(upcoming),
                    "next_run_by_action": dict(
                        sorted(Counter(r.kind.split(" ")[0] for r in upcoming).items())
                    ),
                }
            )
        )
        return
    if show_log:
        table = Table(title="action log")
        for col in (
            "key",
            "kind",
            "status",
            "target",
            "account",
            "response id",
            "updated",
            "error",
        ):
            table.add_column(col, overflow="fold")
        for a in pipeline.store.actions()[-limit:]:
            table.add_row(
                a.key,
                a.kind,
                a.status,
                a.target or "",
                str(a.payload.get("name", a.account_id)),
                a.response_id or "",
                f"{a.updated_at:%Y-%m-%d %H:%M:%S}",
                a.error or "",
            )
        Console().print(table)
        return
    report = pipeline.deliver()
    print(
        json.dumps(
            {
                "slack_messages": report.sent,
                "tasks_created": report.tasks_created,
                "emails_sent": report.emails_sent,
                "emails_skipped": report.emails_skipped,
                "reconciled": report.reconciled,
                "retry_later": report.retry_later,
                "failed": report.failed,
                "unknown": report.unknown,
            }
        )
    )


@app.command()
@reports_errors
def check(config: ConfigOption = None) -> None:
    """Check every connection: database, Redis, Salesforce (fields too), HubSpot, Zendesk and
    Slack."""
    from connectors.salesforce import check_fields
    from healthscore.core.locks import redis_client

    rt = _runtime(config)
    redis_client(rt.settings.redis_url)
    console.print("[green]ok[/] database and Redis reachable")
    pipeline = rt.pipeline()
    if rt.config.sources.salesforce.enabled:
        describe = pipeline.salesforce.describe("Account")
        check_fields(describe, rt.config.sources.salesforce, rt.config_path)
        console.print(
            f"[green]ok[/] Salesforce {pipeline.salesforce.instance_url}: Account fields present"
        )
    if rt.config.sources.hubspot.enabled:
        owners = pipeline.hubspot.call(
            "list owners", pipeline.hubspot.sdk.crm.owners.owners_api.get_page, limit=1
        )
        console.print(f"[green]ok[/] HubSpot reachable ({len(owners.results or [])} owner read)")
    if rt.config.sources.zendesk.enabled:
        pipeline.zendesk.get("organizations.json", {"page[size]": 1}, what="organizations")
        console.print(f"[green]ok[/] Zendesk {pipeline.zendesk.base_url} reachable")
    if rt.config.sources.sendgrid.enabled:
        pipeline.sendgrid.get("/v3/suppression/bounces", {"limit": 1})
        console.print("[green]ok[/] SendGrid reachable (suppressions readable)")
        if rt.config.sources.sendgrid.per_recipient == "webhook":
            from connectors.sendgrid import load_public_key

            load_public_key(rt.settings.sendgrid_webhook_public_key or "")
            console.print("[green]ok[/] SENDGRID_WEBHOOK_PUBLIC_KEY is a P-256 public key")
    if rt.config.sources.mailchimp.enabled:
        health = pipeline.mailchimp.get("/ping").get("health_status")
        console.print(f"[green]ok[/] Mailchimp reachable ({health})")
    if pipeline.slack is None:
        raise ConfigError("missing environment variable: SLACK_BOT_TOKEN")
    console.print(f"[green]ok[/] Slack workspace {pipeline.slack.check()!r}")


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
    report = pipeline.import_accounts(path, dry_run=dry_run)
    if report.skipped:
        console.print(
            f"[yellow]{report.skipped} rows skipped[/] (see the log): "
            + ", ".join(report.skipped_lines[:5]),
            highlight=False,
        )
    print(json.dumps({"dry_run": dry_run, **asdict(report)}))


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


@app.command()
@reports_errors
def demo(
    accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = 500,
    cycles: Annotated[int, typer.Option(help="cycles to run on unchanged data")] = 2,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic org")] = 42,
    crm: Annotated[
        str, typer.Option(help="the CRM of record: salesforce (HubSpot mirrored) or hubspot")
    ] = "salesforce",
    backtest: Annotated[
        bool, typer.Option(help="also backtest and fit on a year of synthetic usage")
    ] = True,
    keep: Annotated[
        Path | None,
        typer.Option(
            help="keep the demo's store and configuration in this directory, to try "
            "explain, history, override and diff-scorecard on them"
        ),
    ] = None,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos",
            help="cycle 1 through a Slack 429 "
            "storm, with a worker killed after each vendor "
            "accepted a delivery, then restarted",
        ),
    ] = False,
) -> None:
    """Start the sandbox, seed it, run cycles through the real clients, print a summary.

    The last line printed is one JSON object with each cycle's numbers.
    """
    from healthscore.demo.run_demo import run_demo

    if crm not in ("salesforce", "hubspot"):
        raise ConfigError(f"--crm must be salesforce or hubspot, not {crm!r}")
    result = run_demo(
        accounts=accounts,
        cycles=cycles,
        seed=seed,
        crm=crm,
        backtest=backtest,
        keep=keep,
        chaos=chaos,
    )
    sys.stdout.flush()
    print(json.dumps(result))


Horizon = Annotated[
    str,
    typer.Option(
        "--horizon", help="churn within this long after a snapshot counts (e.g. 30d, 90d)"
    ),
]
FromDate = Annotated[str, typer.Option("--from", help="first snapshot date (YYYY-MM-DD)")]
ToDate = Annotated[str, typer.Option("--to", help="last snapshot date (YYYY-MM-DD)")]
Every = Annotated[str, typer.Option("--every", help="time between snapshots (e.g. 14d)")]
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
    start: FromDate = ...,
    end: ToDate = ...,
    every: Every = "14d",
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
    config: ConfigOption = None,
) -> None:
    """Does the score predict churn? Score each past snapshot, compare with outcomes."""
    from healthscore.cli.backtest import backtest_command, make_plan

    plan = make_plan(start, end, every, horizon)
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
    )


@app.command()
@reports_errors
def fit(
    horizon: Horizon = "30d",
    start: FromDate = ...,
    end: ToDate = ...,
    every: Every = "14d",
    outcomes: OutcomesFile = None,
    out: Annotated[Path, typer.Option("--out", help="where to write the fitted scorecard")] = Path(
        "fitted.yaml"
    ),
    bands: Annotated[
        bool, typer.Option("--bands", help="also learn the red/yellow borders")
    ] = False,
    holdout: Annotated[
        float, typer.Option(help="share of the latest snapshots held out for judging")
    ] = 0.34,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="also write the HTML/JSON report (with the fit) here"),
    ] = None,
    outcomes_until: OutcomesUntil = None,
    dry_run: DryRun = False,
    config: ConfigOption = None,
) -> None:
    """Learn non-negative weights from outcomes; write them as a copy of the YAML + a diff.

    Fits on the earlier snapshots and prints the held-out AUC of the current and the fitted
    scorecard on the later ones. The live configuration is never replaced.
    """
    from healthscore.cli.backtest import fit_command, make_plan

    plan = make_plan(start, end, every, horizon)
    fit_command(
        _runtime(config),
        plan,
        console,
        outcomes=outcomes,
        out=out,
        bands=bands,
        holdout=holdout,
        dry_run=dry_run,
        report=report,
        outcomes_until=outcomes_until,
    )


from healthscore.cli import governance as cli_governance  # noqa: E402, F401  (override, history, diff-scorecard)

if __name__ == "__main__":  # pragma: no cover
    app()
