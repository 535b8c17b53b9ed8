"""CPU-bound reads of the store in worker processes, beside a sync's own.

A sync runs in one interpreter: while it writes a chunk of signals, nothing else of it can
run. Recomputing the signals of 100,000 accounts reads back and aggregates every kept ticket
(about as long as writing the signals): in a second process the two overlap, on a second
core. Each worker opens its own :class:`~store.Store` on the same database — SQLite in WAL
mode lets a reader run beside the writer — and sends back plain values; the sync's process
stays the only writer.

A worker is a plain ``python -m connectors.zendesk.store_workers`` child talking over two pipes,
not a ``multiprocessing`` process: a Celery prefork worker's processes are daemonic, and
``multiprocessing`` refuses to start children from those. The database URL travels over the
pipe (never on a command line), and a worker whose parent is gone reads end-of-file and
exits. Workers are started early, so their imports overlap the sync's network reads, and are
used only for a large recompute.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def shareable(store: Store) -> bool:
    """Whether another process can open the same database (not an in-memory SQLite)."""
    url = store.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


class _Worker:
    """One child process, its two pipes, and the requests sent to it and not answered yet."""

    def __init__(self, url: str) -> None:
        to_child, inbox = os.pipe()
        outbox, from_child = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "connectors.zendesk.store_workers",
                    str(to_child),
                    str(from_child),
                ],
                pass_fds=(to_child, from_child),
                env=env,
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        self.requests = Connection(inbox, readable=False)
        self.replies = Connection(outbox, writable=False)
        self.requests.send(url)

    def result(self) -> Any:
        try:
            ok, value = self.replies.recv()
        except EOFError:
            raise RuntimeError(f"a store worker exited (code {self.process.wait()})") from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self.requests.close()  # end of file: the worker returns
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.replies.close()


class StoreWorkers:
    """``processes`` worker processes, each with a :class:`Store` on ``store``'s database."""

    def __init__(self, store: Store, processes: int = 1) -> None:
        if not shareable(store):
            raise ValueError("an in-memory SQLite store cannot be shared with other processes")
        url = store.engine.url.render_as_string(hide_password=False)
        self._workers: list[_Worker] = []
        try:
            for _ in range(processes):
                self._workers.append(_Worker(url))
        except BaseException:
            self.close()
            raise

    @property
    def processes(self) -> int:
        return len(self._workers)

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any) -> Iterator[R]:
        """``fn(store, item, *args)`` for each item, in the workers; results in ``items``'
        order. ``fn`` is a module-level function (it is pickled by name) and the items are
        small (a chunk of account ids): at most two per worker are in flight, so neither
        side waits on a full pipe and results never pile up. A worker's exception is raised
        here."""
        pending: deque[_Worker] = deque()  # who answers each item sent, in the items' order
        try:
            for index, item in enumerate(items):
                worker = self._workers[index % len(self._workers)]
                worker.requests.send((fn, item, args))
                pending.append(worker)
                if len(pending) > 2 * len(self._workers):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            while pending:  # stopped early: take the answers owed, so the pipes stay in step
                with contextlib.suppress(Exception):  # the first error is already on its way
                    pending.popleft().result()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

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
    except OSError as exc:  # e.g. a sandbox forbidding new processes
        log.warning("cannot start worker processes (%s): recomputing in this process", exc)
        return None


def _serve(requests_fd: int, replies_fd: int) -> None:
    """A worker's loop: open the store named first, then answer requests until end of file."""
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    try:
        store = Store(requests.recv())
    except EOFError:
        return
    try:
        while True:
            try:
                fn, item, args = requests.recv()
            except EOFError:
                return
            try:
                reply: tuple[bool, Any] = (True, fn(store, item, *args))
            except Exception as exc:  # handed to the caller, who raises it
                reply = (False, exc)
            try:
                replies.send(reply)
            except Exception as exc:  # an exception that does not pickle
                replies.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        store.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
