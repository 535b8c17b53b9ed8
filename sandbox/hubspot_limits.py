"""HubSpot's request limits: a rolling window (burst, search) and a daily counter."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class RollingWindow:
    """At most ``limit`` requests in any ``window`` seconds (rolling, not fixed buckets)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._hits: deque[float] = deque()
        self.limit, self.window = self._validate(limit, window)

    @staticmethod
    def _validate(limit: int, window: float) -> tuple[int, float]:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        return int(limit), float(window)

    def configure(self, limit: int | None = None, window: float | None = None) -> None:
        """Change the limit and/or window; the window starts empty again."""
        with self._lock:
            self.limit, self.window = self._validate(
                self.limit if limit is None else limit, self.window if window is None else window
            )
            self._hits.clear()

    def _expire(self, now: float) -> None:
        while self._hits and now - self._hits[0] >= self.window:
            self._hits.popleft()

    def take(self) -> int:
        """0 when the request is admitted (and counted), else whole seconds to wait (>= 1)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._hits) < self.limit:
                self._hits.append(now)
                return 0
            return max(1, math.ceil(self.window - (now - self._hits[0])))

    def remaining(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return max(0, self.limit - len(self._hits))


class DailyCounter:
    """Requests counted against the daily limit (reset by hand: the emulator has no midnight)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("daily limit must be >= 1")
        self._lock = threading.Lock()
        self.limit = int(limit)
        self.used = 0

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def remaining(self) -> int:
        with self._lock:
            return max(0, self.limit - self.used)

    def reset(self, limit: int | None = None) -> None:
        with self._lock:
            if limit is not None:
                if limit < 1:
                    raise ValueError("daily limit must be >= 1")
                self.limit = int(limit)
            self.used = 0
