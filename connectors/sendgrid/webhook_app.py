"""The SendGrid event webhook receiver: a small WSGI app, served by ``healthscore webhook
serve`` (stdlib ``wsgiref``, one thread per request) or by any WSGI server
(``connectors.sendgrid.webhook_app:make_app()``).

``POST /webhooks/sendgrid`` verifies the signature (ECDSA P-256 over timestamp + body, key
from ``SENDGRID_WEBHOOK_PUBLIC_KEY``) and the timestamp's age, then keeps each event once
(``sg_event_id``) and recomputes the accounts that got new events. Answers:

- 200 ``{"received", "new", "duplicates", "skipped", …}`` once the events are stored (their
  accounts are recomputed a few seconds later, in the background) — also when some events were
  malformed (they are logged with their id and skipped: a retry would not fix them);
- 403 bad, missing or stale signature; 400 a body that is not a JSON array; 413 too large;
- 503 when the store fails, so SendGrid delivers the batch again later (nothing is half-kept:
  the events of a batch are inserted in one transaction).

``GET /healthz`` answers 200 for load balancers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy.exc import SQLAlchemyError

from connectors.email.sync import RecipientMatcher, recompute
from connectors.sendgrid import SignatureError, load_public_key, verify
from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.sync import SOURCE as SENDGRID
from connectors.sendgrid.sync import apply_sendgrid_events
from healthscore.core.errors import ConfigError
from store import Store

log = logging.getLogger(__name__)
PATH = "/webhooks/sendgrid"
MAX_BODY = 16 * 1024 * 1024
MATCHER_TTL = 60.0  # seconds an identity index is reused across batches

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


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
    ) -> None:
        if not public_key:
            raise ConfigError(
                "missing environment variable: SENDGRID_WEBHOOK_PUBLIC_KEY (the "
                "verification key of SendGrid's Signed Event Webhook)"
            )
        self.key = load_public_key(public_key)
        self.store, self.source, self.clock = store, source, clock
        self._matcher: tuple[float, RecipientMatcher] | None = None
        self._lock = threading.Lock()
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
        status, body = self.handle(environ)
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
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return "400 Bad Request", {"error": "bad Content-Length"}
        if length > MAX_BODY:
            return "413 Payload Too Large", {"error": f"body over {MAX_BODY} bytes"}
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        try:
            verify(
                self.key,
                headers,
                body,
                now=self.clock(),
                max_age=self.source.webhook_max_age.total_seconds(),
            )
        except SignatureError as exc:
            log.warning(
                "SendGrid webhook: rejected a request from %s: %s",
                environ.get("REMOTE_ADDR", "?"),
                exc,
            )
            return "403 Forbidden", {"error": f"signature rejected: {exc}"}
        try:
            events = json.loads(body)
        except ValueError:
            return "400 Bad Request", {"error": "body is not JSON"}
        if not isinstance(events, list):
            return "400 Bad Request", {"error": "body is not a JSON array of events"}
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


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook %s", format % args)


def make_server_for(app: SendGridWebhookApp, host: str, port: int) -> WSGIServer:
    """A threaded stdlib WSGI server for ``app`` (port 0: any free port)."""
    return make_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
