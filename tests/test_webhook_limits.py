"""`healthscore webhook serve` under abuse: the real server (gunicorn, started by the CLI in a
subprocess on 127.0.0.1) against floods, slow clients and malformed requests.

Every loop here is bounded in time and in count; the server's memory is the VmRSS of its
master and workers (/proc/<pid>/status), measured before, during and after a flood.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.webhook import (
    MalformedHeaderError,
    SignatureError,
    signed_headers,
)
from connectors.sendgrid.webhook_app import (
    MAX_BODY,
    MAX_DEPTH,
    PATH,
    RateLimitedLog,
    SendGridWebhookApp,
    nesting_exceeds,
)
from sandbox import SendGridEmulator
from store import Store
from tests.conftest import ENV_VARS
from tests.email_helpers import add_accounts, signals

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

ACME = "001ACME000000001"
NOW = datetime.now(UTC).replace(microsecond=0)
READ_TIMEOUT = 4.0  # --read-timeout of the module's server
FLOOD_CONNECTIONS = 20
FLOOD_SECONDS = 8.0
DECLARED = 16_000_000  # under MAX_BODY: the declared length alone does not refuse them
RSS_GROWTH_MB = 50
# bodies that must be read (forged signatures): each of the 16 threads holds gunicorn's
# read-ahead (up to 1 MiB, and its copies) and up to 1 MiB of body; holding the bodies
# themselves would take 20 x 16 MB = 320 MB
READ_RSS_GROWTH_MB = 80
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"


# --------------------------------------------------------------------------- the server
@dataclass
class Server:
    """``healthscore webhook serve --port 0`` in a subprocess; its log in a file (a pipe
    would fill up under a flood and stall the server)."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, *args: str) -> Server:
        log_path = cwd / f"server-{time.monotonic_ns()}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "healthscore.cli", "webhook", "serve", "--port", "0", *args],
                env=env,
                cwd=cwd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = cls(proc, log_path)
        deadline = time.monotonic() + 60
        while not server.port:
            assert proc.poll() is None, server.log()
            assert time.monotonic() < deadline, f"server did not start:\n{server.log()}"
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", server.log())
            server.port = int(found.group(1)) if found else 0
            time.sleep(0.1)
        while True:  # the workers boot after the master has bound the port
            try:
                if httpx.get(server.url("/healthz"), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no worker answered:\n{server.log()}"
            time.sleep(0.1)
        return server

    def url(self, path: str = PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The master and its workers."""
        family = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                family.append(int(entry.name))
        return family

    def rss_mb(self) -> float:
        total_kb = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            total_kb += int(found.group(1)) if found else 0
        return total_kb / 1024

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def _site(root: Path, public_key: str) -> tuple[dict[str, str], str]:
    """A config with SendGrid on, a SQLite store holding ACME; the server's environment."""
    data = yaml.safe_load(
        resources.files("healthscore").joinpath("healthscore.example.yaml").read_text("utf-8")
    )
    data["sources"]["sendgrid"] = {"enabled": True}
    config = root / "healthscore.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    db_url = f"sqlite:///{root / 'hs.db'}"
    store = Store(db_url)
    add_accounts(store, {ACME: "acme.example.com"})
    store.close()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        HEALTHSCORE_CONFIG=str(config),
        DATABASE_URL=db_url,
        SENDGRID_WEBHOOK_PUBLIC_KEY=public_key,
    )
    return env, db_url


@pytest.fixture(scope="module")
def sg() -> Iterator[SendGridEmulator]:
    with SendGridEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def server(sg: SendGridEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("webhook")
    env, _ = _site(root, sg.webhook_public_key)
    srv = Server.start(env, root, "--read-timeout", str(READ_TIMEOUT))
    yield srv
    assert srv.stop() == 0, srv.log()


def _events(sg: SendGridEmulator, n: int = 3) -> bytes:
    for i in range(n):
        sg.add_message(f"user{i}@acme.example.com", NOW - timedelta(days=1), opened=i % 2 == 0)
    return json.dumps(sg.events()).encode()


def _post_signed(sg: SendGridEmulator, server: Server, body: bytes) -> tuple[int, float]:
    started = time.monotonic()
    resp = httpx.post(server.url(), content=body, headers=sg.sign(body), timeout=30)
    return resp.status_code, time.monotonic() - started


# ----------------------------------------------------------------------- raw HTTP helper
def head(
    lines: dict[str, str | bytes], *, length: int | None, path: str = PATH, chunked: bool = False
) -> bytes:
    out = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    if length is not None:
        out += f"Content-Length: {length}\r\n".encode()
    if chunked:
        out += b"Transfer-Encoding: chunked\r\n"
    for name, value in lines.items():
        out += name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        out += b"\r\n"
    return out + b"\r\n"


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float


def exchange(port: int, data: bytes, *, timeout: float = 10) -> Answer:
    """Send ``data`` (a request, maybe without its body) and read the answer until the
    server closes the connection or ``timeout``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        deadline = started + timeout
        while time.monotonic() < deadline and len(received) < 1_000_000:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    status_line, _, rest = received.partition(b"\r\n")
    found = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    return Answer(
        int(found.group(1)) if found else 0,
        rest.partition(b"\r\n\r\n")[2],
        time.monotonic() - started,
    )


def _complete(received: bytes) -> bool:
    head_part, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head_part)
    return found is not None and len(body) >= int(found.group(1))


# -------------------------------------------------------------------------- flooders
@dataclass
class Flood:
    """``FLOOD_CONNECTIONS`` threads, each declaring ``DECLARED`` bytes and sending ``total``
    of them (``pace``: seconds between 64 KiB chunks; ``stall_after``: bytes after which it
    sends nothing more), reconnecting when the server closes; bounded in time and count."""

    port: int
    headers: Callable[[], dict[str, str]]
    pace: float = 0.02
    total: int = 15_000_000
    stall_after: int | None = None
    rounds: int = 200  # connections per thread at most
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: list[int] = field(default_factory=list)
    answered_in: list[float] = field(default_factory=list)
    sent: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Flood:
        self.threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(FLOOD_CONNECTIONS)
        ]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)
        assert not any(t.is_alive() for t in self.threads)

    def _run(self) -> None:
        deadline = time.monotonic() + FLOOD_SECONDS + 30
        chunk = b"x" * 65536
        for _ in range(self.rounds):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                self.stop.wait(0.05)
                continue
            with self.lock:
                self.connections += 1
            started = time.monotonic()
            with s:
                try:
                    s.sendall(head(self.headers(), length=DECLARED))
                    sent = 0
                    while sent < self.total and not self.stop.is_set():
                        if self.stall_after is not None and sent >= self.stall_after:
                            self._await_answer(s, started)
                            self.stop.wait(FLOOD_SECONDS)  # then say nothing more
                            break
                        part = chunk[: self.total - sent]
                        s.sendall(part)
                        sent += len(part)
                        with self.lock:
                            self.sent += len(part)
                        if self.pace:
                            self.stop.wait(self.pace)
                    else:
                        self._await_answer(s, started)
                except OSError:
                    pass  # the server answered and closed: what a flood should get

    def _await_answer(self, s: socket.socket, started: float) -> None:
        s.settimeout(READ_TIMEOUT + 3)
        with_status = b""
        try:
            while len(with_status) < 64 and b"\r\n" not in with_status:
                got = s.recv(64)
                if not got:
                    break
                with_status += got
        except OSError:
            return
        found = re.match(rb"HTTP/1\.[01] (\d{3})", with_status)
        if found:
            with self.lock:
                self.statuses.append(int(found.group(1)))
                self.answered_in.append(time.monotonic() - started)


def unsigned() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _flood_while_posting(
    sg: SendGridEmulator, server: Server, flood: Flood, body: bytes
) -> tuple[float, float, float, list[tuple[int, float]]]:
    """RSS before, peak during and after the flood, and the valid posts made meanwhile."""
    for _ in range(3):  # warm up: each worker has loaded what a valid batch needs
        assert _post_signed(sg, server, body)[0] == 200
    before = server.rss_mb()
    posts: list[tuple[int, float]] = []
    peak = before
    with flood:
        ends = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < ends and len(posts) < 100:
            time.sleep(0.3)
            peak = max(peak, server.rss_mb())
            posts.append(_post_signed(sg, server, body))
            peak = max(peak, server.rss_mb())
    time.sleep(1.0)
    after = server.rss_mb()
    print(
        f"\nRSS before {before:.0f} MB, peak during {peak:.0f} MB, after {after:.0f} MB; "
        f"flood: {flood.connections} connections, {flood.sent / 1e6:.0f} MB sent, "
        f"answers {sorted(set(flood.statuses))}; valid posts: {len(posts)}, slowest "
        f"{max(s for _, s in posts):.2f} s"
    )
    return before, peak, after, posts


# ------------------------------------------------------------------------------ tests
def test_an_unsigned_flood_neither_grows_memory_nor_blocks_signed_batches(
    sg: SendGridEmulator, server: Server
) -> None:
    body = _events(sg)
    flood = Flood(server.port, unsigned)
    before, peak, after, posts = _flood_while_posting(sg, server, flood, body)
    assert peak - before < RSS_GROWTH_MB and after - before < RSS_GROWTH_MB
    assert len(posts) >= 5 and {status for status, _ in posts} == {200}
    assert max(seconds for _, seconds in posts) < 5
    assert flood.connections >= FLOOD_CONNECTIONS
    assert set(flood.statuses) <= {403}  # refused on its headers, whatever the body
    assert "Traceback" not in server.log()


def test_a_stalled_unsigned_body_is_answered_without_being_read(
    sg: SendGridEmulator, server: Server
) -> None:
    body = _events(sg)
    flood = Flood(server.port, unsigned, stall_after=10_000, rounds=1)
    before, peak, after, posts = _flood_while_posting(sg, server, flood, body)
    assert peak - before < RSS_GROWTH_MB and after - before < RSS_GROWTH_MB
    assert {status for status, _ in posts} == {200} and max(s for _, s in posts) < 5
    assert flood.statuses == [403] * FLOOD_CONNECTIONS
    # a 403 at all shows the bodies were not waited for (they never come); and it came before
    # the read timeout that waiting would have run into
    assert max(flood.answered_in) < READ_TIMEOUT


def test_a_forged_flood_is_read_in_bounded_memory(sg: SendGridEmulator, server: Server) -> None:
    """Well-formed headers with a signature of something else: the bodies must be read to be
    refused; they are hashed as they come and kept in memory only up to 1 MiB each."""
    body = _events(sg)
    flood = Flood(server.port, lambda: sg.sign(b"something else"), pace=0, total=DECLARED, rounds=1)
    before, peak, after, posts = _flood_while_posting(sg, server, flood, body)
    assert flood.sent >= FLOOD_CONNECTIONS * 10_000_000  # they did send their bodies
    assert peak - before < READ_RSS_GROWTH_MB and after - before < READ_RSS_GROWTH_MB
    assert {status for status, _ in posts} == {200}
    assert set(flood.statuses) <= {403, 408}  # 408: a body slowed past READ_TIMEOUT (busy CI)


def test_malformed_signature_headers_get_a_4xx_before_the_body(
    sg: SendGridEmulator, server: Server
) -> None:
    signed = sg.sign(b"[]")
    cases: dict[str, tuple[dict[str, str | bytes], int]] = {
        "5,000-digit timestamp": ({**signed, TIMESTAMP: "9" * 5000}, 400),
        "superscript two (isdigit, not int)": ({**signed, TIMESTAMP: "²".encode()}, 400),
        "Arabic-Indic digits": ({**signed, TIMESTAMP: "١٧٦٤٠٠٠٠٠٠".encode()}, 400),
        "a Latin-1 byte": ({**signed, TIMESTAMP: b"176400000\xe9"}, 400),
        "13 digits": ({**signed, TIMESTAMP: "1" * 13}, 400),
        "a signed timestamp": ({**signed, TIMESTAMP: "-1764000000"}, 400),
        "stale": ({**signed, TIMESTAMP: str(int(time.time()) - 3600)}, 403),
        "no signature": ({TIMESTAMP: signed[TIMESTAMP]}, 403),
        "5,000-character signature": ({**signed, SIGNATURE: "A" * 5000}, 403),
        "non-ASCII signature": ({**signed, SIGNATURE: "é".encode()}, 403),
        "a header over gunicorn's limit": ({**signed, TIMESTAMP: "9" * 10_000}, 431),
    }
    for name, (headers, status) in cases.items():
        # the declared body is never sent: an answer at all shows it was not waited for
        answer = exchange(server.port, head(headers, length=1_000_000), timeout=READ_TIMEOUT)
        assert answer.status == status, (name, answer)
        assert answer.seconds < 2, name
        assert b"Traceback" not in answer.body and b"9999999999" not in answer.body, name
        if status in (400, 403):
            assert set(json.loads(answer.body)) == {"error"}, name
    # httpx, with the body: the same answers
    resp = httpx.post(server.url(), content=b"[]", headers={**signed, TIMESTAMP: "9" * 5000})
    assert resp.status_code == 400 and "epoch seconds" in resp.json()["error"]
    log = server.log()
    assert "Traceback" not in log and signed[SIGNATURE] not in log


def test_the_declared_length_is_checked_before_reading(
    sg: SendGridEmulator, server: Server
) -> None:
    signed = sg.sign(b"[]")
    too_big = exchange(server.port, head(signed, length=MAX_BODY + 1), timeout=READ_TIMEOUT)
    assert too_big.status == 413 and too_big.seconds < 2
    assert json.loads(too_big.body) == {"error": f"body over {MAX_BODY} bytes"}
    huge = exchange(server.port, head(unsigned(), length=10**15), timeout=READ_TIMEOUT)
    assert huge.status == 413 and huge.seconds < 2
    missing = exchange(server.port, head(signed, length=None) + b"[]", timeout=READ_TIMEOUT)
    assert missing.status == 411 and missing.seconds < 2
    chunked = head(signed, length=None, chunked=True) + b"2\r\n[]\r\n0\r\n\r\n"
    assert exchange(server.port, chunked, timeout=READ_TIMEOUT).status == 411
    assert exchange(server.port, head(signed, length=2) + b"[]").status == 200


def test_a_deeply_nested_signed_body_is_a_400(sg: SendGridEmulator, server: Server) -> None:
    for depth in (MAX_DEPTH + 1, 5_000, 200_000):
        body = b"[" * depth + b"]" * depth
        resp = httpx.post(server.url(), content=body, headers=sg.sign(body), timeout=30)
        assert resp.status_code == 400, depth
        assert resp.json() == {"error": f"JSON nested over {MAX_DEPTH} levels"}, depth
    nested_event = json.dumps([{"sg_event_id": "e", "x": json.loads("[" * 40 + "]" * 40)}])
    resp = httpx.post(server.url(), content=nested_event, headers=sg.sign(nested_event.encode()))
    assert resp.status_code == 400
    fine = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH  # as deep as allowed: its one event is skipped
    resp = httpx.post(server.url(), content=fine, headers=sg.sign(fine))
    assert resp.status_code == 200 and resp.json()["skipped"] == 1
    assert "RecursionError" not in server.log()


def test_slow_clients_are_cut_at_the_read_timeout(sg: SendGridEmulator, server: Server) -> None:
    """A request head sent a byte at a time, and a signed-looking body that trickles: both
    closed about READ_TIMEOUT after the server took them, while signed batches go through."""
    body = _events(sg)
    outcomes: dict[str, list[float]] = {"head": [], "body": []}

    def slow(kind: str) -> None:
        started = time.monotonic()
        data = head(sg.sign(b"x"), length=100_000) if kind == "body" else b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            try:
                s.sendall(data or b"POST /webhooks/sendgrid HTTP/1.1\r\n")
                for _ in range(int(READ_TIMEOUT * 4) + 20):  # a byte every 0.5 s
                    time.sleep(0.5)
                    s.sendall(b"x" if kind == "body" else b"X")
                    if time.monotonic() - started > READ_TIMEOUT + 10:
                        break
            except OSError:
                pass  # closed by the server
            outcomes[kind].append(time.monotonic() - started)

    threads = [  # fewer than a worker's threads: each is taken at once, its deadline runs
        threading.Thread(target=slow, args=(kind,), daemon=True)
        for kind in ("head", "body")
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(1)
    status, seconds = _post_signed(sg, server, body)
    assert status == 200 and seconds < READ_TIMEOUT + 2
    for t in threads:
        t.join(READ_TIMEOUT + 20)
    assert len(outcomes["head"]) == len(outcomes["body"]) == 3
    # the server's close is seen at the next send after it (0.5 s) or the one after
    assert max(outcomes["head"] + outcomes["body"]) < READ_TIMEOUT + 4, outcomes


def test_only_post_to_the_webhook_path(server: Server) -> None:
    assert httpx.get(server.url()).status_code == 405
    assert httpx.put(server.url(), content=b"[]").status_code == 405
    assert httpx.post(server.url("/elsewhere"), content=b"[]").status_code == 404
    assert httpx.get(server.url("/healthz")).json() == {"ok": True}
    too_long = exchange(server.port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert too_long.status in (400, 414)


def test_sigterm_finishes_and_runs_the_last_recompute(sg: SendGridEmulator, tmp_path: Path) -> None:
    env, db_url = _site(tmp_path, sg.webhook_public_key)
    srv = Server.start(env, tmp_path, "--workers", "1", "--threads", "2")
    try:
        body = _events(sg, 4)
        resp = httpx.post(srv.url(), content=body, headers=sg.sign(body), timeout=30)
        assert resp.status_code == 200 and resp.json()["accounts_recomputed"] == 0
    finally:
        code = srv.stop()
    assert code == 0, srv.log()
    store = Store(db_url)
    try:
        assert signals(store, "sendgrid")[ACME]["sendgrid_recipients"] == 4.0
    finally:
        store.close()
    assert "Traceback" not in srv.log() and "Shutting down" in srv.log()


# --------------------------------------------------------------- the app and its checks
def test_an_unexpected_error_is_a_generic_500_with_the_traceback_in_the_log(
    sg: SendGridEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'hs.db'}")
    app = SendGridWebhookApp(
        store, sg.webhook_public_key, SendGridSource(enabled=True), recompute_every=0
    )

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("internal detail: db password hunter2")

    monkeypatch.setattr("connectors.sendgrid.webhook_app.apply_sendgrid_events", broken)
    body = b"[]"
    environ = {
        "PATH_INFO": PATH,
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in sg.sign(body).items()},
    }
    answered: list[str] = []
    with caplog.at_level(logging.ERROR, logger="connectors.sendgrid.webhook_app"):
        payload = b"".join(app(environ, lambda status, _headers: answered.append(status)))
    assert answered == ["500 Internal Server Error"]
    assert json.loads(payload) == {"error": "internal error"}
    assert any(r.exc_info for r in caplog.records)  # the traceback: in the log only
    app.close()
    store.close()


def test_signed_headers_are_checked_without_int_overflow_or_unicode_digits() -> None:
    now = 1_764_000_000.0
    ok = signed_headers({TIMESTAMP: "1764000000", SIGNATURE: "AAAA"}, now=now, max_age=600)
    assert ok.timestamp == "1764000000" and ok.signature == b"\0\0\0"
    for stamp in ("9" * 5000, "²", "١٧٦٤٠٠٠٠٠٠", "1764000000.5", "0x10", " ", "1" * 13):
        with pytest.raises(MalformedHeaderError):
            signed_headers({TIMESTAMP: stamp, SIGNATURE: "AAAA"}, now=now, max_age=600)
    for signature in ("%%%", "A" * 300, "é", "="):
        with pytest.raises(SignatureError) as err:
            signed_headers({TIMESTAMP: "1764000000", SIGNATURE: signature}, now=now, max_age=600)
        assert not isinstance(err.value, MalformedHeaderError)


def test_nesting_is_measured_without_recursion() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_exceeds(deep, MAX_DEPTH)
    assert not nesting_exceeds([{"a": [1, {"b": 2}]}], 4)  # list, dict, list, dict
    assert nesting_exceeds([{"a": [1, {"b": []}]}], 4)
    assert not nesting_exceeds([], 1) and nesting_exceeds([[]], 1)


def test_rejections_are_logged_at_a_bounded_rate(caplog) -> None:
    clock = {"now": 0.0}
    limited = RateLimitedLog(5, clock=lambda: clock["now"])
    with caplog.at_level(logging.WARNING, logger="connectors.sendgrid.webhook_app"):
        for _ in range(1000):
            limited.warning("rejected %s", "x")
        clock["now"] = 61.0
        limited.warning("rejected %s", "y")
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("rejected x") == 5 and "rejected y" in lines
    assert any("995 more requests rejected" in line for line in lines)
