"""The HTTP server of ``healthscore webhook serve``: gunicorn, gthread workers, hard limits.

gunicorn (a maintained WSGI server) runs a master process that binds the port and restarts
workers; each worker serves ``threads`` requests at once and keeps at most ``max_connections``
sockets open (kept-alive ones included), so memory and threads are bounded whatever the
clients do. On top of gunicorn's own limits (request line, header count and size, keep-alive,
a worker whose event loop stalls ``timeout`` seconds is restarted):

- every request has ``read_timeout`` seconds, from the moment a thread takes it, for its head
  and body to arrive (``WebhookWorker``): gthread reads a request head with no timeout, so a
  client sending a byte now and then would otherwise hold a thread for good;
- the app checks the signature headers and the declared length before it reads any body, reads
  it in bounded chunks and parses JSON of bounded depth (the vendor's webhook app).

Each worker builds its own receiver (its own store connections and recompute thread) after the
fork; when a worker stops — SIGTERM to the master, or a restart — it finishes its requests and
its receiver runs the last recompute (``worker_exit``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker


@dataclass(frozen=True)
class Limits:
    """What one ``healthscore webhook serve`` may take on; the defaults suit an event webhook (a
    few concurrent POSTs of well under 1 MB each)."""

    workers: int = 2  # processes
    threads: int = 8  # requests served at once per worker
    max_connections: int = 64  # open sockets per worker
    read_timeout: float = 30.0  # seconds for a request's head and body to arrive
    # 0: one request per connection, so the unread body of a rejected request is never
    # drained (gunicorn would read up to 64 KiB of it, for up to 5 s, to keep the connection)
    keepalive: int = 0
    timeout: int = 30  # a worker whose event loop stalls this long is killed and replaced
    graceful_timeout: int = 30  # on SIGTERM: seconds to finish requests and the last recompute
    limit_request_line: int = 1024  # bytes; the paths are short (/webhooks/<vendor>)
    limit_request_fields: int = 32  # headers
    limit_request_field_size: int = 8190  # bytes per header (gunicorn's default)


LINGER = 1.0  # seconds a closing connection waits for the client to stop sending
LINGER_BYTES = 64 * 1024  # and at most this much of what it still sends is read


class WebhookWorker(ThreadWorker):
    """gunicorn's gthread worker with a deadline for each request's head and body, and its
    closing done by the request's thread.

    A thread that takes a connection registers it with ``read_timeout``; a watchdog thread
    shuts the read side of any connection still registered past its deadline, which ends a
    blocked read at once (the request fails, the connection is closed). What the app does
    after it read the body is not cut short: its answer is still written.

    gthread closes a finished connection in its event loop, lingering up to 2 s for a client
    that still sends (a body the app refused to read): twenty such clients would stall the
    loop — accepting, every other close — for 40 s. Here the request's thread lingers (``LINGER``)
    and then shuts the read side, so the event loop's close never waits.
    """

    read_timeout = Limits.read_timeout

    def init_process(self) -> None:
        self._reading: dict[int, tuple[float, Any]] = {}
        self._reading_lock = threading.Lock()
        threading.Thread(target=self._watch, name="webhook-read-deadline", daemon=True).start()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        key = id(conn)
        with self._reading_lock:
            self._reading[key] = (time.monotonic() + self.read_timeout, conn)
        try:
            keep = super().handle(conn)
        finally:
            with self._reading_lock:
                cut = self._reading.pop(key, None) is None
        if cut and keep is True:
            keep = False  # its read side is shut: no further request on it
        if keep is False:
            _linger(conn.sock)
        return keep

    def _watch(self) -> None:
        while True:
            time.sleep(min(0.5, self.read_timeout / 4))
            now = time.monotonic()
            with self._reading_lock:
                late = [k for k, (deadline, _) in self._reading.items() if deadline <= now]
                conns = [self._reading.pop(k)[1] for k in late]
                for conn in conns:
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(socket.SHUT_RD)
            if conns:
                self.log.warning(
                    "webhook: %d connection(s) did not send their request within %.0fs; closed",
                    len(conns),
                    self.read_timeout,
                )


class WebhookServer(BaseApplication):
    """``make_app()`` (called in each worker, after the fork) served on ``host:port``.

    The app may have a ``close()``: it runs when its worker stops. ``on_ready(url)`` is
    called in the master once the port is bound (port 0: a free one)."""

    def __init__(
        self,
        make_app: Callable[[], Any],
        host: str,
        port: int,
        limits: Limits = Limits(),
        *,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.make_app, self.on_ready = make_app, on_ready
        worker = type("WebhookWorker", (WebhookWorker,), {"read_timeout": limits.read_timeout})
        self.options: dict[str, Any] = {
            "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
            "worker_class": worker,
            "workers": limits.workers,
            "threads": limits.threads,
            "worker_connections": limits.max_connections,
            "timeout": limits.timeout,
            "graceful_timeout": limits.graceful_timeout,
            "keepalive": limits.keepalive,
            "limit_request_line": limits.limit_request_line,
            "limit_request_fields": limits.limit_request_fields,
            "limit_request_field_size": limits.limit_request_field_size,
            "preload_app": False,  # each worker builds its own receiver after the fork
            "accesslog": None,
            "proc_name": "healthscore-webhook",
            "control_socket_disable": True,
            "when_ready": self._when_ready,
            "worker_exit": _worker_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.make_app()

    def _when_ready(self, arbiter: Any) -> None:
        if self.on_ready is None:
            return
        for listener in arbiter.LISTENERS:
            host, port = listener.getsockname()[:2]
            self.on_ready(f"http://{host}:{port}")


def _linger(sock: Any) -> None:
    """Half-close ``sock`` and read what the client still sends (``LINGER``, ``LINGER_BYTES``)
    so that it gets the answer rather than a reset; then shut the read side: a read of it
    never waits again (what was already sent can still be read)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline, drained = time.monotonic() + LINGER, 0
        while drained < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(16384)
            if not data:
                break
            drained += len(data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _worker_exit(_arbiter: Any, worker: Any) -> None:
    """A stopping worker's receiver runs its last recompute."""
    close = getattr(getattr(worker, "wsgi", None), "close", None)
    if close is not None:
        close()
