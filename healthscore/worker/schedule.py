"""The beat schedule: one incremental pull per enabled source on its own ``sync_every``, and
the scoring cycle on ``scoring.every``."""

from __future__ import annotations

from typing import Any

from connectors.registry import enabled
from healthscore.config import Config

SYNC_TASK = "tasks.sync_source"
SCORE_TASK = "tasks.score_cycle"


def beat_schedule_for(config: Config) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {}
    for entry in enabled(config.sources):
        section = getattr(config.sources, entry.name)
        schedule[f"sync-{entry.name}"] = {
            "task": SYNC_TASK,
            "schedule": section.sync_every.total_seconds(),
            "args": (entry.name,),
        }
    schedule["score-cycle"] = {"task": SCORE_TASK, "schedule": config.scoring.every.total_seconds()}
    return schedule
