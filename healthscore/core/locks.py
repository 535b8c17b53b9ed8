"""A Redis lock so a cycle still running when the next one is due does not run twice at once.

The lock lives only while its holder does: a short TTL that a heartbeat thread renews while the
run goes on. A holder killed with ``kill -9`` stops renewing, so the lock is gone within one
TTL and the next scheduled run goes ahead (a fixed one-hour TTL held scoring up for an hour).
"""

from __future__ import annotations

import logging
import threading
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


LOCK_TTL = 60.0  # seconds a lock outlives a holder that stopped renewing it


@contextmanager
def single_flight(client: redis.Redis, name: str, ttl_seconds: float = LOCK_TTL) -> Iterator[bool]:
    """Yield True if we hold the lock ``name`` (renewed every third of its TTL until the block
    ends); False if another live run holds it."""
    lock = client.lock(
        f"healthscore:lock:{name}", timeout=ttl_seconds, blocking=False, thread_local=False
    )
    acquired = lock.acquire(blocking=False)
    if not acquired:
        log.warning("%s is still running elsewhere; this run is skipped", name)
        yield False
        return
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_renew, args=(lock, name, ttl_seconds, stop), name=f"lock-{name}", daemon=True
    )
    heartbeat.start()
    try:
        yield True
    finally:
        stop.set()
        heartbeat.join()
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("lock %s was lost before the run ended (ttl %ss)", name, ttl_seconds)
        except redis.exceptions.ConnectionError as exc:  # it expires by itself
            log.warning("lock %s not released: Redis unreachable (%s)", name, exc)


def _renew(lock: redis.lock.Lock, name: str, ttl: float, stop: threading.Event) -> None:
    """Reset the lock's TTL every ttl/3 seconds until ``stop``; a failed renewal is logged
    (Redis away for a moment) and tried again at the next beat."""
    while not stop.wait(ttl / 3):
        try:
            lock.reacquire()
        except redis.exceptions.LockNotOwnedError:
            log.warning("lock %s expired while its run was still going (ttl %ss)", name, ttl)
            return
        except redis.exceptions.RedisError as exc:
            log.warning("lock %s not renewed: %s", name, exc)
