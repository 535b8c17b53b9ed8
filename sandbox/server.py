"""EmulatorServer: a threaded stdlib HTTP(S) server with routing, a request log and faults.

Vendor emulators subclass :class:`EmulatorServer`, declare handlers with :func:`route` and
override the hooks (``before_route``, ``finalize``, ``fault_response``, ``not_found``,
``method_not_allowed``, ``internal_error``) to produce their vendor's wire format.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import unquote, urlsplit

from sandbox.faults import Fault, FaultPlan
from sandbox.tls import SandboxCA
from sandbox.wire import LoggedRequest, Request, Response, header_lookup, parse_form

__all__ = ["EmulatorServer", "LoggedRequest", "Request", "Response", "route"]

Handler = Callable[[Any, Request], Response]
H = TypeVar("H", bound=Handler)

_ROUTES_ATTR = "__sandbox_routes__"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_MAX_BODY = 64 * 1024 * 1024


def route(methods: str | Iterable[str], pattern: str) -> Callable[[H], H]:
    """Register the decorated method for ``methods`` and a path regex (matched in full)."""
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    compiled = re.compile(pattern)

    def decorate(func: H) -> H:
        routes: list[tuple[tuple[str, ...], re.Pattern[str]]] = getattr(func, _ROUTES_ATTR, [])
        routes.append((tuple(m.upper() for m in names), compiled))
        setattr(func, _ROUTES_ATTR, routes)
        return func

    return decorate


@dataclass(frozen=True)
class _Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    attr: str


class EmulatorServer:
    """Base class: start/stop, optional TLS, routing, request log and fault hook."""

    _routes: ClassVar[list[_Route]] = []
    #: form/JSON body keys whose values are masked in the request log
    redact_fields: ClassVar[frozenset[str]] = frozenset(
        {"token", "client_secret", "assertion", "password", "refresh_token"}
    )
    #: a repeated query key (``a=1&a=2``) reaches handlers as its values joined by this;
    #: None keeps only the first value
    query_join: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        seen: set[str] = set()
        routes: list[_Route] = []
        for klass in cls.__mro__:
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                for methods, pattern in getattr(value, _ROUTES_ATTR, []):
                    routes.append(_Route(methods, pattern, attr))
        cls._routes = routes

    def __init__(self, *, tls: SandboxCA | None = None) -> None:
        self.tls = tls
        self.faults = FaultPlan()
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        ctx = self.tls.server_ssl_context() if self.tls is not None else None
        httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler, emulator=self, ssl_context=ctx)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{httpd.server_address[1]}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and any open connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``scheme://127.0.0.1:PORT`` (no trailing slash)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin

    # ------------------------------------------------------------------ request log
    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally filtered by method and a regex searched in the path."""
        pattern = re.compile(path) if path is not None else None
        with self._log_lock:
            entries = list(self._log)
        return [
            e
            for e in entries
            if (method is None or e.method == method.upper())
            and (pattern is None or pattern.search(e.path))
        ]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, req: Request, status: int, fault: str | None, at: float) -> None:
        entry = LoggedRequest(
            method=req.method,
            path=req.path,
            query=dict(req.query),
            headers={k: v for k, v in req.headers.items() if k.lower() not in _SECRET_HEADERS},
            body=self._loggable_body(req),
            status=status,
            fault=fault,
            at=at,
        )
        with self._log_lock:
            self._log.append(entry)

    def _loggable_body(self, req: Request) -> Any:
        if not req.body:
            return None
        try:
            parsed: Any = json.loads(req.body)
        except ValueError:
            text = req.body.decode("utf-8", errors="replace")
            looks_like_form = req.content_type == "application/x-www-form-urlencoded"
            if not looks_like_form and not re.fullmatch(r"[\w.%+~-]+=[^\s]*", text):
                return text
            parsed = parse_form(text)
        if isinstance(parsed, dict):
            return {k: "[redacted]" if k in self.redact_fields else v for k, v in parsed.items()}
        return parsed

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        """Run one request through faults, hooks and routing; returns (response, fault kind)."""
        fault = self.faults.pick(req.method, req.path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        try:
            if fault is not None and fault.kind not in ("slow", "timeout"):
                response = self.fault_response(fault, req)
            else:
                response = self.before_route(req) or self._route(req)
            response = self.finalize(req, response)
        except Exception as exc:
            response = self.internal_error(req, exc)
        return response, fault.kind if fault is not None else None

    def _route(self, req: Request) -> Response:
        allowed: list[str] = []
        for entry in self._routes:
            match = entry.pattern.fullmatch(req.path)
            if match is None:
                continue
            if req.method not in entry.methods:
                allowed.extend(entry.methods)
                continue
            handler: Callable[[Request], Response] = getattr(self, entry.attr)
            return handler(replace(req, path_params=match.groupdict()))
        if allowed:
            return self.method_not_allowed(req, sorted(set(allowed)))
        return self.not_found(req)

    # ------------------------------------------------------------------ vendor hooks
    def before_route(self, req: Request) -> Response | None:
        """Return a response to short-circuit routing (e.g. auth failure); ``None`` to go on."""
        return None

    def finalize(self, req: Request, response: Response) -> Response:
        """Last chance to add headers to every response (faults included)."""
        return response

    def fault_response(self, fault: Fault, req: Request) -> Response:
        """The vendor's wire form of an injected fault (``slow`` and ``timeout`` never reach
        here)."""
        return Response(503, "injected fault: " + fault.kind)

    def not_found(self, req: Request) -> Response:
        return Response(404, "not found")

    def method_not_allowed(self, req: Request, allowed: list[str]) -> Response:
        return Response(405, "method not allowed", {"Allow": ", ".join(allowed)})

    def internal_error(self, req: Request, exc: Exception) -> Response:
        """Called with any exception a handler raised; the default prints it and answers 500."""
        self.report_exception(exc)
        return Response(500, f"internal emulator error: {exc!r}")

    @staticmethod
    def report_exception(exc: BaseException) -> None:
        """Print an unexpected handler exception so emulator bugs show up in test output."""
        traceback.print_exception(exc)


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that wraps accepted sockets in TLS and tracks open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        emulator: EmulatorServer,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.emulator = emulator
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_context is not None:
            # The handshake runs in the connection's own thread (see _RequestHandler.handle)
            # so a slow or plain-HTTP client cannot stall the accept loop.
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections and failed TLS handshakes are normal for a test server.
        return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    # headers and body go out as two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms a response), which no real vendor API adds
    disable_nagle_algorithm = True
    server: _HTTPServer

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (OSError, ValueError):
                self.close_connection = True
                return
        with contextlib.suppress(OSError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        at = time.time()
        body = self._read_body()
        parts = urlsplit(self.path)
        emulator = self.server.emulator
        req = Request(
            method=self.command.upper(),
            path=unquote(parts.path),
            query=parse_form(parts.query, emulator.query_join),
            headers=dict(self.headers.items()),
            body=body,
        )
        response, fault = emulator.dispatch(req)
        # Log before answering so a client that got its response always finds it logged.
        emulator._record(req, response.status, fault, at)
        if fault == "timeout":  # served, but the answer is lost (see sandbox.faults)
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        payload, default_type = response.encode()
        if response.status in (204, 304) or self.command == "HEAD":
            payload = b"" if response.status in (204, 304) else payload
        self.send_response(response.status)
        has_type = header_lookup(response.headers, "Content-Type") is not None
        if default_type is not None and not has_type:
            self.send_header("Content-Type", default_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        if header_lookup(self.headers, "Connection") == "close":
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve
