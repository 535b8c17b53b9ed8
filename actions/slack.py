"""Slack at-risk alerts: Block Kit built with slack-sdk's models, untrusted text escaped.

Rate limits: we pace each channel ourselves (Slack allows about one message per second per
channel) and opt into slack-sdk's 429 handling, capped, so a long ``Retry-After`` goes back to
the caller (the task retries later) instead of pinning a worker.

Every message carries its idempotency key in the message ``metadata``
(``event_type: healthscore_action``, ``event_payload: {"key": ...}``), so a post whose outcome
is unknown (timeout, worker killed after Slack accepted it) is looked up with
``conversations.history`` instead of being re-posted or left to a human.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from actions.governance_alerts import build_override_expiring, build_source_stale
from actions.mrkdwn import escape_mrkdwn, link
from healthscore.core.errors import AuthError, ConfigError, FatalError, RateLimited, RetriableError

log = logging.getLogger(__name__)

GRADE_EMOJI = {
    "red": ":red_circle:",
    "yellow": ":large_yellow_circle:",
    "green": ":large_green_circle:",
    "insufficient_data": ":white_circle:",
}
NOT_RETRYABLE = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "restricted_action",
}
AUTH_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
}


def build_alert(payload: dict[str, Any], mention: str | None) -> dict[str, Any]:
    """Text and blocks for one account that entered red (or a governance note)."""
    template = payload.get("template")
    if template == "source_stale":
        return build_source_stale(payload)
    if template == "override_expiring":
        return build_override_expiring(payload, mention)
    name = str(payload["name"])
    score = payload.get("score")
    score_text = "–" if score is None else f"{score:.0f}"
    grade = str(payload.get("grade", "red"))
    delta = payload.get("delta")
    change = (
        ""
        if delta is None
        else f" ({'+' if delta >= 0 else '−'}{abs(delta):.0f} vs "
        f"{payload.get('delta_window', '7d')})"
    )
    if payload.get("override"):  # the grade is a CSM's call, not the score's
        change += " · CSM override"
    rule = payload.get("rule", "entered_red")
    if rule == "entered_red":
        headline = (
            f"{GRADE_EMOJI.get(grade, '')} *{link(payload.get('crm_url'), name)}* is "
            f"now *{grade}* at *{score_text}*{escape_mrkdwn(change)}"
        )
        fallback = (
            f"{escape_mrkdwn(name)} health is now {grade} at {score_text}{escape_mrkdwn(change)}"
        )
    else:  # another rule: say which and why
        why = escape_mrkdwn(str(payload.get("why", "")))
        headline = (
            f"{GRADE_EMOJI.get(grade, '')} *{link(payload.get('crm_url'), name)}*: "
            f"{why} — score *{score_text}* ({grade}){escape_mrkdwn(change)} "
            f"· rule `{escape_mrkdwn(str(rule))}`"
        )
        fallback = f"{escape_mrkdwn(name)}: {why} (score {score_text}, {grade})"
    details = []
    if mention:
        details.append(f"Owner: {mention}")
    elif payload.get("owner_name"):
        details.append(f"Owner: {escape_mrkdwn(str(payload['owner_name']))}")
    if payload.get("renewal_date"):
        details.append(f"Renewal: {escape_mrkdwn(str(payload['renewal_date']))}")
    if payload.get("arr") is not None:
        details.append(f"ARR: {float(payload['arr']):,.0f}")
    if payload.get("override"):
        o = payload["override"]
        details.append(
            f"Override {escape_mrkdwn(str(o.get('grade')))} by "
            f"{escape_mrkdwn(str(o.get('set_by')))} until "
            f"{escape_mrkdwn(str(o.get('expires_at', ''))[:10])} (computed: "
            f"{escape_mrkdwn(str(payload.get('computed_grade')))})"
        )
    if payload.get("stale_sources"):
        details.append(
            ":warning: Stale data from "
            + escape_mrkdwn(", ".join(map(str, payload["stale_sources"])))
        )
    reasons = [escape_mrkdwn(str(r)) for r in payload.get("reasons", [])]
    blocks = [SectionBlock(text=MarkdownTextObject(text=headline[:3000]))]
    if details:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="  ·  ".join(details))]))
    if reasons:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=("*Top reasons*\n" + "\n".join(f"• {r}" for r in reasons))[:3000]
                )
            )
        )
    # the notification text is mrkdwn too: an account named "<!channel> Inc" must not ping
    return {"text": fallback, "blocks": [b.to_dict() for b in blocks]}


DIGEST_SHOWN = 40  # accounts listed in one digest message; the rest are counted


def build_digest(payload: dict[str, Any]) -> dict[str, Any]:
    """One message for everything a rule matched in a period (``payload["items"]``)."""
    items = payload.get("items", [])
    rule = escape_mrkdwn(str(payload.get("rule", "")))
    period = escape_mrkdwn(str(payload.get("period", "")))
    lines = []
    for item in items[:DIGEST_SHOWN]:
        score = item.get("score")
        score_text = "–" if score is None else f"{score:.0f}"
        lines.append(
            f"• {GRADE_EMOJI.get(str(item.get('grade')), '')} "
            f"{link(item.get('crm_url'), str(item.get('name', '')))} — "
            f"{escape_mrkdwn(str(item.get('why', '')))} (score {score_text})"
        )
    if len(items) > DIGEST_SHOWN:
        lines.append(f"… and {len(items) - DIGEST_SHOWN} more")
    headline = f"*{len(items)} accounts* matched rule `{rule}` ({period})"
    blocks = [SectionBlock(text=MarkdownTextObject(text=headline))]
    text = ""
    for line in lines:  # section text is capped at 3000 characters: start another one
        if len(text) + len(line) + 1 > 3000:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
            text = ""
        text += ("\n" if text else "") + line
    if text:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    return {
        "text": f"{len(items)} accounts matched rule {rule} ({period})",
        "blocks": [b.to_dict() for b in blocks[:50]],
    }


METADATA_EVENT = "healthscore_action"


class CappedRateLimitHandler(RetryHandler):
    """Retry a 429 after its ``Retry-After`` (plus jitter) — only if that is short enough."""

    def __init__(self, max_retry_count: int = 3, max_wait: float = 30.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and self._retry_after(response) <= self.max_wait
        )

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        state.increment_current_attempt()
        wait = self._retry_after(response) if response is not None else 1.0
        time.sleep(wait + random.random() * 0.5)

    @staticmethod
    def _retry_after(response: HttpResponse) -> float:
        values = response.headers.get("retry-after") or response.headers.get("Retry-After")
        try:
            return float(values[0] if isinstance(values, list) else values)
        except (TypeError, ValueError, IndexError):
            return 1.0


class SlackAlerter:
    """Posts alerts, paces each channel, looks owners up by email (cached)."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://slack.com/api/",
        messages_per_second: float = 1.0,
        max_retry_wait: float = 30.0,
    ) -> None:
        # slack-sdk's default handler also retries a connection lost *after* the request was
        # sent, which re-posts a message Slack may already have posted. Only a URLError (the
        # request never got out: refused, DNS, TLS) is retried here.
        self.client = WebClient(
            token=token,
            base_url=base_url,
            timeout=30,
            retry_handlers=[
                ConnectionErrorRetryHandler(error_types=[URLError]),
                CappedRateLimitHandler(max_wait=max_retry_wait),
            ],
        )
        self.interval = 1.0 / messages_per_second
        self._last_post: dict[str, float] = {}
        self._users: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.messages_posted = 0

    def check(self) -> str:
        """auth.test: fail early, with a clear error, on a bad token."""
        try:
            return str(self.client.auth_test()["team"])
        except SlackApiError as exc:
            raise _map_error(exc, "auth.test") from None

    def mention(self, email: str | None) -> str | None:
        if not email:
            return None
        if email not in self._users:
            try:
                user = self.client.users_lookupByEmail(email=email)["user"]
                self._users[email] = f"<@{user['id']}>"
            except SlackApiError as exc:
                if exc.response.get("error") != "users_not_found":
                    log.warning("Slack users.lookupByEmail failed: %s", exc.response.get("error"))
                self._users[email] = None
            except URLError as exc:  # nothing was posted: the alert can wait for the next run
                raise RetriableError(
                    f"Slack unreachable at {self.client.base_url}: {exc.reason}"
                ) from None
            except Exception as exc:  # e.g. a timeout: post without the mention, not lose it
                log.warning("Slack users.lookupByEmail failed: %s", exc)
                return None
        return self._users[email]

    def post(self, channel: str, message: dict[str, Any], *, key: str | None = None) -> str:
        """Post and return the message ``ts``; errors are typed for the delivery loop.

        ``key`` (the idempotency key) travels in the message metadata for :meth:`find`.
        """
        self._pace(channel)
        if key is not None:
            message = {
                **message,
                "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            }
        try:
            resp = self.client.chat_postMessage(channel=channel, unfurl_links=False, **message)
        except SlackApiError as exc:
            raise _map_error(exc, f"chat.postMessage to {channel}") from None
        except URLError as exc:  # the request never reached Slack: safe to send again later
            raise RetriableError(
                f"Slack unreachable at {self.client.base_url}: {exc.reason}"
            ) from None
        self.messages_posted += 1
        return str(resp["ts"])

    def find(self, channel: str, key: str, *, oldest: float, pages: int = 20) -> str | None:
        """The ``ts`` of the message carrying ``key`` posted since ``oldest`` (epoch seconds),
        read back with ``conversations.history``; None when there is none."""
        cursor = None
        for _ in range(pages):
            try:
                resp = self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest:.6f}",
                    limit=200,
                    cursor=cursor,
                    include_all_metadata=True,
                )
            except SlackApiError as exc:
                raise _map_error(exc, f"conversations.history of {channel}") from None
            except URLError as exc:
                raise RetriableError(
                    f"Slack unreachable at {self.client.base_url}: {exc.reason}"
                ) from None
            for message in resp.get("messages", []):
                meta = message.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT
                    and (meta.get("event_payload") or {}).get("key") == key
                ):
                    return str(message["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
        raise RetriableError(
            f"Slack conversations.history of {channel}: more than {pages} "
            f"pages since the alert was queued; not reconciled yet"
        )

    def _pace(self, channel: str) -> None:
        with self._lock:
            now = time.monotonic()
            due = self._last_post.get(channel, 0.0) + self.interval
            self._last_post[channel] = max(now, due)
        if due > now:
            time.sleep(due - now)


def _map_error(exc: SlackApiError, method: str) -> Exception:
    status = exc.response.status_code
    error = str(exc.response.get("error", ""))
    if status == 429 or error in {"ratelimited", "rate_limited"}:
        retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
            "retry-after"
        )
        try:
            wait = float(retry_after[0] if isinstance(retry_after, list) else retry_after)
        except (TypeError, ValueError, IndexError):
            wait = None
        return RateLimited(f"Slack {method} rate limited", retry_after=wait)
    if status >= 500 or error in {"internal_error", "fatal_error", "request_timeout"}:
        return RetriableError(f"Slack {method}: {error or status}")
    if error in AUTH_ERRORS:
        return AuthError(
            f"Slack {method}: {error} — check SLACK_BOT_TOKEN and the app's scopes "
            f"(chat:write, users:read.email)"
        )
    if error in {"channel_not_found", "not_in_channel", "is_archived"}:
        return ConfigError(
            f"Slack {method}: {error} — check the alert channel and invite the bot to it"
        )
    return FatalError(f"Slack {method}: {error or status}")
