"""kombu's Redis transport, made to survive the broker going away mid-task.

With celery 5.7 / kombu 5.7 / redis-py 8, a worker that loses Redis while a task runs exits
with ``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``:
on the connection error Celery first *collects* the connection (which drops the transport's
``client``), then closes it; closing restores the unacknowledged messages, which needs a
Redis client, whose parameters are read from the dropped ``client`` — ``None``. The
AttributeError is not a connection error, so Celery's ``ignore_errors`` lets it through and the
worker dies. Here each channel keeps the connection's parameters from when it opened, so the
restore meets the *connection* error it expects (Redis is down), Celery reconnects, and the
unacknowledged message is restored from Redis's unacked set (the tasks are idempotent).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened_with = self.connection.client  # the kombu Connection, before any collect

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # collected after a connection error
            self.connection.client = self._opened_with
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel
