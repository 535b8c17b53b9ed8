"""The one retry loop every vendor call goes through; connectors never sleep themselves.

Only ``RetriableError`` is retried, with capped exponential backoff and jitter; a vendor's
``retry_after`` wins over the backoff. A wait longer than ``max_wait`` is not slept in-process:
the error goes up so the Celery task (or the next cycle) retries later, without pinning a
worker slot. The vendors' rate-limit signals are read here too (``Retry-After`` in seconds or
as an HTTP date, an epoch-seconds reset header), so every client honours them the same way.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

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


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    retry_on: tuple[type[RetriableError], ...] = (RetriableError,),
) -> T:
    """Call ``fn``; on ``RetriableError`` wait and try again, up to ``policy.attempts`` times.

    ``retry_on`` narrows what is retried here: a write the vendor may have applied (a 5xx on
    a mail send or a chat post) retries only the errors proving it was not (a rate limit, a
    connection that never opened); the others go up at once for the caller to settle.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except RetriableError as exc:
            too_long = exc.retry_after is not None and exc.retry_after > policy.max_wait
            if attempt >= policy.attempts or too_long or not isinstance(exc, retry_on):
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


def header(headers: Mapping[str, Any] | None, name: str) -> Any:
    """A header's value whatever the mapping's case handling (httpx, urllib3, plain dicts)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return value


def retry_after(value: Any, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for: delta-seconds or an HTTP date (RFC 9110
    §10.2.3); None when absent or unreadable. slack-sdk hands header values as lists."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            at = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        seconds = at.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def until_reset(value: Any, *, now: float) -> float | None:
    """Seconds until an epoch-seconds reset header (e.g. ``X-RateLimit-Reset``)."""
    try:
        reset = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return max(0.0, reset - now) if math.isfinite(reset) else None
