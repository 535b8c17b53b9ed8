"""Zendesk's per-minute limits as token buckets, with a ``limit_scale`` that compresses time.

A limit of N requests per minute is a bucket of N tokens refilled at N per minute. With
``limit_scale = s`` the minute lasts 60/s seconds (N tokens, refilled at N·s per minute), so a
test or a benchmark runs s times faster while every ratio — requests per page, waits per
request — stays what it is against the real vendor.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class MinuteBucket:
    """``per_minute`` requests per (scaled) minute, bursts up to ``per_minute``."""

    def __init__(
        self, per_minute: int, limit_scale: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1 or limit_scale <= 0:
            raise ValueError("per_minute must be >= 1 and limit_scale > 0")
        self.limit = int(per_minute)
        self.rate = per_minute * limit_scale / 60.0  # tokens per second
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(self.limit)
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.limit), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def take(self) -> int:
        """0 when admitted (a token taken), else the whole seconds to wait (>= 1)."""
        with self._lock:
            tokens = self._refill()
            if tokens >= 1.0:
                self._tokens = tokens - 1.0
                return 0
            return max(1, math.ceil((1.0 - tokens) / self.rate))

    def remaining(self) -> int:
        with self._lock:
            return int(self._refill())

    def reset_seconds(self) -> int:
        """Seconds until the bucket is full again."""
        with self._lock:
            return math.ceil((self.limit - self._refill()) / self.rate)
