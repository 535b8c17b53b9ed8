"""Commands about the destinations: setup-crm, check, actions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from healthscore.cli.app import (
    MESSAGE_LIMIT,
    ConfigOption,
    DryRun,
    _runtime,
    app,
    console,
    reports_errors,
    stdout_console,
)
from healthscore.core.errors import ConfigError, HealthscoreError
from healthscore.core.text import printable

if TYPE_CHECKING:
    from actions import DeliveryReport
    from actions.slack import SlackAlerter
    from healthscore.pipeline.cycle import Pipeline


@app.command(name="setup-crm")
@reports_errors
def setup_crm(config: ConfigOption = None, dry_run: DryRun = False) -> None:
    """Check or create, in each enabled CRM, the health fields the score is written to."""
    from connectors.registry import enabled

    rt = _runtime(config)
    context = rt.pipeline().context
    for entry in enabled(rt.config.sources):
        if entry.crm is not None and entry.crm.setup is not None:
            for line in entry.crm.setup(context, rt.config, dry_run):
                console.print(f"[green]ok[/] {line}", highlight=False)


@app.command()
@reports_errors
def check(config: ConfigOption = None) -> None:
    """Check every connection: database, Redis, each enabled source (CRM fields too), Slack
    (token and scopes) and each configured email sender (key and scopes). One failing check
    does not stop the others; any ✗ exits non-zero (2 when a ✗ is a configuration error)."""
    from actions.email import email_senders
    from connectors.registry import enabled
    from healthscore.core.locks import redis_client

    rt = _runtime(config)
    redis_client(rt.settings.redis_url)
    console.print("[green]ok[/] database and Redis reachable")
    pipeline = rt.pipeline()
    context = pipeline.context
    failures: list[Exception] = []

    def run(what: str, step: Callable[[], list[str]]) -> None:
        try:
            lines = step()
        except Exception as exc:  # each check stands alone: report it, go on with the next
            failures.append(exc)
            text = Text(f"✗ {what}: ", style="bold red")
            if not isinstance(exc, HealthscoreError):
                text.append(f"{exc.__class__.__name__}: ")
            text.append("\n".join(printable(line, MESSAGE_LIMIT) for line in str(exc).splitlines()))
            console.print(text, highlight=False)  # the text may quote data: no markup
            return
        for line in lines:
            console.print(f"[green]ok[/] {line}", highlight=False)

    for entry in enabled(rt.config.sources):
        if entry.check is not None:
            run(entry.name, lambda entry=entry: entry.check(context))
    run("slack", lambda: [f"Slack workspace {_slack(pipeline).check()!r}, scopes present"])
    for provider, sender in email_senders(context, rt.config.actions.email).items():
        run(f"{provider} email", sender.check)
    if failures:
        raise typer.Exit(2 if any(isinstance(e, ConfigError) for e in failures) else 1)


def _slack(pipeline: Pipeline) -> SlackAlerter:
    if pipeline.slack is None:
        raise ConfigError("missing environment variable: SLACK_BOT_TOKEN")
    return pipeline.slack


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
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="queue the deliveries a vendor refused (failed) again, once their cause is "
            "fixed, and deliver; with --dry-run, list them. Never re-sends one that was "
            "delivered or whose outcome is unknown",
        ),
    ] = False,
    limit: Annotated[int, typer.Option(help="rows to show (newest last)")] = 200,
) -> None:
    """Deliver pending actions (Slack, tasks, emails); --dry-run lists them; --log shows what
    was delivered; --retry-failed queues the failed ones again."""
    from actions.preview import plan
    from store.models import utcnow

    pipeline = _runtime(config).pipeline()
    if retry_failed:
        _retry_failed(pipeline, dry_run=dry_run, limit=limit)
        return
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
            stdout_console().print(table)
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
        stdout_console().print(table)
        return
    _print_delivery(pipeline.deliver())


def _retry_failed(pipeline: Pipeline, *, dry_run: bool, limit: int) -> None:
    """``actions --retry-failed``: the failed deliveries listed (``--dry-run``: nothing else
    happens) or queued again and delivered with the rest of what is pending."""
    from actions.deliver import failed_deliveries, requeue_failed

    failed = failed_deliveries(pipeline.store)
    title = "failed deliveries" + (" — dry run, nothing queued or sent" if dry_run else "")
    table = Table(title=f"{title} ({len(failed)})")
    for col in ("key", "kind", "to", "account", "failed at", "error"):
        table.add_column(col, overflow="fold")
    for a in failed[-limit:]:
        table.add_row(
            a.key,
            a.kind,
            a.target or "",
            str(a.payload.get("name", a.account_id)),
            f"{a.updated_at:%Y-%m-%d %H:%M:%S}",
            a.error or "",
        )
    stdout_console().print(table)
    by_kind = dict(sorted(Counter(a.kind for a in failed).items()))
    if dry_run:
        print(json.dumps({"dry_run": True, "would_requeue": len(failed), "by_kind": by_kind}))
        return
    requeued = requeue_failed(pipeline.store)
    _print_delivery(pipeline.deliver(), requeued=requeued, requeued_by_kind=by_kind)


def _print_delivery(report: DeliveryReport, **extra: Any) -> None:
    print(
        json.dumps(
            {
                **extra,
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
