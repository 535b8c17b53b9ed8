"""SlackEmulator: the Slack Web API methods healthscore uses, for slack-sdk's WebClient.

``auth.test``, ``users.lookupByEmail`` (the full user object with its ``profile``, see
:mod:`sandbox.slack_users`; ``users_not_found`` for an unknown or deactivated address),
``chat.postMessage`` (with message ``metadata``) and ``conversations.history`` (newest first,
cursor paging, ``oldest``/``latest``, metadata only with ``include_all_metadata``,
``channel_actions_ts``/``channel_actions_count``) over plain HTTP with Slack's conventions:
HTTP 200 + ``{"ok": false, "error": ...}`` for errors, per-channel posting rate limit answered
with HTTP 429 + integer ``Retry-After``.  See /work/shared/api-specs/slack.md.

The token's scopes (``scopes=``, or ``emu.scopes`` changed by a test) come back as Slack sends
them, in the ``x-oauth-scopes`` header of every authenticated answer (with the method's own in
``x-accepted-oauth-scopes``); a method whose scope the token lacks answers ``missing_scope``
with ``needed`` and ``provided``, and a wrong token ``invalid_auth``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.faults import Fault
from sandbox.ratelimit import KeyedTokenBucket
from sandbox.server import EmulatorServer, route
from sandbox.slack_blocks import block_errors
from sandbox.slack_users import SlackUser
from sandbox.wire import Request, Response

TEAM_ID = "T0SANDBOX"
TEAM_NAME = "Healthscore Sandbox"
BOT_ID = "B0SANDBOX"
BOT_USER_ID = "U0BOTUSER"
BOT_NAME = "healthscore"
MAX_TEXT = 40_000
#: the scope each method needs (auth.test needs none); conversations.history is asked of the
#: public alert channels here, so channels:history
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "users.lookupByEmail": "users:read.email",
    "conversations.history": "channels:history",
}
#: a bot token installed with everything healthscore asks for, and the usual neighbours
DEFAULT_SCOPES = (
    "channels:history",
    "channels:read",
    "chat:write",
    "users:read",
    "users:read.email",
)
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Params = dict[str, Any]


def _ok(body: Mapping[str, Any] | None = None) -> Response:
    return Response(200, {"ok": True, **(body or {})})


def _fail(error: str, status: int = 200, **extra: Any) -> Response:
    return Response(status, {"ok": False, "error": error, **extra})


def _rate_limited(retry_after: int) -> Response:
    return Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


class SlackEmulator(EmulatorServer):
    """Plain-HTTP Slack Web API emulator; point ``WebClient(base_url=emu.base_url)`` at it."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox-token",
        channels: dict[str, str] | None = None,
        messages_per_second: float = 1.0,
        burst: int = 1,
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.scopes: set[str] = set(scopes)  # the token's; a test may take one away
        self._lock = threading.RLock()
        self._channels: dict[str, str] = dict(channels or {"C0CSALERTS": "cs-alerts"})
        self._archived: set[str] = set()
        self._users: dict[str, SlackUser] = {}
        self._messages: list[dict[str, Any]] = []
        self._last_ts_us = 0
        self._buckets = KeyedTokenBucket(messages_per_second, burst)
        self._methods: dict[str, Callable[[Params], Response]] = {
            "auth.test": self._auth_test,
            "users.lookupByEmail": self._lookup_by_email,
            "chat.postMessage": self._post_message,
            "conversations.history": self._history,
        }

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/"

    # ------------------------------------------------------------------ test helpers
    def add_user(self, email: str, name: str, *, deleted: bool = False, tz: str = "Etc/UTC") -> str:
        """Register a workspace member; ids are ``U`` + 8 chars derived from the email."""
        key = email.strip().lower()
        with self._lock:
            existing = self._users.get(key)
            if existing is not None:
                existing.name, existing.deleted, existing.tz = name, deleted, tz
                existing.touch()
                return existing.id
            taken = {u.id for u in self._users.values()}
            digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
            user_id = ""
            while not user_id or user_id in taken:
                chars = []
                for _ in range(8):
                    digest, rem = divmod(digest, 36)
                    chars.append(_ALNUM[rem])
                user_id = "U" + "".join(chars)
                digest += 7919
            self._users[key] = SlackUser(user_id, TEAM_ID, email.strip(), name, deleted, tz)
            return user_id

    def add_users(self, users: Iterable[Mapping[str, Any]]) -> list[str]:
        """Register SyntheticOrg-style users (``Email``, ``Name``, optional ``IsActive``)."""
        return [
            self.add_user(u["Email"], u["Name"], deleted=not u.get("IsActive", True)) for u in users
        ]

    def add_channel(self, name: str, channel_id: str | None = None) -> str:
        with self._lock:
            cid = channel_id or "C" + secrets.token_hex(5).upper()
            self._channels[cid] = name.lstrip("#")
            return cid

    def archive_channel(self, channel_id: str) -> None:
        with self._lock:
            if channel_id not in self._channels:
                raise KeyError(channel_id)
            self._archived.add(channel_id)

    def set_rate(self, messages_per_second: float, burst: int) -> None:
        """Change the per-channel posting limit (buckets start full)."""
        self._buckets.configure(messages_per_second, burst)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Posted messages (channel, ts, text, blocks, thread_ts, payload), oldest first."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def clear_messages(self) -> None:
        with self._lock:
            self._messages.clear()

    # ------------------------------------------------------------------ hooks
    def finalize(self, req: Request, response: Response) -> Response:
        return response.with_headers({"X-Slack-Req-Id": secrets.token_hex(16)})

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            return _rate_limited(1)
        if fault.kind == "expired_session":
            return _fail("token_expired")
        return _fail("internal_error", status=503)

    def not_found(self, req: Request) -> Response:
        return _fail("unknown_method", status=404)

    def internal_error(self, req: Request, exc: Exception) -> Response:
        self.report_exception(exc)
        return _fail("fatal_error", status=500)

    # ------------------------------------------------------------------ routing
    @route(("GET", "POST"), r"/api/(?P<method>[A-Za-z0-9_.]+)/?")
    def _api(self, req: Request) -> Response:
        method = req.path_params["method"]
        handler = self._methods.get(method)
        if handler is None:
            return _fail("unknown_method", status=404, req_method=method)
        params: Params = dict(req.query)
        if req.content_type == "application/json":
            try:
                body = req.json()
            except ValueError:
                return _fail("invalid_json")
            if body is not None and not isinstance(body, dict):
                return _fail("json_not_object")
            params.update(body or {})
        elif req.body:
            params.update(req.form())
        auth_error = self._check_auth(req, params)
        if auth_error is not None:
            return auth_error
        params.pop("token", None)
        granted = ",".join(sorted(self.scopes))
        headers = {"x-oauth-scopes": granted}
        needed = METHOD_SCOPES.get(method)
        if needed is not None:
            headers["x-accepted-oauth-scopes"] = needed
            if needed not in self.scopes:
                return _fail("missing_scope", needed=needed, provided=granted).with_headers(headers)
        return handler(params).with_headers(headers)

    def _check_auth(self, req: Request, params: Params) -> Response | None:
        header = req.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
        if not token and isinstance(params.get("token"), str):
            token = params["token"]
        if not token:
            return _fail("not_authed")
        if not secrets.compare_digest(token.encode(), self.bot_token.encode()):
            return _fail("invalid_auth")
        return None

    # ------------------------------------------------------------------ methods
    def _auth_test(self, params: Params) -> Response:
        return _ok(
            {
                "url": "https://healthscore-sandbox.slack.com/",
                "team": TEAM_NAME,
                "user": BOT_NAME,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        )

    def _lookup_by_email(self, params: Params) -> Response:
        email = params.get("email")
        if not isinstance(email, str) or not email:
            return _fail("invalid_arguments")
        with self._lock:
            user = self._users.get(email.strip().lower())
            if user is None or user.deleted:
                return _fail("users_not_found")
            return _ok({"user": user.as_json()})

    def _resolve_channel(self, raw: Any) -> str | None:
        if not isinstance(raw, str) or not raw:
            return None
        if raw in self._channels:
            return raw
        name = raw.removeprefix("#")
        for cid, cname in self._channels.items():
            if cname == name:
                return cid
        if any(u.id == raw and not u.deleted for u in self._users.values()):
            return "D" + raw[1:]  # direct message with the bot
        return None

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _post_message(self, params: Params) -> Response:
        with self._lock:
            channel = self._resolve_channel(params.get("channel"))
            if channel is None:
                return _fail("channel_not_found")
            if channel in self._archived:
                return _fail("is_archived")
            blocks = params.get("blocks")
            if isinstance(blocks, str):
                try:
                    blocks = json.loads(blocks)
                except ValueError:
                    return _fail("invalid_blocks_format")
            if blocks is not None:
                problem = block_errors(blocks)
                if problem is not None:
                    return _fail(problem[0], errors=[problem[1]])
            text = params.get("text")
            if text is not None and not isinstance(text, str):
                text = str(text)
            if not text and not blocks and not params.get("attachments"):
                return _fail("no_text")
            if text and len(text) > MAX_TEXT:
                return _fail("msg_too_long")
            wait = self._buckets.take(channel)
            if wait:
                return _rate_limited(wait)
            metadata = params.get("metadata")
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    return _fail("invalid_metadata_format")
            if metadata is not None and not (
                isinstance(metadata, dict)
                and isinstance(metadata.get("event_type"), str)
                and isinstance(metadata.get("event_payload"), dict)
            ):
                return _fail("invalid_metadata_schema")
            ts = self._next_ts()
            thread_ts = params.get("thread_ts")
            self._messages.append(
                {
                    "channel": channel,
                    "ts": ts,
                    "text": text,
                    "blocks": copy.deepcopy(blocks),
                    "thread_ts": thread_ts,
                    "metadata": copy.deepcopy(metadata),
                    "payload": copy.deepcopy(params),
                }
            )
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": text or "",
            "ts": ts,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
        }
        if blocks:
            message["blocks"] = blocks
        if thread_ts:
            message["thread_ts"] = thread_ts
        if metadata:
            message["metadata"] = metadata
        return _ok({"channel": channel, "ts": ts, "message": message})

    def _history(self, params: Params) -> Response:
        """``conversations.history``: the channel's messages, newest first, ``limit`` a page
        (default 100, at most 999), ``next_cursor`` while ``has_more``; no channel actions
        (workflow shortcuts) here, so ``channel_actions_ts`` is null and the count 0."""
        with self._lock:
            channel = self._resolve_channel(params.get("channel"))
            if channel is None:
                return _fail("channel_not_found")
            try:
                limit = int(params.get("limit") or 100)
                oldest = float(params.get("oldest") or 0)
                latest = float(params.get("latest") or 0) or float("inf")
                offset = int(str(params.get("cursor") or "0").removeprefix("o:") or 0)
            except ValueError:
                return _fail("invalid_arguments")
            if not 1 <= limit <= 999:
                limit = 100
            inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
            with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
            rows = [
                m
                for m in reversed(self._messages)
                if m["channel"] == channel
                and (
                    oldest <= float(m["ts"]) <= latest
                    if inclusive
                    else oldest < float(m["ts"]) < latest
                )
            ]
            page = rows[offset : offset + limit]
            more = offset + limit < len(rows)
            messages = []
            for m in page:
                out: dict[str, Any] = {
                    "type": "message",
                    "subtype": "bot_message",
                    "text": m["text"] or "",
                    "ts": m["ts"],
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "team": TEAM_ID,
                }
                if m["blocks"]:
                    out["blocks"] = copy.deepcopy(m["blocks"])
                if with_metadata and m.get("metadata"):
                    out["metadata"] = copy.deepcopy(m["metadata"])
                messages.append(out)
        return _ok(
            {
                "messages": messages,
                "has_more": more,
                "pin_count": 0,
                "channel_actions_ts": None,
                "channel_actions_count": 0,
                "response_metadata": {"next_cursor": f"o:{offset + limit}" if more else ""},
            }
        )
