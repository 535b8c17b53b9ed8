"""The demo org's emulators, started and seeded together.

``healthscore demo`` runs its story on them; ``healthscore sandbox serve`` leaves them running,
prints what points healthscore at them (the environment variables it reads, as ``export``
lines on stdout, and a ready YAML) and waits for Ctrl-C or SIGTERM, so a team can try its own
configuration before pointing it at production.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from healthscore.config import Config, load_config
from healthscore.core.errors import ConfigError
from sandbox import (
    EmulatorServer,
    HubSpotEmulator,
    MailchimpEmulator,
    SalesforceEmulator,
    SendGridEmulator,
    SlackEmulator,
    SyntheticOrg,
    ZendeskEmulator,
    generate_org,
)
from sandbox.demo.demo_actions import with_demo_actions
from sandbox.demo.demo_governance import with_demo_governance
from sandbox.demo.demo_keep import write_config
from sandbox.demo.demo_usage import enable_usage, write_usage_drop
from sandbox.demo.email_demo import EmailSandbox

DEMO_CHANNEL = "C0CSALERTS"
# The sandbox workspace lets the demo post faster than Slack's ~1 message/s per channel, so
# 500 accounts finish in seconds; the sender still paces itself to this configured rate.
DEMO_MESSAGES_PER_SECOND = 25.0
# companies in HubSpot that no Salesforce account owns (prospects, a free-mail sign-up)
PROSPECTS = (
    {"name": "Initech Prospects", "domain": "initech-prospect.example"},
    {"name": "Umbrella Trial", "domain": "umbrella-trial.example"},
    {"name": "Hooli Pilot", "domain": "hooli-pilot.example"},
    {"name": "Jane's Consulting", "domain": "gmail.com"},
)
# --port-base P: each emulator at P + its offset
PORT_OFFSETS = {
    "salesforce": 0,
    "hubspot": 1,
    "zendesk": 2,
    "sendgrid": 3,
    "mailchimp": 4,
    "slack": 5,
}
SEED_AGE = timedelta(hours=1)
HUBSPOT_METRICS = {"employees": "numberofemployees", "annual_revenue": "annualrevenue"}
SYNCED_RELATED = ("Opportunity", "Case", "Task", "Event")


def demo_config(config: Config) -> Config:
    """The packaged example plus the demo's sources: related objects and HubSpot."""
    slack_cfg = config.alerts.slack.model_copy(
        update={"messages_per_second": DEMO_MESSAGES_PER_SECOND}
    )
    salesforce = config.sources.salesforce.model_copy(update={"related": list(SYNCED_RELATED)})
    hubspot = config.sources.hubspot.model_copy(
        update={"enabled": True, "metrics": HUBSPOT_METRICS}
    )
    zendesk = config.sources.zendesk.model_copy(update={"enabled": True})
    return config.model_copy(
        update={
            "alerts": config.alerts.model_copy(update={"slack": slack_cfg}),
            "sources": config.sources.model_copy(
                update={"salesforce": salesforce, "hubspot": hubspot, "zendesk": zendesk}
            ),
        }
    )


def demo_story_config(email: EmailSandbox) -> Config:
    """The demo's configuration: the packaged example, every source on, the demo's rules
    (tasks, emails) and governance (who may override, freshness limits)."""
    return with_demo_governance(with_demo_actions(email.enable(demo_config(load_config()))))


@dataclass
class DemoSandbox:
    """The running emulators, seeded with one synthetic org (Salesforce ids in ``sf_ids``)."""

    salesforce: SalesforceEmulator
    hubspot: HubSpotEmulator
    zendesk: ZendeskEmulator
    slack: SlackEmulator
    email: EmailSandbox
    sf_ids: list[str]

    def settings(self) -> dict[str, Any]:
        """``Settings`` fields pointing every connector at the emulators (the environment
        variables are their names, upper-cased)."""
        sf, hs, zd, slack = self.salesforce, self.hubspot, self.zendesk, self.slack
        return {
            "salesforce_instance_url": sf.base_url,
            "salesforce_token_url": sf.token_url,
            "salesforce_client_id": sf.client_id,
            "salesforce_client_secret": sf.client_secret,
            "salesforce_ca_bundle": Path(sf.ca_bundle_path),
            "hubspot_access_token": hs.access_token,
            "hubspot_base_url": hs.base_url,
            "zendesk_email": zd.email,
            "zendesk_api_token": zd.api_token,
            "zendesk_base_url": zd.api_url,
            **self.email.settings(),
            "slack_bot_token": slack.bot_token,
            "slack_base_url": slack.base_url,
            "slack_alert_channel": DEMO_CHANNEL,
        }

    def environment(self, **more: Any) -> dict[str, str]:
        """The same as environment variables, plus ``more`` (e.g. ``database_url``)."""
        return {name.upper(): str(value) for name, value in {**self.settings(), **more}.items()}


