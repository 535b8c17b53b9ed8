"""The run lock holds only while its holder lives: renewed by a heartbeat during a long run,
gone within one TTL after the holder is killed with SIGKILL (no hour-long stall)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import redis

from healthscore.core.locks import single_flight

HOLDER = """
import sys, time
from healthscore.core.locks import redis_client, single_flight
with single_flight(redis_client(sys.argv[1]), sys.argv[2], float(sys.argv[3])) as mine:
    print("held" if mine else "skipped", flush=True)
    time.sleep(600)
"""


def start_holder(url: str, name: str, ttl: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, name, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def try_lock(client: redis.Redis, name: str, ttl: float) -> bool:
    with single_flight(client, name, ttl) as mine:
        return mine


def test_a_living_holder_keeps_the_lock_past_its_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name = f"test-{uuid.uuid4().hex}"
    holder = start_holder(redis_url, name, ttl=1.0)
    try:
        time.sleep(3.0)  # three TTLs: only the heartbeat keeps it
        assert not try_lock(client, name, 1.0)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_the_lock_within_one_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name = f"test-{uuid.uuid4().hex}"
    holder = start_holder(redis_url, name, ttl=2.0)
    assert not try_lock(client, name, 2.0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()
    while not try_lock(client, name, 2.0):
        assert time.monotonic() - killed < 2.0 + 1.0, "the lock outlived its dead holder"
        time.sleep(0.1)


def test_the_lock_is_released_when_the_run_ends(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name = f"test-{uuid.uuid4().hex}"
    with single_flight(client, name, 30.0) as mine:
        assert mine and not try_lock(client, name, 30.0)
    assert try_lock(client, name, 30.0)
