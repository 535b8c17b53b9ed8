"""``prefetched``: the same items in the same order, read ahead by a bounded amount."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from healthscore.core.prefetch import prefetched


def test_same_items_in_order() -> None:
    assert list(prefetched(iter(range(100)), 3)) == list(range(100))
    assert list(prefetched(iter([]), 1)) == []


def test_reads_ahead_at_most_depth_items() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for i in range(20):
            produced.append(i)
            yield i

    items = prefetched(pages(), 2)
    assert next(items) == 0
    time.sleep(0.3)  # the reader runs ahead while the consumer sits on item 0
    # item 0 consumed, 2 waiting in the queue, 1 more read and waiting to be put
    assert 3 <= len(produced) <= 4
    assert list(items) == list(range(1, 20))


def test_reads_while_the_consumer_works() -> None:
    def slow_pages() -> Iterator[int]:
        for i in range(5):
            time.sleep(0.1)  # a paced request
            yield i

    started = time.perf_counter()
    for _ in prefetched(slow_pages(), 4):
        time.sleep(0.1)  # storing the page
    # one after the other would take 1.0 s; overlapped, about 0.6 s
    assert time.perf_counter() - started < 0.85


def test_an_error_is_raised_where_it_happened() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("HTTP 500")

    seen = []
    with pytest.raises(RuntimeError, match="HTTP 500"):
        for item in prefetched(failing(), 4):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_stops_the_reader() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    for item in prefetched(endless(), 2):
        if item == 3:
            break
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count  # the reader has stopped
    assert threading.active_count() == before