def start_at(emulator: EmulatorServer, port: int) -> None:
    """Start ``emulator`` on ``port`` (0: a free one, as ``EmulatorServer.start`` does).

    ``EmulatorServer.start`` always binds a free port; a fixed one (``--port-base``) binds the
    same server class on the port asked for."""
    if not port:
        emulator.start()
        return
    from sandbox.server import _HTTPServer, _RequestHandler

    ctx = emulator.tls.server_ssl_context() if emulator.tls is not None else None
    try:
        httpd = _HTTPServer(
            ("127.0.0.1", port), _RequestHandler, emulator=emulator, ssl_context=ctx
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"{type(emulator).__name__}-{port}",
        daemon=True,
    )
    emulator._httpd, emulator._thread = httpd, thread
    thread.start()


@contextmanager
def demo_sandbox(
    org: SyntheticOrg,
    *,
    seeded_at: datetime,
    email_at: datetime,
    clock: Callable[[], datetime] | None = None,
    port_base: int = 0,
) -> Iterator[DemoSandbox]:
    """Start every emulator and seed ``org`` into all of them: Salesforce is the CRM of
    record; HubSpot holds the same companies (half carrying the Salesforce Account id, half
    matched by domain) plus the prospects no account owns; Zendesk one desk of the same
    accounts; SendGrid and Mailchimp the contacts' email history up to ``email_at``; Slack the
    org's users. ``clock``: the Salesforce and Zendesk record clock (real time if None)."""

    sf = SalesforceEmulator(clock=clock)
    hs = HubSpotEmulator()
    zd = ZendeskEmulator(clock=clock)
    sendgrid = SendGridEmulator()
    mailchimp = MailchimpEmulator()
    slack = SlackEmulator(messages_per_second=DEMO_MESSAGES_PER_SECOND, burst=5)
    emulators = {
        "salesforce": sf,
        "hubspot": hs,
        "zendesk": zd,
        "sendgrid": sendgrid,
        "mailchimp": mailchimp,
        "slack": slack,
    }
    with ExitStack() as stack:
        for name, emulator in emulators.items():
            start_at(emulator, port_base + PORT_OFFSETS[name] if port_base else 0)
            stack.callback(emulator.stop)
        hs.set_time(seeded_at)
        sf_ids = sf.seed(org)
        sf.bulk.polls_to_complete = 0
        company_ids = hs.seed(org, account_ids=sf_ids)
        for cid in company_ids[1::2]:  # every other company is matched by its domain only
            hs.update("companies", cid, {"salesforce_account_id": ""})
        hs.create_many("companies", [dict(p) for p in PROSPECTS])
        zd.seed(org, seeded_at, account_ids=sf_ids)  # Zendesk: one desk, same accounts
        sendgrid.seed(org, email_at)
        mailchimp.seed(org, email_at)
        slack.add_users(org.users)
        yield DemoSandbox(sf, hs, zd, slack, EmailSandbox(sendgrid, mailchimp), sf_ids)


def serve(*, accounts: int, seed: int, port_base: int, out: TextIO = sys.stdout) -> None:
    """``healthscore sandbox serve``: start and seed the emulators, print the ``export`` lines
    and the YAML path on ``out``, serve until SIGINT/SIGTERM, then stop them and clean up."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    now = datetime.now(UTC)
    org = generate_org(accounts, seed=seed, now=now)
    workdir = Path(tempfile.mkdtemp(prefix="healthscore-sandbox-"))
    try:
        with demo_sandbox(org, seeded_at=now - SEED_AGE, email_at=now, port_base=port_base) as box:
            box.hubspot.set_time(None)  # seeded an hour ago; real time from here on
            usage_csv, _ = write_usage_drop(
                org,
                box.sf_ids,
                workdir / "usage-drop",
                seed=seed,
                last_day=now.date() - timedelta(days=1),
            )
            config = enable_usage(demo_story_config(box.email), usage_csv)
            config_path = workdir / "healthscore.yaml"
            write_config(config, config_path)
            env = box.environment(
                database_url=f"sqlite:///{workdir / 'healthscore.db'}",
                healthscore_config=config_path,
            )
            print(f"# healthscore sandbox: {accounts} synthetic accounts (seed {seed})", file=out)
            for name, value in env.items():
                print(f"export {name}={shlex.quote(value)}", file=out)
            out.flush()
            print(
                f"The emulators are running; the configuration is {config_path}. In another "
                "shell, run the exports above, then e.g. `healthscore check` or `healthscore "
                "run --dry-run`. Ctrl-C stops them.",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(workdir, ignore_errors=True)
    print("healthscore sandbox: stopped", file=sys.stderr, flush=True)
