"""Celery settings: Redis broker from REDIS_URL, late acks, and a beat schedule from the YAML.

Run exactly one beat (`celery -A tasks beat`) and any number of workers
(`celery -A tasks worker -Q sync,score`). A bad REDIS_URL or YAML stops start-up with the
variable, or the file, line and field, in the message.
"""

from __future__ import annotations

import os

from kombu import Queue

from connectors.registry import load_settings
from healthscore.config import load_config
from healthscore.worker.schedule import beat_schedule_for

_settings = load_settings()
_config = load_config(
    _settings.healthscore_config
    if _settings.healthscore_config.exists() or "HEALTHSCORE_CONFIG" in os.environ
    else None
)

broker_url = _settings.redis_url
result_backend = _settings.redis_url
result_expires = 24 * 3600
broker_connection_retry_on_startup = True
if broker_url.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with the fix that keeps a worker alive when Redis goes away
    # mid-task (see healthscore/worker/redis_transport.py)
    broker_transport = "healthscore.worker.redis_transport:Transport"
broker_transport_options = {"visibility_timeout": 2 * 3600}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Tasks are idempotent (cursors, pending writes, keyed action log), so a message is acknowledged
# only after the task ran; a worker lost mid-task leaves it for another worker.
task_acks_late = True
task_reject_on_worker_lost = False  # Celery warns this can loop; idempotent retries cover it
worker_prefetch_multiplier = 1
task_time_limit = 3600
task_soft_time_limit = 3300

task_queues = (Queue("sync"), Queue("score"))
task_default_queue = "score"
task_routes = {
    "tasks.sync_source": {"queue": "sync"},
    "tasks.score_cycle": {"queue": "score"},
    "tasks.flush_writes": {"queue": "score"},
}

beat_schedule = beat_schedule_for(_config)
