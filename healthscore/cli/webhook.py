"""`healthscore webhook serve`: receive vendor webhooks."""

from __future__ import annotations

from typing import Annotated

import typer

from healthscore.cli.app import ConfigOption, _runtime, app, console, reports_errors
from healthscore.core.errors import ConfigError

webhook_app = typer.Typer(no_args_is_help=True, help="Receive vendor webhooks (SendGrid events).")
app.add_typer(webhook_app, name="webhook")


@webhook_app.command("serve")
@reports_errors
def webhook_serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)")] = 8025,
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="worker processes (each with its own threads)")
    ] = 2,
    threads: Annotated[
        int, typer.Option(min=1, max=64, help="requests each worker serves at once")
    ] = 8,
    read_timeout: Annotated[
        float, typer.Option(min=1, max=600, help="seconds for a request's headers and body")
    ] = 30.0,
) -> None:
    """Serve POST /webhooks/sendgrid (signed Event Webhook) until SIGTERM or Ctrl-C.

    Runs gunicorn with hard limits: bodies up to 16 MiB (Content-Length required),
    --read-timeout for a request to arrive, --workers x --threads requests at once,
    the signature headers checked before any body is read.

    SIGTERM finishes the requests under way and runs the last recompute.

    Put it behind your HTTPS reverse proxy; SendGrid's Event Webhook URL is then
    https://<your host>/webhooks/sendgrid with "Signed Event Webhook" on.
    """
    from connectors.sendgrid import load_public_key
    from connectors.sendgrid.webhook_app import PATH, SendGridWebhookApp
    from healthscore.cli.webhook_server import Limits, WebhookServer
    from store import Store

    rt = _runtime(config)
    try:
        if not rt.config.sources.sendgrid.enabled:
            raise ConfigError(
                f"{rt.config_path}: sources.sendgrid.enabled is false; enable it to receive its "
                "events"
            )
        public_key = rt.settings.sendgrid_webhook_public_key or ""
        load_public_key(public_key)  # a missing or bad key stops us here, not in each worker
    finally:
        rt.store.close()  # each worker opens its own connections after the fork
    database_url, source = rt.settings.database_url, rt.config.sources.sendgrid

    def make_receiver() -> SendGridWebhookApp:
        return SendGridWebhookApp(
            Store(database_url), public_key, source, read_timeout=read_timeout
        )

    WebhookServer(
        make_receiver,
        host,
        port,
        Limits(workers=workers, threads=threads, read_timeout=read_timeout),
        on_ready=lambda url: console.print(
            f"listening on {url}{PATH} (SIGTERM or Ctrl-C stops)", highlight=False
        ),
    ).run()
