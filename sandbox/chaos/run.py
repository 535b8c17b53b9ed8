"""One chaos run: the processes up, a few cycles through faults and SIGKILLs, then the
invariants. Progress goes to stderr; the result is one JSON line on stdout.

The story, on a score cycle every ``every`` seconds:

1. the emulators (own process), a PostgreSQL schema, our ``redis-server``; ``healthscore
   setup-crm`` and ``healthscore sync`` (the product's CLI) before the workers start;
2. the faults on (10 % of requests: 429, 5xx, answers lost as after a timeout; an expired
   Salesforce token; HubSpot's write-back answers 401 until lifted), two workers and beat;
3. a worker SIGKILLed inside a Slack post (the cycle's delivery), a replacement started as a
   supervisor would;
4. Redis SIGKILLed while a score cycle runs, restarted on the same port (its append-only
   file keeps the queue);
5. accounts moved into red, a worker SIGKILLed inside a Salesforce write (the next cycle's
   write-back), replaced; the cycle after it, still under faults, and ``cycles - 3`` more
   with accounts moving into red and back;
6. the faults lifted; the run settles (nothing pending, a cycle after the lift finished);
7. the reconciliation (``sandbox.chaos.reconcile``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from redis.exceptions import RedisError

from healthscore.core.errors import ConfigError
from sandbox.chaos import messages, reconcile
from sandbox.chaos.processes import (
    Child,
    Emulators,
    Postgres,
    RedisServer,
    beat,
    child_env,
    cli,
    wait_for,
    worker,
)
from store import Store

SCORE_TASK = "tasks.score_cycle"
# seconds a slow point holds the request the worker is killed in: shorter than the
# worker's ``dead_after`` at the shortest --every, so the held request is served before the
# next cycle can look for it
HOLD = 2.5


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Run:
    """The running processes and what happened to them."""

    def __init__(
        self, workdir: Path, every: int, emulators: Emulators, pg: Postgres, redis: RedisServer
    ) -> None:
        self.workdir, self.every = workdir, every
        self.emulators, self.pg, self.redis = emulators, pg, redis
        self.kills: list[reconcile.Kill] = []
        self.workers: list[Child] = []
        self.beat: Child | None = None
        self.env = child_env(emulators, redis.url, pg.url)
        self.store = Store(pg.url)
        self.control = Celery("chaos-control", broker=redis.url)
        self.started_workers = 0

    def start_worker(self) -> Child:
        self.started_workers += 1
        child = worker(self.started_workers, self.env, self.workdir)
        self.workers.append(child)
        return child

    def running_score(self) -> Child | None:
        """The worker whose pool runs the score cycle now (asked over the broker)."""
        names = {w.name: w for w in self.workers if w.alive()}
        try:
            with self.control.connection() as conn:  # a fresh one: Redis may have restarted
                inspect = self.control.control.inspect(
                    timeout=1.0, connection=conn, limit=len(names)
                )
                active = inspect.active()
        except (OSError, RedisError):
            return None
        active = active or {}
        for hostname, tasks in active.items():
            if any(t.get("name") == SCORE_TASK for t in tasks):
                return names.get(hostname.split("@", 1)[0])
        return None

    def kill_inside(self, where: str, timeout: float) -> None:
        """Hold the next request at ``where``, wait for a worker to be inside it, SIGKILL
        that worker (its whole process group), start a replacement."""
        self.emulators.post("/slow", where=where, delay=HOLD)
        inside = wait_for(
            f"a worker inside {where}",
            lambda: self.emulators.get("/in-flight")[where] > 0 and self.running_score(),
            timeout,
            0.2,
        )
        at = time.time()
        inside.kill9()
        self.kills.append(reconcile.Kill(where, at, inside.pid))
        self.workers.remove(inside)
        say(f"SIGKILLed worker {inside.name} (pid {inside.pid}) inside {where}; restarting one")
        self.start_worker()

    def runs_finished_after(self, moment: float) -> int:
        return sum(
            1
            for r in self.store.runs()
            if r.finished_at is not None and reconcile.epoch(r.started_at) > moment
        )

    def stop_celery(self) -> None:
        for child in [*([self.beat] if self.beat else []), *self.workers]:
            child.stop()


def run(*, accounts: int, cycles: int, every: int, seed: int, workdir: Path) -> dict[str, Any]:
    """The whole story (see the module docstring); returns the JSON result. Whatever was
    started is stopped (and the schema dropped) however the story ends."""
    started = time.monotonic()
    say(f"starting the emulators ({accounts} accounts), PostgreSQL schema, redis-server")
    with ExitStack() as stack:
        emulators = Emulators(workdir, accounts=accounts, seed=seed, every=every)
        stack.callback(emulators.stop)
        pg = Postgres()
        stack.callback(pg.drop)
        redis_server = RedisServer(workdir)
        stack.callback(redis_server.stop)
        r = Run(workdir, every, emulators, pg, redis_server)
        stack.callback(r.store.close)
        stack.callback(r.stop_celery)
        result = _story(r, cycles, started)
    return result


def _story(r: Run, cycles: int, started: float) -> dict[str, Any]:
    cli(r.env, "setup-crm")
    cli(r.env, "sync")
    say("faults on; two workers and beat")
    r.emulators.post("/faults", on=True)
    r.start_worker()
    r.start_worker()
    r.beat = beat(r.env, r.workdir)
    window = 4 * r.every
    r.kill_inside("delivery", window)
    wait_for("a score cycle running", r.running_score, window, 0.2)
    say("SIGKILL redis-server under the running score cycle, restart it on the same port")
    survivors = [w for w in r.workers if w.alive()]
    r.redis.kill_and_restart(down_for=1.5)
    time.sleep(2)
    worker_survived = all(w.alive() for w in survivors)
    r.emulators.post("/churn", red=max(3, len(r.emulators.info["sf_ids"]) // 20), recover=0)
    r.kill_inside("write_back", window)
    last_kill = r.kills[-1].at
    wait_for("a cycle after the kill", lambda: r.runs_finished_after(last_kill), window, 0.5)
    for n in range(max(0, cycles - 3)):
        moved = r.emulators.post("/churn", red=2, recover=2)
        say(f"cycle under faults {n + 1}: {len(moved['reddened'])} accounts into red")
        time.sleep(r.every)
    say("faults lifted; waiting for the run to settle")
    r.emulators.post("/faults", on=False)
    lifted = time.time()
    _settle(r, lifted, timeout=8 * r.every)
    say("stopping beat and the workers (warm shutdown); reconciling")
    r.stop_celery()
    return _result(r, r.emulators.get("/state"), worker_survived, started)


def _settle(r: Run, lifted: float, timeout: float) -> None:
    """Wait until two cycles that started after the lift finished and nothing is owed (the
    reconciliation then says what is wrong, if the wait runs out)."""

    def settled() -> bool:
        if r.runs_finished_after(lifted) < 2:
            return False
        owed = [
            a
            for a in r.store.actions()
            if a.status in ("pending", "sending") and a.kind in reconcile.DELIVERED
        ]
        return not owed and not reconcile.lost_writes(r.store)

    try:
        wait_for("the run to settle", settled, timeout, 1.0)
    except TimeoutError as exc:
        say(f"{exc}: reconciling what there is")


def _result(r: Run, state: dict[str, Any], survived: bool, started: float) -> dict[str, Any]:
    store = r.store
    state["hubspot_roles"] = r.emulators.info["hubspot_roles"]
    mismatches, checked = reconcile.crm_mismatches(store, state)
    for line in mismatches[:10]:
        say(f"CRM mismatch: {line}")
    delivered = reconcile.deliveries(store, state)
    faults = state["faults"]
    return {
        "accounts": len(r.emulators.info["sf_ids"]),
        "cycles": sum(1 for run in store.runs() if run.finished_at is not None),
        "worker_kills": len(r.kills),
        "redis_restarts": r.redis.restarts,
        "faults_injected": sum(faults.values()),
        "crm_mismatches": len(mismatches),
        "crm_records_checked": checked,
        "lost_writes": reconcile.lost_writes(store),
        "duplicate_alerts": delivered["duplicate_slack"],
        "duplicate_tasks": delivered["duplicate_tasks"],
        "duplicate_emails": delivered["duplicate_emails"],
        "max_recovery_cycles": reconcile.recovery_cycles(store, state, r.kills, r.every),
        "next_cycle_after_kill_cycles": reconcile.next_cycle_cycles(store, r.kills, r.every),
        "undelivered": {k[12:]: v for k, v in delivered.items() if k.startswith("undelivered_")},
        "emails_unknown": delivered["unknown_emails"],
        "alerts_delayed_by_kills": reconcile.delayed_alerts(store, state, r.kills),
        "faults_by_vendor": faults,
        "requests_under_faults": state["requests_under_faults"],
        "kills": [{"where": k.where, "pid": k.pid} for k in r.kills],
        "worker_survived_redis_restart": survived,
        **messages.lost(r.workdir, redis.Redis.from_url(r.redis.url)),
        "cycle_seconds": r.every,
        "seconds": round(time.monotonic() - started, 1),
    }


FAILS: dict[str, Callable[[Any], bool]] = {
    "crm_mismatches": lambda v: v != 0,
    "lost_writes": lambda v: v != 0,
    "duplicate_alerts": lambda v: v != 0,
    "duplicate_tasks": lambda v: v != 0,
    "duplicate_emails": lambda v: v != 0,
    "max_recovery_cycles": lambda v: v > 2,
    "next_cycle_after_kill_cycles": lambda v: v > 2,
    "undelivered": lambda v: any(v.values()),
    "worker_survived_redis_restart": lambda v: v is not True,
    "lost_messages": lambda v: v != 0,
}


def failures(result: dict[str, Any]) -> list[str]:
    """The invariants ``result`` breaks (empty: all hold)."""
    return [f"{k}={result[k]}" for k, broken in FAILS.items() if broken(result[k])]


def main(accounts: int, cycles: int, every: int, seed: int, keep: Path | None) -> int:
    """Run, print the JSON line, return the exit status (1 when an invariant fails)."""
    if accounts < 20 or cycles < 3 or every < 8:
        raise ConfigError(
            f"chaos: needs --accounts >= 20, --cycles >= 3 and --every >= 8 "
            f"(got {accounts}, {cycles}, {every})"
        )
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        result = run(accounts=accounts, cycles=cycles, every=every, seed=seed, workdir=keep)
    else:
        with tempfile.TemporaryDirectory(prefix="healthscore-chaos-") as tmp:
            result = run(
                accounts=accounts, cycles=cycles, every=every, seed=seed, workdir=Path(tmp)
            )
    broken = failures(result)
    for line in broken:
        say(f"invariant broken: {line}")
    print(json.dumps(result), flush=True)
    return 1 if broken else 0
