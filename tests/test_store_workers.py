"""Worker processes reading the store beside a sync (healthscore/store_workers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from healthscore.store_workers import StoreWorkers, shareable, start_workers
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
