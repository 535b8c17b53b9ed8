"""The chaos run's emulators in their own process: ``python -m sandbox.chaos.emulators``.

Starts every emulator seeded with one synthetic org (real time, as ``healthscore sandbox
serve``), writes the configuration the workers run with — the demo's rules, the score cycle
every ``--every`` seconds — and ``emulators.json`` (the environment that points healthscore
at them, the control endpoint's URL), then serves until SIGTERM. Its logs stay in this
process, read through the control endpoint, so they outlive every killed worker.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from healthscore.config import Config
from sandbox import generate_org
from sandbox.chaos.control import Control, serve_control
from sandbox.demo.demo_keep import write_config
from sandbox.demo.serve_demo import SEED_AGE, demo_sandbox, demo_story_config

SLOW_SOURCES_EVERY = timedelta(minutes=10)  # sources the chaos does not change


def chaos_config(config: Config, every: int) -> Config:
    """The demo's story with beat's intervals shortened: the score cycle every ``every``
    seconds and the Salesforce sync twice as often (it carries the accounts moved into red);
    the other sources once, early enough, then rarely."""
    sources = config.sources
    updates = {}
    for name in type(sources).model_fields:
        section = getattr(sources, name)
        if getattr(section, "enabled", False) and hasattr(section, "sync_every"):
            often = name == "salesforce"
            wait = timedelta(seconds=max(1, every // 2)) if often else SLOW_SOURCES_EVERY
            updates[name] = section.model_copy(update={"sync_every": wait})
    scoring = config.scoring.model_copy(update={"every": timedelta(seconds=every)})
    return config.model_copy(
        update={"sources": sources.model_copy(update=updates), "scoring": scoring}
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.chaos.emulators")
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--every", type=int, required=True, help="score cycle, seconds")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    now = datetime.now(UTC)
    org = generate_org(args.accounts, seed=args.seed, now=now)
    with demo_sandbox(org, seeded_at=now - SEED_AGE, email_at=now) as box:
        box.hubspot.set_time(None)  # seeded an hour ago; real time from here on
        config = chaos_config(demo_story_config(box.email), args.every)
        config_path = args.workdir / "healthscore.yaml"
        write_config(config, config_path)
        roles = config.sources.salesforce.write_back.roles()
        control = Control(box, roles, args.seed)
        server = serve_control(control)
        ready = {
            "environment": box.environment(healthscore_config=config_path),
            "control": f"http://127.0.0.1:{server.server_address[1]}",
            "sf_ids": box.sf_ids,
            "hubspot_roles": config.sources.hubspot.write_back.roles(),
            "salesforce_roles": roles,
        }
        tmp = args.workdir / "emulators.json.tmp"
        tmp.write_text(json.dumps(ready, default=str), encoding="utf-8")
        tmp.rename(args.workdir / "emulators.json")  # the runner waits for this file
        while not stop.wait(0.2):
            pass
        server.shutdown()


if __name__ == "__main__":
    main()
