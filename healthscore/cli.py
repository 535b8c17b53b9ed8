"""The ``healthscore`` command line."""

from __future__ import annotations

import functools
import json
import sys
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
def sync(source: Annotated[str, typer.Argument(
             help="salesforce, hubspot, sendgrid, mailchimp, hubspot_email or all")] = "all",
         config: ConfigOption = None,
         full: Annotated[bool, typer.Option("--full", help="ignore the cursor: re-read "
                                                            "everything")] = False) -> None:
    """Pull changed records from one source (or all) into the store."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    pipeline = _runtime(config).pipeline()
    sources_cfg = pipeline.config.sources
    enabled = [name for name in ("salesforce", "hubspot", "sendgrid", "mailchimp",
                                 "hubspot_email")
               if getattr(sources_cfg, name).enabled]
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
            elif name == "sendgrid":
                results[name] = asdict(pipeline.sync_sendgrid(
                    full=full, progress=tracker("sendgrid recipients")))
            elif name == "hubspot_email":
                results[name] = asdict(pipeline.sync_hubspot_email(
                    full=full, progress=tracker("hubspot marketing email events")))
            elif name == "mailchimp":
                results[name] = asdict(pipeline.sync_mailchimp(
                    full=full, progress=tracker("mailchimp campaign members")))
            else:
                results[name] = asdict(pipeline.sync_hubspot(
                    full=full, progress=tracker("hubspot companies")))
    print(json.dumps(results, default=str))


webhook_app = typer.Typer(no_args_is_help=True, help="Receive vendor webhooks (SendGrid "
                          "events).")
app.add_typer(webhook_app, name="webhook")


@webhook_app.command("serve")
@reports_errors
def webhook_serve(config: ConfigOption = None,
                  host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
                  port: Annotated[int, typer.Option(help="port to listen on")] = 8025) -> None:
    """Serve POST /webhooks/sendgrid (signed Event Webhook) until interrupted.

    Put it behind your HTTPS reverse proxy; SendGrid's Event Webhook URL is then
    https://<your host>/webhooks/sendgrid with "Signed Event Webhook" on.
    """
    import signal
    import threading

    from .webhook import PATH, SendGridWebhookApp, make_server_for

    rt = _runtime(config)
    if not rt.config.sources.sendgrid.enabled:
        raise ConfigError(f"{rt.config_path}: sources.sendgrid.enabled is false; enable it to "
                          "receive its events")
    receiver = SendGridWebhookApp(rt.store, rt.settings.sendgrid_webhook_public_key,
                                  rt.config.sources.sendgrid)
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
def actions(config: ConfigOption = None, dry_run: DryRun = False,
            show_log: Annotated[bool, typer.Option("--log", help="show the action log")] = False,
            ) -> None:
    """Deliver pending alerts; --dry-run lists them; --log shows what was delivered."""
    pipeline = _runtime(config).pipeline()
    if show_log or dry_run:
        status = "pending" if dry_run else None
        table = Table(title="pending alerts (dry run)" if dry_run else "action log")
        for col in ("key", "status", "target", "account", "response id", "updated", "error"):
            table.add_column(col, overflow="fold")
        for a in pipeline.store.actions(status=status):
            table.add_row(a.key, a.status, a.target or "", str(a.payload.get("name", "")),
                          a.response_id or "", f"{a.updated_at:%Y-%m-%d %H:%M:%S}",
                          a.error or "")
        Console().print(table)
        return
    report = pipeline.deliver()
    print(json.dumps({"sent": report.sent, "retry_later": report.retry_later,
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


@app.command()
@reports_errors
def demo(accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = 500,
         cycles: Annotated[int, typer.Option(help="cycles to run on unchanged data")] = 2,
         seed: Annotated[int, typer.Option(help="random seed of the synthetic org")] = 42,
         crm: Annotated[str, typer.Option(help="the CRM of record: salesforce (HubSpot "
                                               "mirrored) or hubspot")] = "salesforce",
         ) -> None:
    """Start the sandbox, seed it, run cycles through the real clients, print a summary.

    The last line printed is one JSON object with each cycle's numbers.
    """
    from .demo import run_demo

    if crm not in ("salesforce", "hubspot"):
        raise ConfigError(f"--crm must be salesforce or hubspot, not {crm!r}")
    result = run_demo(accounts=accounts, cycles=cycles, seed=seed, crm=crm)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":  # pragma: no cover
    app()
