"""The SendGrid event webhook receiver, over HTTP, with payloads signed by the emulator."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.sendgrid.config import SendGridSource
from connectors.sendgrid.webhook_app import (
    MAX_BODY,
    MAX_DEPTH,
    MAX_THREADS,
    PATH,
    SendGridWebhookApp,
    make_server_for,
)
from healthscore.core.errors import ConfigError
from sandbox import SendGridEmulator
from store import Store
from tests.email_helpers import add_accounts, signals

ACME = "001ACME000000001"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def sg() -> Iterator[SendGridEmulator]:
    with SendGridEmulator() as emu:
        yield emu


@pytest.fixture
def serve(store: Store) -> Iterator[Callable[..., str]]:
    """Start the receiver (a real threaded WSGI server on a free port); returns its URL."""
    servers = []

    def start(public_key: str, recompute_every: float = 0, **source: object) -> str:
        """``recompute_every=0``: accounts recomputed before the answer (tests look at once)."""
        app = SendGridWebhookApp(
            store,
            public_key,
            SendGridSource(enabled=True, **source),
            recompute_every=recompute_every,
        )
        server = make_server_for(app, "127.0.0.1", 0)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append((server, app))
        return f"http://127.0.0.1:{server.server_port}{PATH}"

    add_accounts(store, {ACME: "acme.example.com"})
    yield start
    for server, app in servers:
        server.shutdown()
        server.server_close()
        app.close()


def _history_rows(store: Store) -> int:
    return sum(len(store.signal_history(a.id)) for a in store.accounts())


def test_signed_batches_are_kept_once(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    url = serve(sg.webhook_public_key)
    day = timedelta(days=1)
    sg.add_message("ana@acme.example.com", NOW - 2 * day, opened=True, clicked=True)
    sg.add_message("bo@acme.example.com", NOW - 3 * day)
    sg.add_message("cy@acme.example.com", NOW - 3 * day, bounced=True)
    sg.add_message("fan@gmail.com", NOW - 3 * day, opened=True)
    events = sg.events()
    first = sg.post_events(url, events, batch_size=4)
    assert [r.status_code for r in first] == [200] * len(first)
    assert sum(r.json()["new"] for r in first) == len(events)
    got = signals(store, "sendgrid")[ACME]
    assert got["sendgrid_open_rate_90d"] == 0.5  # ana opened; bo did not; cy bounced
    assert got["sendgrid_click_rate_90d"] == 0.5
    assert got["sendgrid_bounces_90d"] == 1.0 and got["sendgrid_recipients"] == 3.0
    assert [u.record_id for u in store.unmatched("sendgrid")] == ["fan@gmail.com"]
    history = _history_rows(store)

    again = sg.post_events(url, events, batch_size=7)  # SendGrid redelivers, batched anew
    assert [r.status_code for r in again] == [200] * len(again)
    assert sum(r.json()["new"] for r in again) == 0
    assert sum(r.json()["duplicates"] for r in again) == len(events)
    assert _history_rows(store) == history  # a redelivered batch adds nothing

    later = sg.add_event(next(iter(sg.messages)), "open", NOW)  # a new open, later
    assert sg.post_events(url, [later])[0].json()["new"] == 1


def test_bad_missing_or_stale_signatures_are_rejected(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    url = serve(sg.webhook_public_key)
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), opened=True)
    body = json.dumps(sg.events()).encode()
    with SendGridEmulator() as impostor:
        forged = impostor.sign(body)  # signed, but with another key
    tampered = body.replace(b"ana@", b"eve@")
    stale = sg.sign(body, timestamp=int(time.time()) - 3600)
    cases = {
        "forged": (body, forged),
        "tampered": (tampered, sg.sign(body)),
        "stale": (body, stale),
        "unsigned": (body, {"Content-Type": "application/json"}),
        "garbled": (body, {**sg.sign(body), "X-Twilio-Email-Event-Webhook-Signature": "%%%"}),
    }
    for name, (payload, headers) in cases.items():
        resp = httpx.post(url, content=payload, headers=headers)
        assert resp.status_code == 403, name
        assert "signature rejected" in resp.json()["error"], name
    assert signals(store, "sendgrid") == {}
    good = httpx.post(url, content=body, headers=sg.sign(body))
    assert good.status_code == 200 and good.json()["new"] == len(sg.events())


def test_malformed_events_are_skipped_with_their_id(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    url = serve(sg.webhook_public_key)
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), opened=True)
    events = [
        *sg.events(),
        {
            "sg_event_id": "bad-evt-1",
            "event": "open",
            "email": "bo@acme.example.com",
            "timestamp": "yesterday",
            "sg_message_id": "m",
        },
        {
            "sg_event_id": "bad-evt-2",
            "event": "teleported",
            "email": "bo@acme.example.com",
            "timestamp": 1763856000,
            "sg_message_id": "m",
        },
        "not an event",
    ]
    body = json.dumps(events).encode()
    resp = httpx.post(url, content=body, headers=sg.sign(body))
    assert resp.status_code == 200
    assert resp.json()["skipped_ids"] == ["bad-evt-1", "bad-evt-2", "<not an object>"]
    assert resp.json()["new"] == len(events) - 3
    assert signals(store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0


def test_requests_that_are_not_event_batches(
    sg: SendGridEmulator, serve: Callable[..., str]
) -> None:
    url = serve(sg.webhook_public_key)
    for payload in (b'{"event": "open"}', b"not json"):
        resp = httpx.post(url, content=payload, headers=sg.sign(payload))
        assert resp.status_code == 400
    assert httpx.get(url).status_code == 405
    assert httpx.get(url.replace(PATH, "/healthz")).status_code == 200
    assert httpx.post(url.replace(PATH, "/elsewhere"), content=b"[]").status_code == 404


def test_machine_opens_do_not_count(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    url = serve(sg.webhook_public_key)
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=1), machine_open=True)
    sg.post_events(url)
    assert signals(store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 0.0


def test_a_missing_or_bad_verification_key_is_a_config_error(store: Store) -> None:
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        SendGridWebhookApp(store, None, SendGridSource(enabled=True))
    with pytest.raises(ConfigError, match="not a base64 DER or PEM"):
        SendGridWebhookApp(store, "bm90IGEga2V5", SendGridSource(enabled=True))


def test_categories_filter_accounts_and_the_baseline(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    from connectors.registry import Settings
    from connectors.sendgrid import SendGridClient
    from healthscore.pipeline.cycle import Pipeline
    from tests.conftest import FAST_RETRY
    from tests.email_helpers import email_config

    cats = ["onboarding-nudge", "renewal"]
    url = serve(sg.webhook_public_key, categories=cats)
    day = timedelta(days=1)
    sg.add_message(
        "ana@acme.example.com",
        NOW - day,
        opened=True,
        categories=("healthscore", "onboarding-nudge"),
    )
    sg.add_message("ana@acme.example.com", NOW - day, categories=("renewal",))
    sg.add_message("ana@acme.example.com", NOW - day, categories=("newsletter",))  # not counted
    sg.add_message("bo@acme.example.com", NOW - day, categories=())  # no category: not counted
    sg.post_events(url)
    got = signals(store, "sendgrid")[ACME]
    assert got["sendgrid_open_rate_90d"] == 0.5 and got["sendgrid_recipients"] == 1.0
    pipe = Pipeline(
        email_config(sendgrid={"categories": cats}),
        Settings(database_url=store.url),
        store,
        sendgrid=SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY),
        clock=lambda: NOW,
    )
    report = pipe.sync("sendgrid")
    stats = sg.requests("GET", r"/v3/categories/stats$")
    assert len(stats) == 1 and stats[0].query["categories"] == "onboarding-nudge\nrenewal"
    assert report.baseline["delivered"] == 2.0 and report.baseline["open_rate_90d"] == 0.5
    assert signals(store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 0.5


def test_facts_past_the_window_are_pruned_by_the_daily_pass(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    from sqlalchemy import func, select

    from connectors.registry import Settings
    from connectors.sendgrid import SendGridClient
    from healthscore.pipeline.cycle import Pipeline
    from store.models import SourceRecord
    from tests.conftest import FAST_RETRY
    from tests.email_helpers import email_config

    url = serve(sg.webhook_public_key)
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=2), opened=True)
    sg.post_events(url)

    def kept() -> int:
        with store.session() as s:
            return s.scalar(
                select(func.count())
                .select_from(SourceRecord)
                .where(SourceRecord.source == "sendgrid", SourceRecord.object == "events")
            )

    events = kept()
    assert events == len(sg.events())
    clock = {"now": NOW + timedelta(days=30)}
    pipe = Pipeline(
        email_config(sendgrid={}),
        Settings(database_url=store.url),
        store,
        sendgrid=SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY),
        clock=lambda: clock["now"],
    )
    assert pipe.sync("sendgrid").pruned == 0  # inside the window: kept
    clock["now"] = NOW + timedelta(days=95)
    report = pipe.sync("sendgrid")
    assert report.pruned == events and kept() == 0  # 95 days on: past the window, deleted
    got = signals(store, "sendgrid")[ACME]
    assert got["sendgrid_open_rate_90d"] is None and got["sendgrid_recipients"] == 0.0


def test_background_recompute_and_the_sync_as_backstop(
    sg: SendGridEmulator, store: Store, serve: Callable[..., str]
) -> None:
    from connectors.registry import Settings
    from connectors.sendgrid import SendGridClient
    from healthscore.pipeline.cycle import Pipeline
    from tests.conftest import FAST_RETRY
    from tests.email_helpers import email_config

    url = serve(sg.webhook_public_key, recompute_every=0.2)
    sg.add_message("ana@acme.example.com", NOW - timedelta(days=2), opened=True)
    answer = sg.post_events(url)[0].json()
    assert answer["new"] == len(sg.events()) and answer["accounts_recomputed"] == 0
    deadline = time.monotonic() + 10
    while ACME not in signals(store, "sendgrid"):
        assert time.monotonic() < deadline, "the background recompute never ran"
        time.sleep(0.05)
    assert signals(store, "sendgrid")[ACME]["sendgrid_open_rate_90d"] == 1.0
    # events whose recompute was lost (the process stopped first) are found by the sync
    lost = SendGridWebhookApp(
        store, sg.webhook_public_key, SendGridSource(enabled=True), recompute_every=3600
    )
    msg = next(iter(sg.messages))
    body = json.dumps([sg.add_event(msg, "click", NOW)]).encode()
    environ = {
        "PATH_INFO": PATH,
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": __import__("io").BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in sg.sign(body).items()},
    }
    assert lost.handle(environ)[0] == "200 OK"
    assert signals(store, "sendgrid")[ACME]["sendgrid_click_rate_90d"] == 0.0
    pipe = Pipeline(
        email_config(sendgrid={}),
        Settings(database_url=store.url),
        store,
        sendgrid=SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY),
        clock=lambda: datetime.now(UTC),
    )
    pipe.sync("sendgrid")
    assert signals(store, "sendgrid")[ACME]["sendgrid_click_rate_90d"] == 1.0


def _exchange(url: str, request: bytes) -> bytes:
    """A raw request (maybe without its body) to the server of ``url``; the answer's head."""
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 10_000:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def test_bad_input_is_a_4xx_never_a_500(sg: SendGridEmulator, serve: Callable[..., str]) -> None:
    """What got a 500 with a traceback (or was read whole before any check) gets a short
    4xx: an over-long or non-ASCII timestamp, JSON nested too deep, a length over the limit
    or none at all (checked before reading the body)."""
    url = serve(sg.webhook_public_key)
    body = b"[]"
    signed = sg.sign(body)
    stamp = "X-Twilio-Email-Event-Webhook-Timestamp"
    for bad in ("9" * 5000, "²".encode(), "١٧٦٤٠٠٠٠٠٠".encode(), b"17640000\xe9"):
        resp = httpx.post(url, content=body, headers={**signed, stamp: bad})
        assert resp.status_code == 400, bad
        assert "epoch seconds" in resp.json()["error"] and "Traceback" not in resp.text
    deep = b"[" * 100_000 + b"]" * 100_000
    resp = httpx.post(url, content=deep, headers=sg.sign(deep))
    assert resp.status_code == 400
    assert resp.json() == {"error": f"JSON nested over {MAX_DEPTH} levels"}
    headers = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    over = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n{headers}\r\n"
    assert re.match(rb"HTTP/1\.[01] 413 ", _exchange(url, over.encode()))  # no body sent
    none = f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
    assert re.match(rb"HTTP/1\.[01] 411 ", _exchange(url, none.encode()))
    good = httpx.post(url, content=body, headers=signed)
    assert good.status_code == 200 and good.json()["received"] == 0


def test_the_stdlib_server_serves_a_bounded_number_at_once(
    sg: SendGridEmulator, serve: Callable[..., str]
) -> None:
    """``make_server_for`` (tests, the demo) refuses a connection past ``MAX_THREADS`` busy
    ones at once instead of starting a thread for each."""
    url = serve(sg.webhook_public_key)
    port = int(url.split(":")[2].split("/")[0])
    idle = []
    try:
        for _ in range(MAX_THREADS):  # each holds a thread, waiting for its request line
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST")
            idle.append(s)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):  # closed at once, not served
                assert extra.recv(100) == b""
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the idle ones' threads end as their sockets close
        try:
            if httpx.get(url.replace(PATH, "/healthz"), timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.05)
