"""Celery settings entry point (the settings live in healthscore/worker/celeryconfig.py)."""

from healthscore.worker.celeryconfig import *  # noqa: F403
