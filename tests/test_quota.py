"""The vendor quota is one budget for every worker, kept in the real Redis."""

from __future__ import annotations

import threading
import time
import uuid

import redis

from healthscore.core.quota import LocalQuota, SharedQuota, make_quota


def test_two_workers_share_one_budget(redis_url: str) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    # two "workers", each with its own connection, 20 requests/s with a burst of 5
    quotas = [
        SharedQuota(redis.Redis.from_url(redis_url), name, rate=20, burst=5) for _ in range(2)
    ]
    stamps: list[float] = []
    lock = threading.Lock()

    def worker(q: SharedQuota) -> None:
        for _ in range(15):
            q.acquire()
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(q,)) for q in quotas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    # 30 requests, 5 free, 25 more at 20/s → at least 1.25 s for both together; each alone
    # with its own budget would finish in 0.5 s
    assert len(stamps) == 30
    assert elapsed >= 1.2
    window = sorted(stamps)
    for i in range(len(window)):  # never more than burst + rate × 1 s in any second
        in_second = sum(1 for t in window[i:] if t - window[i] < 1.0)
        assert in_second <= 5 + 20 + 1


def test_local_quota_paces_one_process() -> None:
    waits: list[float] = []
    q = LocalQuota(rate=10, burst=2, sleep=waits.append)
    for _ in range(5):
        q.acquire()
    assert waits[0] > 0.05 and len(waits) == 3  # 2 free, then 1/10 s apart


def test_unreachable_redis_falls_back_to_a_local_quota() -> None:
    assert isinstance(make_quota("redis://127.0.0.1:1/0", "x", 1, 1), LocalQuota)
