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
    port: Annotated[int, typer.Option(help="port to listen on")] = 8025,
) -> None:
    """Serve POST /webhooks/sendgrid (signed Event Webhook) until interrupted.

    Put it behind your HTTPS reverse proxy; SendGrid's Event Webhook URL is then
    https://<your host>/webhooks/sendgrid with "Signed Event Webhook" on.
    """
    import signal
    import threading

    from connectors.sendgrid.webhook_app import PATH, SendGridWebhookApp, make_server_for

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
