"""Mailchimp Marketing API 3.0 over httpx: campaign reports and per-member email activity.

The host carries the data centre of the API key (``…-us6`` → ``https://us6.api.mailchimp.com/3.0``;
``MAILCHIMP_BASE_URL`` overrides it). Basic auth, any user name, the key as password. Lists page
with ``count`` (≤1000) / ``offset`` until ``total_items``. The throttle is *concurrency*: 10
simultaneous connections per key, beyond which Mailchimp answers 429 (problem+json, no
rate-limit headers, no Retry-After) — so this client holds at most ``max_connections`` requests
at once and backs off exponentially on 429.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from connectors.mailchimp.settings import MailchimpSettings
from healthscore.core.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthscoreError,
    RateLimited,
    RetriableError,
    http_action,
)
from healthscore.core.retry import RetryPolicy, call_with_retry, header, retry_after

_DC = re.compile(r"^[a-z]{2,}[0-9]+$")


def base_url_for(api_key: str, override: str | None = None) -> str:
    """The API root for a key: the override, else from the key's data-centre suffix."""
    if override:
        return override.rstrip("/")
    dc = api_key.rsplit("-", 1)[1] if "-" in api_key else ""
    if not _DC.match(dc):
        raise ConfigError(
            "MAILCHIMP_API_KEY does not end in a data centre (like -us6); "
            "check the key or set MAILCHIMP_BASE_URL"
        )
    return f"https://{dc}.api.mailchimp.com/3.0"


# Transactional error names → the status they stand for (the 1.3 API sent 500 for them all)
TRANSACTIONAL_NAMES = {
    "Invalid_Key": 401,
    "PaymentRequired": 402,
    "Unknown_Template": 404,
    "Unknown_Subaccount": 404,
    "ValidationError": 400,
    "RequestLimitExceeded": 429,
}


def classify(
    resp: httpx.Response, what: str, *, api: Literal["marketing", "transactional"] = "marketing"
) -> HealthscoreError:
    """The package's one mapping of an error answer to what the caller should do, for both
    APIs (``http_action``'s policy): Marketing's RFC 7807 problem+json, and Transactional's
    ``{"status": "error", "name", "message"}``, classified by ``name`` since the 1.3 API
    answered every error with a 500. A bare 403 (no problem body) is Marketing's overloaded
    edge, not a refusal: it is retried."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) else {}
    status, wait = resp.status_code, retry_after(header(resp.headers, "Retry-After"))
    if api == "transactional":
        key, product = "MANDRILL_API_KEY", f"Mailchimp Transactional {what}"
        name = str(problem.get("name") or "")
        status = TRANSACTIONAL_NAMES.get(name, status if status >= 400 else 500)
        message = str(problem.get("message") or resp.reason_phrase or status)
        message = f"{name}: {message}" if name else message
        busy, rejected = "too many requests", ""
    else:
        key, product = "MAILCHIMP_API_KEY", f"Mailchimp {what}"
        title = str(problem.get("title") or resp.reason_phrase or status)
        detail = str(problem.get("detail") or "")
        message = f"{title}: {detail}" if detail else title
        busy = "too many simultaneous requests"  # the throttle is 10 connections per key
        rejected = "; a key from another data centre than the URL's is rejected too"
        if status == 403 and not problem:  # an overloaded edge answers a bare 403
            return RetriableError(f"{product}: {status} {message}", retry_after=wait)
    action = http_action(status)
    if action == "rate_limited":
        return RateLimited(f"{product}: {busy} ({message})", retry_after=wait)
    if action == "retry":
        return RetriableError(f"{product}: {status} {message}", retry_after=wait)
    if status == 401:
        return AuthError(f"{product}: {key} was rejected ({message}){rejected}")
    if action == "auth":
        return AuthError(f"{product}: {key} may not do this ({message})")
    return FatalError(f"{product}: {status} {message}")


class MailchimpClient:
    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        max_connections: int = 10,
        timeout: float = 120.0,
    ) -> None:
        root = base_url_for(api_key, base_url)
        self.http = httpx.Client(
            base_url=root,
            auth=httpx.BasicAuth("healthscore", api_key),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "healthscore"},
            limits=httpx.Limits(max_connections=max_connections),
        )
        self.retry = retry or RetryPolicy()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0

    @classmethod
    def from_settings(cls, settings: MailchimpSettings, **kwargs: Any) -> MailchimpClient:
        return cls(settings.require_mailchimp(), settings.mailchimp_base_url, **kwargs)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            with self._slots:
                with self._lock:
                    self.requests += 1
                try:
                    resp = self.http.get(path.lstrip("/"), params=params)
                except httpx.TransportError as exc:
                    raise RetriableError(
                        f"Mailchimp GET {path}: {exc.__class__.__name__}"
                    ) from None
            if resp.status_code >= 400:
                if resp.status_code == 429:
                    with self._lock:
                        self.rate_limited += 1
                raise classify(resp, f"GET {path}")
            try:
                data = resp.json()
            except ValueError:
                raise RetriableError(f"Mailchimp GET {path}: answer is not JSON") from None
            if not isinstance(data, dict):
                raise FatalError(f"Mailchimp GET {path}: answer is not an object")
            return data

        return call_with_retry(once, self.retry, what=f"Mailchimp GET {path}")

    def pages(
        self, path: str, key: str, params: dict[str, Any] | None = None, *, count: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint (``count``/``offset`` until ``total_items``)."""
        offset = 0
        while True:
            data = self.get(path, {**(params or {}), "count": count, "offset": offset})
            items = data.get(key)
            if not isinstance(items, list):
                raise FatalError(f"Mailchimp GET {path}: answer has no {key!r} list")
            yield items
            offset += len(items)
            total = data.get("total_items")
            if not items or not isinstance(total, int) or offset >= total:
                return


def pull_reports(
    client: MailchimpClient, since_send_time: str, *, count: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Campaign reports sent since ``since_send_time`` (ISO-8601)."""
    yield from client.pages(
        "/reports",
        "reports",
        {
            "since_send_time": since_send_time,
            "fields": "reports.id,reports.campaign_title,reports.send_time,reports.emails_sent,"
            "reports.type,total_items",
        },
        count=count,
    )


def pull_email_activity(
    client: MailchimpClient, campaign_id: str, since: str | None = None, *, count: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Per-member activity of one campaign (only activity after ``since``, when given)."""
    params = {"since": since} if since else {}
    yield from client.pages(f"/reports/{campaign_id}/email-activity", "emails", params, count=count)


def pull_unsubscribed(
    client: MailchimpClient, campaign_id: str, *, count: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Members who unsubscribed through one campaign."""
    yield from client.pages(f"/reports/{campaign_id}/unsubscribed", "unsubscribes", count=count)
