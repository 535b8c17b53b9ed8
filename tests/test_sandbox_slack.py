"""SlackEmulator driven through the real slack-sdk WebClient (and httpx for raw wire checks)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

# Submodule imports work whether or not the editable install knows sandbox/__init__.py.
from sandbox.slack import SlackEmulator
from sandbox.synthetic import generate_org

TOKEN = "xoxb-sandbox-token"


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator(channels={"C0CSALERTS": "cs-alerts", "C0RENEWALS": "renewals"}) as server:
        yield server


@pytest.fixture
def relaxed() -> Iterator[SlackEmulator]:
    """No practical rate limit, for tests that post a lot."""
    with SlackEmulator(messages_per_second=1000.0, burst=1000) as server:
        yield server


def client(emu: SlackEmulator, token: str | None = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=emu.base_url)


def test_base_url_and_auth_test(emu: SlackEmulator) -> None:
    assert emu.base_url.startswith("http://127.0.0.1:") and emu.base_url.endswith("/api/")
    resp = client(emu).auth_test()
    assert resp.status_code == 200
    assert resp["ok"] is True
    for key in ("url", "team", "user", "team_id", "user_id", "bot_id"):
        assert resp[key]
    assert resp["is_enterprise_install"] is False


def test_bad_or_missing_token(emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as wrong:
        client(emu, "xoxb-wrong").auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    assert wrong.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        client(emu, None).auth_test()
    assert missing.value.response["error"] == "not_authed"


def test_users_lookup_by_email(emu: SlackEmulator) -> None:
    org = generate_org(60, seed=3)
    ids = emu.add_users(org.users)
    assert len(set(ids)) == len(ids) and all(len(i) == 9 and i[0] == "U" for i in ids)
    assert all(i[1:].isalnum() and i[1:].upper() == i[1:] for i in ids)
    email = org.users[0]["Email"]
    resp = client(emu).users_lookupByEmail(email=email.upper())
    user = resp["user"]
    assert user["id"] == ids[0]
    assert user["profile"]["email"] == email
    assert user["real_name"] == org.users[0]["Name"]
    assert user["deleted"] is False and user["is_bot"] is False
    # users.lookupByEmail arrives as a form body, not JSON.
    logged = emu.requests("POST", r"users\.lookupByEmail")[-1]
    assert logged.body == {"email": email.upper()}
    assert logged.headers["Content-Type"] == "application/x-www-form-urlencoded"
    with pytest.raises(SlackApiError) as exc:
        client(emu).users_lookupByEmail(email="nobody@healthscore-demo.test")
    assert exc.value.response["error"] == "users_not_found"
    emu.add_user("gone@healthscore-demo.test", "Gone User", deleted=True)
    with pytest.raises(SlackApiError):
        client(emu).users_lookupByEmail(email="gone@healthscore-demo.test")


def test_post_message_by_id_name_and_hash_name(relaxed: SlackEmulator) -> None:
    hostile = "*Smith & Sons <Ltd>* dropped <!channel>"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": hostile}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Seat utilisation 22%"}]},
    ]
    web = client(relaxed)
    first = web.chat_postMessage(channel="C0CSALERTS", text=hostile, blocks=blocks)
    second = web.chat_postMessage(channel="#cs-alerts", text="by hash name", unfurl_links=False)
    third = web.chat_postMessage(channel="cs-alerts", text="by bare name")
    assert first["channel"] == second["channel"] == third["channel"] == "C0CSALERTS"
    assert first["message"]["text"] == hostile
    assert first["message"]["blocks"] == blocks
    stamps = [first["ts"], second["ts"], third["ts"]]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 3
    stored = relaxed.messages
    assert [m["ts"] for m in stored] == stamps
    assert stored[0]["text"] == hostile and stored[0]["blocks"] == blocks
    assert stored[1]["payload"]["unfurl_links"] is False
    stored[0]["text"] = "mutated"
    assert relaxed.messages[0]["text"] == hostile  # property returns a copy


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_errors(relaxed: SlackEmulator) -> None:
    web = client(relaxed)
    cases = [
        ({"channel": "#nope", "text": "x"}, "channel_not_found"),
        ({"channel": "C0CSALERTS"}, "no_text"),
        (
            {
                "channel": "C0CSALERTS",
                "text": "x",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
            },
            "invalid_blocks",
        ),
        ({"channel": "C0CSALERTS", "text": "x", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        (
            {
                "channel": "C0CSALERTS",
                "text": "x",
                "blocks": [{"type": "divider"}] * 51,
            },
            "invalid_blocks",
        ),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as exc:
            web.chat_postMessage(**kwargs)  # type: ignore[arg-type]
        assert exc.value.response["error"] == error, kwargs
        assert exc.value.response.status_code == 200
    ok = web.chat_postMessage(
        channel="C0CSALERTS",
        text="fine",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3000}}],
    )
    assert ok["ok"] is True
    relaxed.archive_channel("C0CSALERTS")
    with pytest.raises(SlackApiError) as archived:
        web.chat_postMessage(channel="C0CSALERTS", text="x")
    assert archived.value.response["error"] == "is_archived"
    assert len(relaxed.messages) == 1


def test_form_encoded_post_and_token_field(relaxed: SlackEmulator) -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]
    resp = httpx.post(
        relaxed.base_url + "chat.postMessage",
        data={"token": TOKEN, "channel": "C0CSALERTS", "text": "t", "blocks": json.dumps(blocks)},
    )
    assert resp.status_code == 200 and resp.json()["ok"] is True
    assert relaxed.messages[-1]["blocks"] == blocks
    logged = relaxed.requests("POST", r"chat\.postMessage")[-1]
    assert logged.body["token"] == "[redacted]"
    get = httpx.get(relaxed.base_url + "auth.test", params={"token": TOKEN})
    assert get.json()["ok"] is True
    unknown = httpx.post(relaxed.base_url + "no.such.method", headers={"Authorization": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_method"


def test_rate_limit_returns_429_with_integer_retry_after(emu: SlackEmulator) -> None:
    web = client(emu)
    web.chat_postMessage(channel="C0CSALERTS", text="one")
    with pytest.raises(SlackApiError) as exc:
        web.chat_postMessage(channel="C0CSALERTS", text="two")
    response = exc.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    # Buckets are per channel: another channel is not throttled.
    assert web.chat_postMessage(channel="C0RENEWALS", text="other channel")["ok"] is True
    assert [m["text"] for m in emu.messages] == ["one", "other channel"]


def test_retry_handler_waits_and_succeeds(emu: SlackEmulator) -> None:
    web = client(emu)
    web.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    started = time.monotonic()
    web.chat_postMessage(channel="C0CSALERTS", text="one")
    second = web.chat_postMessage(channel="C0CSALERTS", text="two")
    assert second["ok"] is True
    assert time.monotonic() - started >= 1.0
    statuses = [e.status for e in emu.requests("POST", r"chat\.postMessage")]
    assert statuses[0] == 200 and statuses[-1] == 200 and 429 in statuses


def test_set_rate_changes_the_bucket(emu: SlackEmulator) -> None:
    emu.set_rate(messages_per_second=1.0, burst=3)
    web = client(emu)
    for i in range(3):
        web.chat_postMessage(channel="C0CSALERTS", text=str(i))
    with pytest.raises(SlackApiError) as exc:
        web.chat_postMessage(channel="C0CSALERTS", text="fourth")
    assert exc.value.response.status_code == 429


def test_injected_faults(relaxed: SlackEmulator) -> None:
    web = client(relaxed)
    relaxed.faults.add("server_error", path=r"chat\.postMessage", times=1)
    with pytest.raises(SlackApiError) as exc:
        web.chat_postMessage(channel="C0CSALERTS", text="x")
    assert exc.value.response.status_code == 503
    assert exc.value.response["error"] == "internal_error"
    relaxed.faults.add("rate_limit", times=1)
    with pytest.raises(SlackApiError) as limited:
        web.auth_test()
    assert limited.value.response.status_code == 429
    assert int(limited.value.response.headers["Retry-After"]) >= 1
    relaxed.faults.add("slow", delay=0.2, times=1)
    started = time.monotonic()
    assert web.chat_postMessage(channel="C0CSALERTS", text="late")["ok"] is True
    assert time.monotonic() - started >= 0.2
    assert [e.fault for e in relaxed.requests()] == ["server_error", "rate_limit", "slow"]
    assert len(relaxed.messages) == 1


def test_request_log_records_method_path_body_without_authorization(emu: SlackEmulator) -> None:
    client(emu).chat_postMessage(channel="C0CSALERTS", text="hello", blocks=[{"type": "divider"}])
    (entry,) = emu.requests(path=r"chat\.postMessage")
    assert entry.method == "POST"
    assert entry.path == "/api/chat.postMessage"
    assert entry.body == {"channel": "C0CSALERTS", "text": "hello", "blocks": [{"type": "divider"}]}
    assert entry.status == 200 and entry.fault is None and entry.at > 0
    assert "authorization" not in {k.lower() for k in entry.headers}
    assert TOKEN not in json.dumps(entry.headers)
    emu.clear_log()
    assert emu.requests() == []
