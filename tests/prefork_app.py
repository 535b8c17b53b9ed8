"""A Celery app for tests/test_store_workers.py: a task that, on a prefork worker (whose
processes are daemonic), starts store workers."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery(
    "prefork_app",
    broker=os.environ.get("PREFORK_BROKER_URL", "memory://"),
    backend=os.environ.get("PREFORK_BROKER_URL", "cache+memory://"),
)


@app.task
def accounts_seen_by_store_workers(url: str) -> dict[str, Any]:
    from connectors.zendesk.store_workers import StoreWorkers
    from store import Store
    from tests.test_store_workers import accounts_and_pid

    store = Store(url)
    with StoreWorkers(store) as workers:
        results = list(workers.map(accounts_and_pid, ["A"], ""))
    store.close()
    return {"task_pid": os.getpid(), "results": results}
