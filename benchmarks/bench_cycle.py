"""Benchmark: the demo's first cycle (every action delivered) at 1,000 and 10,000 accounts —
how many requests delivery made to the delivery vendors against the fewest their batch sizes
allow.

Set up exactly as ``healthscore demo`` does (``sandbox/demo/serve_demo.demo_sandbox`` seeds one
synthetic org into every emulator; ``run_demo``'s configuration: the demo's rules — a Slack
alert and a Salesforce CSM task per account entering red, two tech-touch email rules through
SendGrid — Salesforce as the CRM of record, HubSpot mirrored, the usage file), then one
``Pipeline.run_cycle()`` on a fresh SQLite store, emulators in this process. Prints **one JSON
line per size**::

    {"accounts": 1000, "seconds": …, "requests": …, "min_requests": …, …}

- ``seconds``: wall time of cycle 1 (sync, score, write back, deliver); ``delivery_seconds``
  is the delivery's part.
- ``requests``: what delivery asked of the delivery vendors in cycle 1, from the emulators'
  request logs (``sandbox/demo/demo_delivery.delivery_counts``, the demo's per-cycle
  ``delivery_requests``): every Slack call, the Salesforce/HubSpot task back end's calls
  (upserts, owner reads, look-ups, associations) and SendGrid mail sends. The suppression
  lists delivery consults are the ones the sync read in the same cycle (kept by the client),
  so they cost delivery nothing.
- ``min_requests``: the fewest the vendors allow for the same deliveries —
  Slack: one ``chat.postMessage`` per alert (no batch post) plus one ``users.lookupByEmail``
  per distinct owner mentioned (no batch look-up);
  Salesforce: ⌈tasks/200⌉ sObject Collections upserts plus ⌈accounts with a task/200⌉ reads of
  the accounts' owners (a Task's ``OwnerId`` is the Account's);
  HubSpot (CRM of record only; none here): ⌈tasks/100⌉ batch creates (each task carries its
  company association inline);
  SendGrid: Σ over templates ⌈emails/1000⌉ (``template_id`` is per request, 1,000
  personalizations a request).
  The target is ``requests <= 1.1 × min_requests`` (``ratio``).

Slack's own pace (about one message a second per channel) would make the 10,000-account run
last an hour; the sandbox workspace and the sender are set to ``--slack-pace`` messages a
second (default 1,000), which changes the seconds, not the requests.

    python benchmarks/bench_cycle.py [--accounts 1000 10000] [--seed 42] [--slack-pace 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.hubspot import HubSpotClient, ensure_properties
from connectors.registry import Settings
from healthscore.config import Config
from healthscore.core.quota import LocalQuota
from healthscore.pipeline.cycle import Pipeline
from sandbox import generate_org
from sandbox.demo.demo_delivery import DELIVERY_VENDORS, delivery_counts
from sandbox.demo.demo_usage import enable_usage, write_usage_drop
from sandbox.demo.serve_demo import SEED_AGE, demo_sandbox, demo_story_config
from store import Store

SALESFORCE_BATCH, HUBSPOT_BATCH, SENDGRID_BATCH = 200, 100, 1000


def min_requests(store: Store, record_crm: str) -> dict[str, int]:
    """The fewest requests the vendors' batch sizes allow for what cycle 1 delivered."""
    sent = store.actions(status="sent")
    alerts = [a for a in sent if a.kind == "slack"]
    tasks = [a for a in sent if a.kind == "task"]
    emails = Counter(a.payload.get("template") for a in sent if a.kind == "email_send")
    owners = {
        str(a.payload.get("owner_email")).lower() for a in alerts if a.payload.get("owner_email")
    }
    crm = {"salesforce": 0, "hubspot": 0}
    if record_crm == "hubspot":
        crm["hubspot"] = math.ceil(len(tasks) / HUBSPOT_BATCH)
    else:
        accounts = {a.account_id for a in tasks}
        crm["salesforce"] = math.ceil(len(tasks) / SALESFORCE_BATCH) + math.ceil(
            len(accounts) / SALESFORCE_BATCH
        )
    return {
        "slack": len(alerts) + len(owners),
        **crm,
        "sendgrid": sum(math.ceil(n / SENDGRID_BATCH) for n in emails.values()),
    }


def first_cycle(accounts: int, seed: int, slack_pace: float, workdir: Path) -> dict[str, Any]:
    """Cycle 1 of the demo at ``accounts``: its seconds, delivery requests and their floor."""
    start = (
        datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=1)
        + timedelta(hours=2)
    )
    org = generate_org(accounts, seed=seed, now=start)
    moment = start - SEED_AGE
    clock = lambda: moment  # noqa: E731 - the org's records were last edited an hour ago
    with demo_sandbox(org, seeded_at=moment, email_at=start, clock=clock) as box:
        box.slack.set_rate(slack_pace, burst=int(slack_pace))
        settings = Settings(
            database_url=f"sqlite:///{workdir / f'bench-{accounts}.db'}", **box.settings()
        )
        config = demo_story_config(box.email)
        usage_csv, _ = write_usage_drop(
            org,
            box.sf_ids,
            workdir / f"usage-{accounts}",
            seed=seed,
            last_day=start.date() - timedelta(days=1),
        )
        config = paced(enable_usage(config, usage_csv), slack_pace)
        store = Store(settings.database_url)
        hubspot = HubSpotClient(
            settings, quota=LocalQuota(10.0, 100), search_quota=LocalQuota(5.0, 5)
        )
        pipeline = Pipeline(
            config, settings, store, config_path="<demo>", hubspot=hubspot, clock=lambda: start
        )
        ensure_properties(hubspot, config.sources.hubspot.write_back)
        box.email.deliver_webhook(store, config)
        emulators = (box.salesforce, box.hubspot, box.slack, box.email.sendgrid)
        before = delivery_counts(*emulators)
        began = time.perf_counter()
        pipeline.sync_all()
        scoring, _ = pipeline.score()
        pipeline.write_back()
        delivering = time.perf_counter()
        report = pipeline.deliver()
        ended = time.perf_counter()
        after = delivery_counts(*emulators)
        by_vendor = {v: after[f"{v}_delivery"] - before[f"{v}_delivery"] for v in DELIVERY_VENDORS}
        floor = min_requests(store, config.sources.record_crm)
        pending = len(store.actions(status="pending"))
        store.close()
    requests, least = sum(by_vendor.values()), sum(floor.values())
    return {
        "accounts": accounts,
        "seconds": round(ended - began, 2),
        "requests": requests,
        "min_requests": least,
        "ratio": round(requests / least, 3) if least else None,
        "delivery_seconds": round(ended - delivering, 2),
        "by_vendor": by_vendor,
        "min_by_vendor": floor,
        "delivered": {
            "slack_messages": report.sent,
            "tasks": report.tasks_created,
            "emails": report.emails_sent,
            "entered_red": scoring.entered_red,
        },
        "left_pending": pending,
    }


def paced(config: Config, per_second: float) -> Config:
    slack = config.alerts.slack.model_copy(update={"messages_per_second": per_second})
    return config.model_copy(update={"alerts": config.alerts.model_copy(update={"slack": slack})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--slack-pace", type=float, default=1000.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        for n in args.accounts:
            print(json.dumps(first_cycle(n, args.seed, args.slack_pace, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
