"""A Celery app for tests/test_zendesk_sql_recompute.py: a Zendesk sync as a task on a prefork
worker, whose processes are daemonic (``multiprocessing`` refuses them children)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from typing import Any

from celery import Celery

app = Celery(
    "prefork_app",
    broker=os.environ.get("PREFORK_BROKER_URL", "memory://"),
    backend=os.environ.get("PREFORK_BROKER_URL", "cache+memory://"),
)


@app.task
def zendesk_sync(db_url: str, api_url: str, email: str, token: str, now: str) -> dict[str, Any]:
    """Sync Zendesk (the emulator at ``api_url``) into the store at ``db_url`` as of ``now``;
    report what the sync did and every process it started (none is expected)."""
    from connectors.registry import Settings
    from connectors.zendesk import ZendeskClient
    from connectors.zendesk.config import ZendeskSource
    from connectors.zendesk.sync import sync_zendesk
    from store import Store

    children: list[str] = []
    popen = subprocess.Popen

    class Recorded(popen):  # type: ignore[misc,valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            children.append(str(args))
            super().__init__(args, *rest, **kwargs)

    settings = Settings(
        redis_url="", zendesk_email=email, zendesk_api_token=token, zendesk_base_url=api_url
    )
    store = Store(db_url)
    subprocess.Popen = Recorded  # type: ignore[misc]
    try:
        report = sync_zendesk(
            ZendeskClient(settings, limit_scale=600),
            store,
            ZendeskSource(enabled=True),
            now=lambda: datetime.fromisoformat(now),
        )
    finally:
        subprocess.Popen = popen  # type: ignore[misc]
        store.close()
    return {
        "task_pid": os.getpid(),
        "children": children,
        "accounts_recomputed": report.accounts_recomputed,
    }
