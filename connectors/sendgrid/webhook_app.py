"""The SendGrid event webhook receiver: a WSGI app. ``healthscore webhook serve`` serves it
with gunicorn (``healthscore.cli.webhook_server``: bounded threads, read deadlines, header
limits); ``make_server_for`` is a small bounded stdlib server for tests and the demo.

``POST /webhooks/sendgrid`` is checked in this order, each step before the next is done:

1. method and path (404, 405);
2. ``Content-Length``: required (411; chunked bodies are refused), ASCII digits (400), at most
   ``max_body`` (413) — nothing of the body has been read yet;
3. the signature headers: the timestamp ASCII digits, at most 12 (400), within
   ``webhook_max_age`` of now (403); the signature present and base64 of at most 256
   characters (403);
4. the body, read in chunks of 64 KiB within ``read_timeout`` (408; a body that ends early:
   400), hashed as it arrives and kept in memory up to 1 MiB (past that in a temporary file)
   until its signature is checked — an unsigned body is never held whole in memory;
5. the signature: ECDSA P-256 over timestamp + body, key from ``SENDGRID_WEBHOOK_PUBLIC_KEY``
   (403);
6. the JSON: parsed by orjson (no recursion in Python), an array nested at most ``MAX_DEPTH``
   levels (400);
7. each event kept once (``sg_event_id``); the accounts that got new events are recomputed.

Answers are short JSON: 200 ``{"received", "new", "duplicates", "skipped", …}`` once the events
are stored (their accounts are recomputed a few seconds later, in the background) — also when
some events were malformed (they are logged with their id and skipped: a retry would not fix
them); 503 when the store fails, so SendGrid delivers the batch again later (nothing is
half-kept: the events of a batch are inserted in one transaction); 500 ``{"error": "internal
error"}`` for anything unexpected, the traceback only in the log. Header values and keys are
never logged nor echoed.

``GET /healthz`` answers 200 for load balancers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import IO, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from sqlalchemy.exc import SQLAlchemyError

from connectors.email.sync import RecipientMatcher, recompute
from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.sync import SOURCE as SENDGRID
from connectors.sendgrid.sync import apply_sendgrid_events
from connectors.sendgrid.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MalformedHeaderError,
    SignatureError,
    SignedDigest,
    load_public_key,
    signed_headers,
)
from healthscore.core.errors import ConfigError
from store import Store

log = logging.getLogger(__name__)
PATH = "/webhooks/sendgrid"
MAX_BODY = 16 * 1024 * 1024  # SendGrid posts batches of well under 1 MB
MAX_DEPTH = 32  # events are objects in an array; their values nest a level or two more
READ_TIMEOUT = 30.0  # seconds for a whole body to arrive
IDLE_TIMEOUT = 10.0  # seconds one socket read may wait
CHUNK = 64 * 1024
SPOOL = 1024 * 1024  # bytes of an unverified body kept in memory; past that, a temporary file
MATCHER_TTL = 60.0  # seconds an identity index is reused across batches
MAX_THREADS = 16  # make_server_for: requests served at once (more are refused)
REJECTIONS_LOGGED = 20  # a minute: past that they are counted, then logged as one line

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
# the two signature headers as WSGI names them
_ENVIRON_HEADERS = {
    "HTTP_" + name.upper().replace("-", "_"): name for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER)
}


class Rejected(Exception):
    """A request answered with a 4xx (its ``status``) and a short ``error``."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class SendGridWebhookApp:
    """WSGI callable; thread-safe (each batch is one store transaction).

    Accounts that got new events are recomputed ``recompute_every`` seconds later by a
    background thread, all of a period's batches together (0: before answering), so SendGrid
    gets its 2xx as soon as the events are stored. Should the process stop first, the next
    ``sync sendgrid`` recomputes them (it looks at what arrived since its cursor).
    """

    def __init__(
        self,
        store: Store,
        public_key: str | None,
        source: SendGridSource,
        *,
        clock: Callable[[], float] = time.time,
        recompute_every: float = 5.0,
        max_body: int = MAX_BODY,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if not public_key:
            raise ConfigError(
                "missing environment variable: SENDGRID_WEBHOOK_PUBLIC_KEY (the "
                "verification key of SendGrid's Signed Event Webhook)"
            )
        self.key = load_public_key(public_key)
        self.store, self.source, self.clock = store, source, clock
        self.max_body, self.read_timeout = max_body, read_timeout
        self._matcher: tuple[float, RecipientMatcher] | None = None
        self._lock = threading.Lock()
        self._rejections = RateLimitedLog(REJECTIONS_LOGGED)
        self.recompute_every = recompute_every
        self._pending: set[str] = set()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        if recompute_every > 0:
            self._worker = threading.Thread(
                target=self._recompute_loop, daemon=True, name="sendgrid-webhook-recompute"
            )
            self._worker.start()

    def _recompute_loop(self) -> None:
        while not self._stop.wait(self.recompute_every):
            self.flush()

    def flush(self) -> int:
        """Recompute the accounts waiting for it now; how many."""
        with self._lock:
            accounts, self._pending = self._pending, set()
        if not accounts:
            return 0
        try:
            done, _ = recompute(
                self.store,
                SENDGRID,
                accounts,
                datetime.fromtimestamp(self.clock(), UTC),
                self.source.metric_prefix,
                self.source.categories,
            )
        except SQLAlchemyError as exc:
            log.error(
                "SendGrid webhook: recomputing %d accounts failed (%s); retrying later",
                len(accounts),
                exc.__class__.__name__,
            )
            with self._lock:
                self._pending |= accounts
            return 0
        return done

    def close(self) -> None:
        """Stop the background thread after a last recompute."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(30)
        self.flush()

    def matcher(self) -> RecipientMatcher:
        with self._lock:
            now = time.monotonic()
            if self._matcher is None or now - self._matcher[0] > MATCHER_TTL:
                self._matcher = (now, RecipientMatcher(self.store))
            return self._matcher[1]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body = self.handle(environ)
        except Exception:
            # the traceback goes to the log only; the answer says nothing about the internals
            log.exception(
                "SendGrid webhook: unexpected error on %s %s",
                str(environ.get("REQUEST_METHOD", "?"))[:16],
                str(environ.get("PATH_INFO", "?"))[:64],
            )
            status, body = "500 Internal Server Error", {"error": "internal error"}
        payload = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def handle(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            return "200 OK", {"ok": True}
        if path != PATH:
            return "404 Not Found", {"error": "not found"}
        if method != "POST":
            return "405 Method Not Allowed", {"error": "POST only"}
        try:
            length = self._content_length(environ)
            digest = self._signature(environ)
            with self._read_body(environ, length, digest) as spool:
                self._verify(environ, digest)
                body = spool.getvalue()
            events = parse_events(body)
        except Rejected as exc:
            return exc.status, {"error": exc.error}
        try:
            result = apply_sendgrid_events(
                self.store,
                events,
                self.matcher(),
                now=datetime.fromtimestamp(self.clock(), UTC),
                prefix=self.source.metric_prefix,
                categories=self.source.categories,
                recompute_now=self.recompute_every <= 0,
            )
        except SQLAlchemyError as exc:
            log.error(
                "SendGrid webhook: store failed (%s); SendGrid will redeliver",
                exc.__class__.__name__,
            )
            return "503 Service Unavailable", {"error": "store unavailable, retry later"}
        if result.touched and self.recompute_every > 0:
            with self._lock:
                self._pending |= result.touched
        log.info(
            "SendGrid webhook: %d events, %d new, %d duplicates, %d skipped",
            result.received,
            result.new,
            result.duplicates,
            result.skipped,
        )
        return "200 OK", result.as_dict()

    # -------------------------------------------------------------- before the body is read
    def _content_length(self, environ: dict[str, Any]) -> int:
        raw = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not raw:
            raise Rejected("411 Length Required", "Content-Length required")
        if not (raw.isascii() and raw.isdigit()):
            raise Rejected("400 Bad Request", "bad Content-Length")
        if len(raw) > 12 or int(raw) > self.max_body:
            raise Rejected("413 Content Too Large", f"body over {self.max_body} bytes")
        return int(raw)

    def _signature(self, environ: dict[str, Any]) -> SignedDigest:
        headers = {
            name: str(environ[key]) for key, name in _ENVIRON_HEADERS.items() if key in environ
        }
        try:
            signed = signed_headers(
                headers, now=self.clock(), max_age=self.source.webhook_max_age.total_seconds()
            )
        except MalformedHeaderError as exc:
            self._rejected(environ, exc)
            raise Rejected("400 Bad Request", str(exc)) from None
        except SignatureError as exc:
            self._rejected(environ, exc)
            raise Rejected("403 Forbidden", f"signature rejected: {exc}") from None
        return signed.digest()

    # ------------------------------------------------------------------------- the body
    def _read_body(self, environ: dict[str, Any], length: int, digest: SignedDigest) -> Spool:
        """The body, hashed into ``digest`` as it arrives; in memory up to ``SPOOL`` bytes.

        Each read waits at most ``IDLE_TIMEOUT`` (on gunicorn's socket, when there is one)
        and the whole body ``read_timeout``; the server's own deadline (gunicorn worker,
        ``webhook_server``) bounds it too.
        """
        stream = environ["wsgi.input"]
        sock = environ.get("gunicorn.socket")
        prior = _timeout_of(sock)
        deadline = time.monotonic() + self.read_timeout
        spool = Spool(SPOOL)
        left = length
        try:
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Rejected("408 Request Timeout", "body too slow")
                _set_timeout(sock, min(IDLE_TIMEOUT, remaining))
                try:
                    chunk = stream.read(min(CHUNK, left))
                except TimeoutError:
                    raise Rejected("408 Request Timeout", "body too slow") from None
                except OSError:
                    raise Rejected("400 Bad Request", "connection broken") from None
                if not chunk:
                    raise Rejected("400 Bad Request", "body shorter than its Content-Length")
                if len(chunk) > left:
                    raise Rejected("400 Bad Request", "body longer than its Content-Length")
                digest.update(chunk)
                spool.write(chunk)
                left -= len(chunk)
        except BaseException:
            spool.close()
            raise
        finally:
            _set_timeout(sock, prior)
        return spool

    def _verify(self, environ: dict[str, Any], digest: SignedDigest) -> None:
        try:
            digest.verify(self.key)
        except SignatureError as exc:
            self._rejected(environ, exc)
            raise Rejected("403 Forbidden", f"signature rejected: {exc}") from None

    def _rejected(self, environ: dict[str, Any], exc: Exception) -> None:
        self._rejections.warning(
            "SendGrid webhook: rejected a request from %s: %s",
            str(environ.get("REMOTE_ADDR", "?"))[:64],
            exc,
        )


class Spool:
    """Bytes kept in memory up to ``limit``, past that in a temporary file (written chunk by
    chunk: no copy of what is held)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        if self._file is None and self.size + len(chunk) > self.limit:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            for held in self._chunks:
                self._file.write(held)
            self._chunks = []
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._chunks.append(chunk)
        self.size += len(chunk)

    def getvalue(self) -> bytes:
        if self._file is None:
            return b"".join(self._chunks)
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RateLimitedLog:
    """Warnings, at most ``per_minute`` of them a minute (a flood of rejected requests must
    not flood the log); the rest are counted and reported as one line the next minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._lock = threading.Lock()
        self._since, self._logged, self._dropped = clock(), 0, 0

    def warning(self, message: str, *args: Any) -> None:
        with self._lock:
            now = self.clock()
            if now - self._since >= 60:
                if self._dropped:
                    log.warning(
                        "SendGrid webhook: %d more requests rejected in the last minute "
                        "(not logged one by one)",
                        self._dropped,
                    )
                self._since, self._logged, self._dropped = now, 0, 0
            if self._logged >= self.per_minute:
                self._dropped += 1
                return
            self._logged += 1
        log.warning(message, *args)


def parse_events(body: bytes) -> list[Any]:
    """A body's events: a JSON array nested at most ``MAX_DEPTH`` levels, else ``Rejected``.

    orjson parses without Python recursion (it stops by itself at 1024 levels); the depth is
    then measured with an explicit stack."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise Rejected("400 Bad Request", f"JSON nested over {MAX_DEPTH} levels") from None
        raise Rejected("400 Bad Request", "body is not JSON") from None
    if not isinstance(events, list):
        raise Rejected("400 Bad Request", "body is not a JSON array of events")
    if nesting_exceeds(events, MAX_DEPTH):
        raise Rejected("400 Bad Request", f"JSON nested over {MAX_DEPTH} levels")
    return events


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays/objects in ``value`` nest deeper than ``limit`` (``[]`` is 1 level)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _timeout_of(sock: Any) -> float | None:
    try:
        return sock.gettimeout() if sock is not None else None
    except OSError:
        return None


def _set_timeout(sock: Any, timeout: float | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):  # the client is gone; the next read says so
        sock.settimeout(timeout)


class _BoundedThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per request, at most ``MAX_THREADS`` at once: past that a connection is
    closed at once (the client retries); each socket read waits ``IDLE_TIMEOUT`` at most."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_THREADS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT  # each read of the request line, headers and body

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook %s", format % args)


def make_server_for(app: SendGridWebhookApp, host: str, port: int) -> WSGIServer:
    """A bounded threaded stdlib WSGI server for ``app`` (port 0: any free port), for tests
    and the demo; ``healthscore webhook serve`` runs gunicorn instead."""
    return make_server(
        host, port, app, server_class=_BoundedThreadingWSGIServer, handler_class=_QuietHandler
    )
