"""``healthscore demo``: the whole product on a laptop, against the sandbox emulators.

Starts the Salesforce (HTTPS) and Slack emulators, seeds a synthetic org, and runs the real
cycle — simple-salesforce and slack-sdk over the wire — several times on unchanged data, so the
second cycle shows that nothing is written or posted twice.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import Store

from .config import load_config
from .pipeline import Pipeline
from .runtime import setup_logging
from .settings import Settings

DEMO_CHANNEL = "C0CSALERTS"
# The sandbox workspace lets the demo post faster than Slack's ~1 message/s per channel, so
# 500 accounts finish in seconds; the sender still paces itself to this configured rate.
DEMO_MESSAGES_PER_SECOND = 25.0

console = Console(stderr=False)


def run_demo(*, accounts: int, cycles: int, seed: int,
             workdir: Path | None = None) -> dict[str, Any]:
    setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    org = generate_org(accounts, seed=seed)
    with tempfile.TemporaryDirectory(prefix="healthscore-demo-") as tmp, \
            SalesforceEmulator() as sf_emu, \
            SlackEmulator(messages_per_second=DEMO_MESSAGES_PER_SECOND, burst=5) as slack_emu:
        sf_emu.seed(org)
        slack_emu.add_users(org.users)
        base = workdir or Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{base / 'healthscore-demo.db'}",
            salesforce_instance_url=sf_emu.base_url,
            salesforce_token_url=sf_emu.token_url,
            salesforce_client_id=sf_emu.client_id,
            salesforce_client_secret=sf_emu.client_secret,
            salesforce_ca_bundle=Path(sf_emu.ca_bundle_path),
            slack_bot_token=slack_emu.bot_token,
            slack_base_url=slack_emu.base_url,
            slack_alert_channel=DEMO_CHANNEL,
        )
        config = load_config()
        slack_cfg = config.alerts.slack.model_copy(
            update={"messages_per_second": DEMO_MESSAGES_PER_SECOND})
        config = config.model_copy(update={"alerts": config.alerts.model_copy(
            update={"slack": slack_cfg})})
        store = Store(settings.database_url)
        pipeline = Pipeline(config, settings, store, config_path="<packaged example>")
        console.print(f"[bold]healthscore demo[/]: {accounts} synthetic accounts, Salesforce "
                      f"emulator at {sf_emu.base_url} (TLS), Slack emulator at "
                      f"{slack_emu.base_url}")
        summaries = []
        for _ in range(cycles):
            patches_before = len(sf_emu.requests("PATCH", r"/composite/sobjects"))
            posts_before = _posted(slack_emu)
            cycle = pipeline.run_cycle()
            summary = cycle.summary()
            summary["crm_write_requests"] = len(
                sf_emu.requests("PATCH", r"/composite/sobjects")) - patches_before
            summary["slack_messages"] = _posted(slack_emu) - posts_before
            summaries.append(summary)
        _print_cycles(summaries)
        _print_reds(store, slack_emu)
        store.close()
        _print_checks(summaries)
    return {"accounts": accounts, "cycles": summaries}


def _posted(slack_emu: SlackEmulator) -> int:
    """Messages Slack accepted (a 200 with ok: false is an error, not a message)."""
    return len(slack_emu.messages)


ROWS = (("accounts pulled", "accounts_pulled"), ("accounts scored", "scored"),
        ("red", "red"), ("yellow", "yellow"), ("green", "green"),
        ("insufficient data", "insufficient_data"), ("records skipped", "records_skipped"),
        ("CRM records updated", "crm_records_updated"),
        ("CRM write requests", "crm_write_requests"), ("CRM writes pending", "crm_writes_pending"),
        ("entered red", "entered_red"), ("Slack messages", "slack_messages"),
        ("seconds", "seconds"))


def _print_cycles(summaries: list[dict[str, Any]]) -> None:
    table = Table(title="cycles on unchanged data")
    table.add_column("")
    for n in range(1, len(summaries) + 1):
        table.add_column(f"cycle {n}", justify="right")
    for label, key in ROWS:
        table.add_row(label, *(str(s["grades"][key] if key in s["grades"] else s[key])
                               for s in summaries))
    console.print(table)


def _print_reds(store: Store, slack_emu: SlackEmulator) -> None:
    messages = slack_emu.messages[:5]
    if not messages:
        return
    table = Table(title=f"first Slack alerts ({len(slack_emu.messages)} in all)")
    table.add_column("channel")
    table.add_column("fallback text")
    for m in messages:
        table.add_row(str(m.get("channel")), str(m.get("text")))
    console.print(table)


def _print_checks(summaries: list[dict[str, Any]]) -> None:
    first = summaries[0]
    ok_requests = first["crm_write_requests"] == math.ceil(first["crm_records_updated"] / 200)
    ok_slack = first["slack_messages"] == first["entered_red"]
    ok_quiet = all(s["crm_records_updated"] == 0 and s["slack_messages"] == 0
                   for s in summaries[1:])
    for label, ok in (("cycle 1 writes in ceil(updated/200) requests", ok_requests),
                      ("cycle 1 posts one alert per account that entered red", ok_slack),
                      ("later cycles on unchanged data write and post nothing", ok_quiet)):
        console.print(f"{'[green]✓' if ok else '[red]✗'}[/] {label}")
