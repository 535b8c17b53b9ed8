"""CPU-bound reads of the store in worker processes, beside a sync's own.

A sync runs in one interpreter: while it writes a chunk of signals, nothing else of it can
run. Recomputing the signals of 100,000 accounts reads back and aggregates every kept ticket
(about as long as writing the signals): in a second process the two overlap, on a second
core. Each worker opens its own :class:`~store.Store` on the same database — SQLite in WAL
mode lets a reader run beside the writer — and sends back plain values; the sync's process
stays the only writer.

Workers are started with ``spawn`` (never ``fork``: the sync has threads), early, so their
imports overlap the sync's network reads, and are used only for a large recompute.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_store: Store | None = None  # the worker process's own store


def _open_store(url: str) -> None:
    global _store
    _store = Store(url)


def _call(fn: Callable[..., R], item: Any, args: tuple[Any, ...]) -> R:
    if _store is None:
        raise RuntimeError("a store worker runs _open_store first")
    return fn(_store, item, *args)


def shareable(store: Store) -> bool:
    """Whether another process can open the same database (not an in-memory SQLite)."""
    url = store.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


class StoreWorkers:
    """``processes`` worker processes, each with a :class:`Store` on ``store``'s database."""

    def __init__(self, store: Store, processes: int = 1) -> None:
        if not shareable(store):
            raise ValueError("an in-memory SQLite store cannot be shared with other processes")
        self._pool = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_store,
            initargs=(store.engine.url.render_as_string(hide_password=False),))
        self.processes = processes
        for _ in range(processes):  # start them now: their imports overlap the sync's reads
            self._pool.submit(int)

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any) -> Iterator[R]:
        """``fn(store, item, *args)`` for each item, in the workers; results in ``items``'
        order. ``fn`` is a module-level function (it is pickled by name). At most two items
        per worker are in flight: results never pile up faster than the caller takes them.
        A worker's exception is raised here."""
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(self._pool.submit(_call, fn, item, args))
                if len(pending) > 2 * self.processes:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> StoreWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_workers(store: Store, processes: int) -> StoreWorkers | None:
    """Workers for ``store``, or None (and the work is done in this process) when
    ``processes`` is 0, the store is in memory, or processes cannot be started here."""
    if processes <= 0 or not shareable(store):
        return None
    try:
        return StoreWorkers(store, processes)
    except (OSError, RuntimeError) as exc:  # e.g. no /dev/shm, or a sandbox forbidding it
        log.warning("cannot start worker processes (%s): recomputing in this process", exc)
        return None
