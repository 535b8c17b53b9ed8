"""Celery settings: Redis broker from REDIS_URL, late acks, and a beat schedule from the YAML.

Run exactly one beat (`celery -A tasks beat`) and any number of workers
(`celery -A tasks worker -Q sync,score`). A bad REDIS_URL or YAML stops start-up with the
variable, or the file, line and field, in the message.
"""

from __future__ import annotations

import os

from kombu import Queue

from healthscore.config import load_config
from healthscore.core.settings import load_settings

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
task_routes = {"tasks.sync_source": {"queue": "sync"}, "tasks.score_cycle": {"queue": "score"}}

beat_schedule: dict = {}
# one incremental pull per enabled source, each on its own sync_every
SOURCES = (
    "salesforce",
    "hubspot",
    "zendesk",
    "sendgrid",
    "mailchimp",
    "hubspot_email",
    "usage_file",
    "warehouse",
)
for _name in SOURCES:
    _source = getattr(_config.sources, _name)
    if _source.enabled:
        beat_schedule[f"sync-{_name}"] = {
            "task": "tasks.sync_source",
            "schedule": _source.sync_every.total_seconds(),
            "args": (_name,),
        }
if _config.sources.accounts_file is not None:
    beat_schedule["sync-accounts-file"] = {
        "task": "tasks.sync_source",
        "schedule": _config.sources.accounts_file.sync_every.total_seconds(),
        "args": ("accounts_file",),
    }
beat_schedule["score-cycle"] = {
    "task": "tasks.score_cycle",
    "schedule": _config.scoring.every.total_seconds(),
}
