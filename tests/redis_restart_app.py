"""A Celery app for tests/test_worker_survives_redis.py: the product's broker settings
(healthscore.worker.celeryconfig) and one task that runs long enough to kill Redis under it."""

from __future__ import annotations

import os
import time

from celery import Celery

from healthscore.worker import celeryconfig

app = Celery("redis_restart")
app.conf.update(
    broker_url=os.environ["REDIS_URL"],
    result_backend=os.environ["REDIS_URL"],
    broker_transport=celeryconfig.broker_transport,
    task_acks_late=celeryconfig.task_acks_late,
    worker_prefetch_multiplier=celeryconfig.worker_prefetch_multiplier,
    broker_connection_retry_on_startup=True,
)


@app.task(name="nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
