"""Celery tasks: thin wrappers that unpack arguments, call the pipeline, map errors to retries.

Both tasks take a Redis lock, so a run still going when the next is due is skipped, not doubled.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from celery import Celery, Task

from connectors.contract import summarize
from healthscore.core.errors import RetriableError
from healthscore.core.locks import redis_client, single_flight
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


@app.task(bind=True, name="tasks.sync_source", **RETRY)
def sync_source(self: Task, source: str) -> dict[str, Any]:
    rt = runtime()
    on = rt.pipeline().enabled_sources()
    if source not in on:
        raise ValueError(f"unknown source {source!r} (configured: {', '.join(on)})")
    with single_flight(redis_client(rt.settings.redis_url), f"sync:{source}") as mine:
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
    with single_flight(redis_client(rt.settings.redis_url), "score") as mine:
        if not mine:
            return {"skipped": "already running"}
        try:
            act = rt.pipeline().score_and_act()
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
    with single_flight(redis_client(rt.settings.redis_url), "write-back") as mine:
        if not mine:
            return {"skipped": "already running"}
        writes = rt.pipeline().write_back()
    for report in writes.values():
        if report.error and report.pending and report.retriable:
            return _retry_later(self, RetriableError(report.error, retry_after=report.retry_after))
    return {prefix: asdict(report) for prefix, report in writes.items()}
