"""``prefetched`` and ``mapped_ahead``: the same items in the same order, computed ahead by a
bounded amount."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from healthscore.core.prefetch import mapped_ahead, prefetched


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


# -- mapped_ahead: fn over items in worker threads, results in order --------------------------
def test_mapped_ahead_keeps_the_order_whatever_finishes_first() -> None:
    def slow_for_small(i: int) -> int:
        time.sleep(0.02 * (5 - i % 5))  # earlier items finish later
        return i * i

    assert list(mapped_ahead(slow_for_small, range(20), workers=3, depth=4, name="t")) == [
        i * i for i in range(20)
    ]
    assert list(mapped_ahead(slow_for_small, [], workers=2, depth=2, name="t")) == []


def test_mapped_ahead_runs_the_workers_at_once() -> None:
    both = threading.Barrier(2, timeout=5)  # broken (an error) unless two run together

    def meet(i: int) -> int:
        both.wait()
        return i

    assert list(mapped_ahead(meet, range(6), workers=2, depth=2, name="t")) == list(range(6))


def test_mapped_ahead_computes_at_most_depth_ahead() -> None:
    started: list[int] = []

    def note(i: int) -> int:
        started.append(i)
        return i

    results = mapped_ahead(note, range(50), workers=2, depth=3, name="t")
    assert next(results) == 0
    time.sleep(0.2)
    assert len(started) <= 4  # item 0 and at most three after it
    assert list(results) == list(range(1, 50))


def test_mapped_ahead_raises_at_the_failing_item_and_stops() -> None:
    started: list[int] = []

    def fail_at_3(i: int) -> int:
        started.append(i)
        if i == 3:
            raise RuntimeError("statement failed")
        return i

    seen = []
    with pytest.raises(RuntimeError, match="statement failed"):
        for item in mapped_ahead(fail_at_3, range(100), workers=2, depth=2, name="t"):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert max(started) <= 5  # nothing far past the failure was started
