"""Vendor request quotas shared by every worker through Redis.

A token bucket per vendor lives in one Redis hash, updated atomically by a Lua script with
Redis's own clock, so four workers together stay under the vendor's limit instead of each
spending it (and each collecting 429s). A caller *reserves* a slot: when the bucket is empty
the script still takes the token and answers how long to wait, which queues callers fairly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(held[1]) or burst
local ts = tonumber(held[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class SharedQuota:
    """``rate`` requests per second with bursts up to ``burst``, across all processes."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        rate: float,
        burst: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = f"healthscore:quota:{name}"
        self.rate, self.burst = rate, burst
        self._script = client.register_script(_RESERVE)
        self._sleep = sleep

    def acquire(self) -> float:
        """Wait for a slot; return how long that took (seconds)."""
        wait = float(self._script(keys=[self.key], args=[self.rate, self.burst]))
        if wait > 0:
            self._sleep(wait)
        return wait


class LocalQuota:
    """The same bucket inside one process (``healthscore run`` without Redis)."""

    def __init__(
        self, rate: float, burst: int, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._ts = float(burst), time.monotonic()
        self._lock = threading.Lock()
        self._sleep = sleep

    def acquire(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._ts) * self.rate) - 1
            self._ts = now
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


def make_quota(
    redis_url: str | None, name: str, rate: float, burst: int
) -> SharedQuota | LocalQuota:
    """A Redis-shared quota when Redis answers, else a per-process one (logged)."""
    if redis_url:
        try:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
            client.ping()
            return SharedQuota(client, name, rate, burst)
        except redis.exceptions.RedisError as exc:
            log.warning(
                "%s quota: Redis unreachable (%s); limiting this process only",
                name,
                exc.__class__.__name__,
            )
    return LocalQuota(rate, burst)
