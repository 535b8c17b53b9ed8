"""Celery tasks: thin wrappers that unpack arguments, call the pipeline, map errors to retries.

Both tasks take a Redis lock, so a run still going when the next is due is skipped, not doubled.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import Celery, Task

from actions.deliver import STUCK_SENDING
from connectors.contract import summarize
from healthscore.core.errors import RetriableError
from healthscore.core.locks import LOCK_TTL, redis_client, single_flight
from healthscore.pipeline.runtime import Runtime, load_runtime

log = logging.getLogger(__name__)

app = Celery("healthscore")
app.config_from_object("healthscore.worker.celeryconfig")

RETRY = {"max_retries": 5, "acks_late": True}
WRITE_RETRY_SECONDS = 30.0  # first wait before pending writes go again, when the CRM said none


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Settings, YAML and store, built once per worker process."""
    return load_runtime()


def _retry_later(task: Task, exc: RetriableError) -> Any:
    """Back off exponentially (or as the vendor said), with jitter, up to max_retries."""
    countdown = exc.retry_after or min(600, 30 * 2**task.request.retries)
    raise task.retry(exc=exc, countdown=countdown)


def lock_ttl(every: timedelta) -> float:
    """A run's lock outlives a holder killed with ``kill -9`` by at most half the run's
    interval (and at most LOCK_TTL): the next scheduled run after the kill goes ahead within
    two intervals even when the schedule is shorter than LOCK_TTL."""
    return min(LOCK_TTL, every.total_seconds() / 2)


def dead_after(ttl: float) -> timedelta:
    """How old a ``sending`` row is, at least, when the next cycle takes the lock of a worker
    killed while sending it: the dead holder renewed its lock at most ttl/3 before dying and
    the lock then lived ttl more. Under the lock no live worker is sending, so such rows are
    reconciled by this cycle instead of waiting STUCK_SENDING (10 minutes)."""
    return min(STUCK_SENDING, timedelta(seconds=ttl * 2 / 3))


@app.task(bind=True, name="tasks.sync_source", **RETRY)
def sync_source(self: Task, source: str) -> dict[str, Any]:
    rt = runtime()
    on = rt.pipeline().enabled_sources()
    if source not in on:
        raise ValueError(f"unknown source {source!r} (configured: {', '.join(on)})")
    ttl = lock_ttl(getattr(rt.config.sources, source).sync_every)
    with single_flight(redis_client(rt.settings.redis_url), f"sync:{source}", ttl) as mine:
        if not mine:
            return {"skipped": "already running"}
        try:
            return summarize(rt.pipeline().sync(source))
        except RetriableError as exc:
            return _retry_later(self, exc)


@app.task(bind=True, name="tasks.score_cycle", **RETRY)
def score_cycle(self: Task) -> dict[str, Any]:
    """Score, write changed values back to the CRM, deliver alerts."""
    rt = runtime()
    ttl = lock_ttl(rt.config.scoring.every)
    with single_flight(redis_client(rt.settings.redis_url), "score", ttl) as mine:
        if not mine:
            return {"skipped": "already running"}
        try:
            act = rt.pipeline().score_and_act(stuck_after=dead_after(ttl))
        except RetriableError as exc:
            return _retry_later(self, exc)
        result = act.as_dict()
    stopped = act.pending_write_error
    if stopped is not None:
        # the rest of the cycle is done: only the pending writes go again, by their own task
        # (retrying this one would score again and record another run)
        countdown = stopped.retry_after or WRITE_RETRY_SECONDS
        flush_writes.apply_async(countdown=countdown)
        result["write_retry_in"] = countdown
    return result


@app.task(bind=True, name="tasks.flush_writes", **RETRY)
def flush_writes(self: Task) -> dict[str, Any]:
    """Send the CRM writes still pending — no scoring — retrying while the CRM says later."""
    rt = runtime()
    ttl = lock_ttl(rt.config.scoring.every)
    with single_flight(redis_client(rt.settings.redis_url), "write-back", ttl) as mine:
        if not mine:
            return {"skipped": "already running"}
        writes = rt.pipeline().write_back()
    for report in writes.values():
        if report.error and report.pending and report.retriable:
            return _retry_later(self, RetriableError(report.error, retry_after=report.retry_after))
    return {prefix: asdict(report) for prefix, report in writes.items()}
