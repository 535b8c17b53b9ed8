"""Reading the next pages of a paced pull while the current one is being stored.

A rate-limited pull (a ticket export allowed 10 requests a minute) is as fast as its limit
only if each request leaves when its slot comes, whatever the store is doing. ``prefetched``
runs the page iterator in a thread of its own, at most ``depth`` pages ahead of the consumer:
memory stays bounded by ``depth`` pages, and an error in the pull is raised in the consumer
at the place in the sequence where it happened.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(pages: Iterator[T], depth: int = 4, *, name: str = "prefetch") -> Iterator[T]:
    """Yield what ``pages`` yields, read ahead by up to ``depth`` items in another thread.

    When the consumer stops early (an error, ``break``), the reader stops at its next item.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
            return
        put(_DONE)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


def mapped_ahead(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, depth: int, name: str
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed by ``workers`` threads at most
    ``depth`` items ahead of the consumer: work that runs outside the interpreter (a database
    statement) uses every core while the consumer stores what came before.

    An error is raised in the consumer at its item; stopping early cancels what has not
    started."""
    if workers < 1 or depth < 1:
        raise ValueError("workers and depth must be at least 1")
    todo = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(todo, depth))
        try:
            while pending:
                result = pending.popleft().result()
                for item in islice(todo, 1):
                    pending.append(pool.submit(fn, item))
                yield result
        finally:
            for future in pending:
                future.cancel()
