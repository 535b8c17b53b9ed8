"""Token buckets keyed by an arbitrary string (e.g. a Slack channel)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class KeyedTokenBucket:
    """One token bucket per key: ``rate`` tokens per second, at most ``burst`` stored.

    :meth:`take` returns 0 when a token was taken, else the whole number of seconds (>= 1)
    to wait before retrying -- the value Slack sends in ``Retry-After``.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self.rate, self.burst = self._validate(rate, burst)

    @staticmethod
    def _validate(rate: float, burst: int) -> tuple[float, int]:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        return float(rate), int(burst)

    def configure(self, rate: float, burst: int) -> None:
        """Change the limits; every bucket starts full again."""
        rate, burst = self._validate(rate, burst)
        with self._lock:
            self.rate, self.burst = rate, burst
            self._buckets.clear()

    def take(self, key: str) -> int:
        with self._lock:
            now = self._clock()
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
