"""``healthscore demo --chaos``: the cycle's delivery in real worker processes, each SIGKILLed
while it is inside a vendor request — a Slack post, a Salesforce task upsert, a SendGrid mail
send — and a new worker started after each kill; the last one finishes the delivery.

The emulator holds the request the worker is in (a slow point, ``sandbox.chaos.plan``) and
serves it after the kill, so the vendor accepted what no worker recorded: the next worker
reconciles it by key (Slack, tasks) or marks it ``unknown`` and never sends it again (email).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from actions import DeliveryReport
from connectors.hubspot import HubSpotClient
from healthscore.config import Config, load_config
from healthscore.core.quota import LocalQuota
from healthscore.pipeline.cycle import Pipeline
from sandbox.chaos import plan
from sandbox.chaos.control import InFlight
from sandbox.chaos.processes import wait_for
from sandbox.demo.demo_keep import write_config
from sandbox.server import EmulatorServer
from store import Store

KILLS = (
    ("delivery", "a Slack post"),
    ("task", "a Salesforce task upsert"),
    ("email", "a SendGrid mail send"),
)
HOLD = 1.5  # seconds the emulator holds the request the worker is killed in


def deliver_in_worker(
    config_path: Path, settings: Any, moment: datetime, out: Queue[DeliveryReport] | None
) -> None:
    """A worker process: the demo's pipeline (its configuration read from ``config_path``)
    on the shared store, one delivery (what a dead worker left in ``sending`` is reconciled
    first: no other worker is alive)."""
    config = load_config(config_path)
    store = Store(settings.database_url)
    hubspot = HubSpotClient(settings, quota=LocalQuota(10.0, 100), search_quota=LocalQuota(5.0, 5))
    pipeline = Pipeline(
        config,
        settings,
        store,
        config_path="<packaged example>",
        hubspot=hubspot,
        clock=lambda: moment,
    )
    report = pipeline.deliver(stuck_after=timedelta(0))
    store.close()
    if out is not None:
        out.put(report)


def deliver_with_kills(
    config: Config,
    settings: Any,
    moment: datetime,
    emulators: dict[str, EmulatorServer],
    say: Callable[[str], None],
    workdir: Path,
) -> tuple[DeliveryReport, list[int]]:
    """Deliver through KILLS real workers SIGKILLed in turn, then one that finishes; returns
    its report and the killed pids. The workers read ``config`` from a file in ``workdir``."""
    ctx = multiprocessing.get_context("spawn")
    config_path = workdir / "chaos-worker.yaml"
    write_config(config, config_path)
    flight = InFlight(emulators)
    killed: list[int] = []
    for where, label in KILLS:
        plan.slow_point(emulators, where, HOLD)
        worker = ctx.Process(target=deliver_in_worker, args=(config_path, settings, moment, None))
        worker.start()
        wait_for(
            f"a worker inside {label}",
            lambda w=where, p=worker: flight.snapshot()[w] > 0 or not p.is_alive(),
            120,
            0.02,
        )
        if not worker.is_alive():
            raise RuntimeError(f"the worker finished without sending {label}")
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join()
        killed.append(worker.pid or 0)
        say(f"SIGKILLed worker pid {worker.pid} inside {label}; starting a new worker")
        # the vendor finishes what the dead worker sent before anyone looks for it
        wait_for(f"{label} served", lambda w=where: flight.snapshot()[w] == 0, 30, 0.05)
    out: Queue[DeliveryReport] = ctx.Queue()
    last = ctx.Process(target=deliver_in_worker, args=(config_path, settings, moment, out))
    last.start()
    report = out.get(timeout=300)
    last.join()
    return report, killed
