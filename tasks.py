"""Celery entry point: `celery -A tasks worker` / `celery -A tasks beat` (the tasks live in
healthscore/worker/tasks.py)."""

from healthscore.worker.tasks import app, flush_writes, score_cycle, sync_source

__all__ = ["app", "flush_writes", "score_cycle", "sync_source"]
