"""Worker processes reading the store beside a sync (healthscore/store_workers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery

from connectors.zendesk.store_workers import StoreWorkers, shareable, start_workers
from store import AccountRow, Store


def accounts_and_pid(store: Store, prefix: str, suffix: str) -> tuple[list[str], int]:
    """Run in a worker: what its own store sees, and where it ran."""
    return [a + suffix for a in store.account_ids() if a.startswith(prefix)], os.getpid()


def refuse(store: Store, item: str) -> None:
    raise LookupError(f"no {item} here")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'workers.db'}")
    s.upsert_accounts(AccountRow(a, "salesforce", a) for a in ("A1", "A2", "B1"))
    return s


def test_items_run_in_another_process_on_the_same_database_in_order(store) -> None:
    with StoreWorkers(store, processes=2) as workers:
        results = list(workers.map(accounts_and_pid, ["A", "B", "C", "A"], "!"))
    assert [accounts for accounts, _ in results] == [["A1!", "A2!"], ["B1!"], [], ["A1!", "A2!"]]
    assert os.getpid() not in {pid for _, pid in results}


def test_a_workers_exception_is_raised_in_the_caller(store) -> None:
    with StoreWorkers(store) as workers, pytest.raises(LookupError, match="no ticket here"):
        list(workers.map(refuse, ["ticket"]))


def test_an_in_memory_store_is_not_shared(tmp_path) -> None:
    assert shareable(Store(f"sqlite:///{tmp_path / 'x.db'}"))
    memory = Store("sqlite://")
    assert not shareable(memory)
    assert start_workers(memory, 2) is None
    with pytest.raises(ValueError, match="in-memory"):
        StoreWorkers(memory)


def test_no_processes_asked_for_means_none_started(store) -> None:
    assert start_workers(store, 0) is None


def test_a_celery_prefork_worker_process_can_start_them(store, redis_url) -> None:
    """Celery's prefork processes are daemonic, and multiprocessing refuses to start children
    from those: the workers are plain subprocesses, so a sync task on one can use them."""
    queue = f"prefork-{uuid.uuid4().hex[:8]}"
    root = Path(__file__).resolve().parent.parent
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.prefork_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--queues",
            queue,
            "--loglevel",
            "warning",
        ],
        cwd=root,
        env={**os.environ, "PREFORK_BROKER_URL": redis_url},
    )
    try:
        app = Celery(broker=redis_url, backend=redis_url)
        reply = app.send_task(
            "tests.prefork_app.accounts_seen_by_store_workers", args=[store.url], queue=queue
        ).get(timeout=60)
    finally:
        worker.terminate()
        worker.wait(30)
    [[accounts, worker_pid]] = reply["results"]
    assert accounts == ["A1", "A2"]
    assert worker_pid != reply["task_pid"]
