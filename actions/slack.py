"""Slack at-risk alerts: Block Kit built with slack-sdk's models, untrusted text escaped.

Rate limits: we pace each channel ourselves (Slack allows about one message per second per
channel). slack-sdk's own retry handlers are off: every call goes through the shared retry
policy (``healthscore.core.retry``), which waits a 429's ``Retry-After`` (plus jitter) when it is
short and sends a long one back to the caller (the task retries later) instead of pinning a
worker. A post is retried only when Slack provably did not take it (429, no connection).

Every message carries its idempotency key in the message ``metadata``
(``event_type: healthscore_action``, ``event_payload: {"key": ...}``), so a post whose outcome
is unknown (timeout, worker killed after Slack accepted it) is looked up with
``conversations.history`` instead of being re-posted or left to a human.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from actions.governance_alerts import build_override_expiring, build_source_stale
from actions.mrkdwn import escape_mrkdwn, link
from connectors.outbound import Unreachable
from healthscore.core.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthscoreError,
    RateLimited,
    RetriableError,
    http_action,
)
from healthscore.core.quota import LocalQuota
from healthscore.core.retry import RetryPolicy, call_with_retry, header, retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    risk = churn_text(payload)
    if risk:
        details.append(f"Churn risk: {risk}")
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


def churn_text(payload: dict[str, Any]) -> str:
    """The churn risk as "12.3% within 30d (ARR at risk 18,000)"; empty without a model."""
    p, days = payload.get("churn_probability"), payload.get("churn_horizon_days")
    if p is None or days is None:
        return ""
    text = f"{100 * float(p):.1f}% within {int(days)}d"
    if payload.get("arr_at_risk") is not None:
        text += f" (ARR at risk {float(payload['arr_at_risk']):,.0f})"
    return text


def by_risk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Digest items, most at risk first: by ARR at risk when any item has one, else by churn
    probability when any has one, else as they came (items without a value last)."""
    for key in ("arr_at_risk", "churn_probability"):
        if any(i.get(key) is not None for i in items):
            return sorted(
                items, key=lambda i: -float(i[key]) if i.get(key) is not None else float("inf")
            )
    return list(items)


DIGEST_SHOWN = 40  # accounts listed in one digest message; the rest are counted


