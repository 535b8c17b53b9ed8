"""A Redis lock so a cycle still running when the next one is due does not run twice at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from healthscore.core.errors import ConfigError

log = logging.getLogger(__name__)


def redis_client(url: str) -> redis.Redis:
    """A client for ``url`` that has answered a PING; a clear error names REDIS_URL if not."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL: not a Redis URL ({exc})") from None
    except redis.exceptions.ConnectionError as exc:
        raise ConfigError(f"REDIS_URL: cannot connect to Redis at {_safe(url)} ({exc})") from None
    return client


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@contextmanager
def single_flight(client: redis.Redis, name: str, ttl_seconds: int) -> Iterator[bool]:
    """Yield True if we hold the lock ``name``; False if another run holds it."""
    lock = client.lock(f"healthscore:lock:{name}", timeout=ttl_seconds, blocking=False)
    acquired = lock.acquire(blocking=False)
    if not acquired:
        log.warning("%s is still running elsewhere; this run is skipped", name)
    try:
        yield bool(acquired)
    finally:
        if acquired:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("lock %s expired before the run ended (ttl %ss)", name, ttl_seconds)
