"""Celery tasks: thin wrappers that unpack arguments, call the pipeline, map errors to retries.

Both tasks take a Redis lock, so a run still going when the next is due is skipped, not doubled.
"""

from __future__ import annotations

import logging
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
    if stopped is not None and stopped.error:
        # the rest of the cycle is done; retry so the pending writes go out soon
        return _retry_later(self, RetriableError(stopped.error, retry_after=stopped.retry_after))
    return result