def build_digest(payload: dict[str, Any]) -> dict[str, Any]:
    """One message for everything a rule matched in a period (``payload["items"]``), the
    accounts with the most ARR at risk (or the likeliest to churn) first."""
    items = by_risk(payload.get("items", []))
    rule = escape_mrkdwn(str(payload.get("rule", "")))
    period = escape_mrkdwn(str(payload.get("period", "")))
    lines = []
    for item in items[:DIGEST_SHOWN]:
        score = item.get("score")
        score_text = "–" if score is None else f"{score:.0f}"
        risk = churn_text(item)
        lines.append(
            f"• {GRADE_EMOJI.get(str(item.get('grade')), '')} "
            f"{link(item.get('crm_url'), str(item.get('name', '')))} — "
            f"{escape_mrkdwn(str(item.get('why', '')))} (score {score_text}"
            + (f", churn risk {risk})" if risk else ")")
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
#: the bot token scopes the calls of SlackAlerter need (auth.test needs none), with the call
#: that needs each: what ``check`` requires and ``classify`` names on an auth error
REQUIRED_SCOPES = {
    "chat:write": "chat.postMessage: alerts and digests",
    "users:read.email": "users.lookupByEmail: mention the account owner",
    "channels:history": "conversations.history: find an alert whose answer was lost",
}


class SlackAlerter:
    """Posts alerts, paces each channel, looks owners up by email (cached)."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://slack.com/api/",
        messages_per_second: float = 1.0,
        max_retry_wait: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        # retry_handlers=[]: slack-sdk's default handler would also retry a connection lost
        # *after* the request was sent (re-posting a message Slack may have posted), and sleep
        # on its own; every retry and wait goes through ``self.retry`` instead
        self.client = WebClient(token=token, base_url=base_url, timeout=30, retry_handlers=[])
        # 4 attempts: a 429 is waited out up to three times, as long as each wait is short
        self.retry = retry or RetryPolicy(attempts=4, max_wait=max_retry_wait)
        self.messages_per_second = messages_per_second
        self._pacers: dict[str, LocalQuota] = {}
        self._users: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.messages_posted = 0

    def _call(self, what: str, fn: Callable[[], T], *, post: bool = False) -> T:
        """One Web API call through the retry policy, its errors typed by ``classify``. A
        ``post`` is retried only when Slack provably did not take it (429, no connection)."""

        def once() -> T:
            try:
                return fn()
            except SlackApiError as exc:
                raise classify(exc, what) from None
            except URLError as exc:  # the request never reached Slack: safe to send again
                raise Unreachable(
                    f"Slack unreachable at {self.client.base_url}: {exc.reason}"
                ) from None

        retry_on = (RateLimited, Unreachable) if post else (RetriableError,)
        return call_with_retry(once, self.retry, what=f"Slack {what}", retry_on=retry_on)

    def check(self) -> str:
        """auth.test: fail early, with a clear error, on a bad token or one missing a scope
        a call above needs (Slack lists the token's in ``x-oauth-scopes``); the workspace."""
        resp = self._call("auth.test", self.client.auth_test)
        team = str(resp["team"])
        raw = header(resp.headers, "x-oauth-scopes")
        if raw is None:
            raise AuthError(
                f"Slack auth.test: workspace {team!r} did not report the token's scopes "
                "(x-oauth-scopes); use a bot token (xoxb-…) of a Slack app"
            )
        granted = {s.strip() for s in str(raw).split(",") if s.strip()}
        missing = [s for s in REQUIRED_SCOPES if s not in granted]
        if missing:
            raise AuthError(
                f"Slack workspace {team!r}: SLACK_BOT_TOKEN lacks the scope(s) "
                + ", ".join(f"{s} ({REQUIRED_SCOPES[s]})" for s in missing)
                + " — add them to the app's bot token scopes and reinstall it"
            )
        return team

    def mention(self, email: str | None) -> str | None:
        if not email:
            return None
        if email not in self._users:

            def lookup() -> Any:
                try:
                    return self.client.users_lookupByEmail(email=email)["user"]
                except SlackApiError as exc:
                    if exc.response.get("error") == "users_not_found":
                        return None  # no Slack account: named, not mentioned
                    raise

            try:
                user = self._call("users.lookupByEmail", lookup)
            except Unreachable:  # nothing was posted: the alert can wait for the next run
                raise
            except HealthscoreError as exc:
                log.warning("Slack users.lookupByEmail failed: %s", exc)
                user = None
            except Exception as exc:  # e.g. a timeout: post without the mention, not lose it
                log.warning("Slack users.lookupByEmail failed: %s", exc)
                return None
            self._users[email] = None if user is None else f"<@{user['id']}>"
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
        resp = self._call(
            f"chat.postMessage to {channel}",
            lambda: self.client.chat_postMessage(channel=channel, unfurl_links=False, **message),
            post=True,
        )
        self.messages_posted += 1
        return str(resp["ts"])

    def find(self, channel: str, key: str, *, oldest: float, pages: int = 20) -> str | None:
        """The ``ts`` of the message carrying ``key`` posted since ``oldest`` (epoch seconds),
        read back with ``conversations.history``; None when there is none."""
        cursor = None
        for _ in range(pages):
            resp = self._call(
                f"conversations.history of {channel}",
                lambda c=cursor: self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest:.6f}",
                    limit=200,
                    cursor=c,
                    include_all_metadata=True,
                ),
            )
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
        """At most ``messages_per_second`` per channel; the wait is the retry policy's sleep."""
        with self._lock:
            pacer = self._pacers.get(channel)
            if pacer is None:
                pacer = LocalQuota(self.messages_per_second, 1, sleep=self.retry.sleep)
                self._pacers[channel] = pacer
        pacer.acquire()


def classify(exc: SlackApiError, method: str) -> HealthscoreError:
    """Slack's one error mapping: ``http_action``'s policy on the HTTP status, and Slack's
    ``error`` string for the answers it sends as 200 + ``ok: false``."""
    status = exc.response.status_code
    error = str(exc.response.get("error", ""))
    action = http_action(status) if status >= 400 else None
    wait = retry_after(header(exc.response.headers, "Retry-After"))
    if action == "rate_limited" or error in {"ratelimited", "rate_limited"}:
        return RateLimited(f"Slack {method} rate limited", retry_after=wait)
    if action == "retry" or error in {"internal_error", "fatal_error", "request_timeout"}:
        return RetriableError(f"Slack {method}: {error or status}", retry_after=wait)
    if action == "auth" or error in AUTH_ERRORS:
        return AuthError(
            f"Slack {method}: {error or status} — check SLACK_BOT_TOKEN and the app's scopes "
            f"({', '.join(REQUIRED_SCOPES)})"
        )
    if error in {"channel_not_found", "not_in_channel", "is_archived"}:
        return ConfigError(
            f"Slack {method}: {error} — check the alert channel and invite the bot to it"
        )
    return FatalError(f"Slack {method}: {error or status}")
