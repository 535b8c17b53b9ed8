"""The one retry loop every vendor call goes through; connectors never sleep themselves.

Only ``RetriableError`` is retried, with capped exponential backoff and jitter; a vendor's
``retry_after`` wins over the backoff. A wait longer than ``max_wait`` is not slept in-process:
the error goes up so the Celery task (or the next cycle) retries later, without pinning a
worker slot.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from healthscore.core.errors import RetriableError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 0.5
    factor: float = 2.0
    max_wait: float = 30.0
    jitter: float = 0.25
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + random.uniform(0, self.jitter)
        backoff = min(self.max_wait, self.base * self.factor ** (attempt - 1))
        return backoff * (1 + random.uniform(-self.jitter, self.jitter))


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, *, what: str) -> T:
    """Call ``fn``; on ``RetriableError`` wait and try again, up to ``policy.attempts`` times."""
    attempt = 1
    while True:
        try:
            return fn()
        except RetriableError as exc:
            too_long = exc.retry_after is not None and exc.retry_after > policy.max_wait
            if attempt >= policy.attempts or too_long:
                raise
            wait = policy.wait_for(attempt, exc.retry_after)
            log.warning(
                "%s failed (%s); retry %d/%d in %.1fs",
                what,
                exc,
                attempt,
                policy.attempts - 1,
                wait,
            )
            policy.sleep(wait)
            attempt += 1
