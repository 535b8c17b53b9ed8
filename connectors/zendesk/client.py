"""An httpx client for the Zendesk Support API: Basic token auth, pacing, typed errors.

Every request goes through the shared ``call_with_retry``. Two budgets pace the client *before*
each request, so it stays under Zendesk's limits instead of collecting 429s: the account-wide
requests per minute (700 on Enterprise), and, for the incremental export endpoints, their own
10 requests per minute. Both are token buckets (``healthscore.core.quota``), shared by every worker
through Redis when it answers. The export bucket holds one token less than the vendor's, so a
request arriving a few milliseconds early never finds Zendesk's bucket empty.

Responses are classified once, here:

- 429 → ``RateLimited`` with ``Retry-After`` (the account 429 may be plain text: never parsed);
- 408, 5xx, timeouts, refused connections → ``RetriableError`` (``Retry-After`` honoured);
- 401 → ``AuthError`` naming ZENDESK_EMAIL / ZENDESK_API_TOKEN (never their values);
- 403 → ``AuthError``: the user is not an admin (incremental exports need one);
- 400/422 "Too recent start_time" → ``StartTimeTooRecent`` (the caller waits for the next run);
- any other 4xx → ``FatalError`` with Zendesk's ``error``/``description``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from connectors.zendesk.settings import ZendeskSettings
from healthscore.core.errors import AuthError, FatalError, RateLimited, RetriableError, http_action
from healthscore.core.quota import LocalQuota, SharedQuota, make_quota
from healthscore.core.retry import RetryPolicy, call_with_retry, header, retry_after

log = logging.getLogger(__name__)
Quota = LocalQuota | SharedQuota
MINUTE = 60.0
DEFAULT_RETRY = RetryPolicy(max_wait=90.0)  # Zendesk's Retry-After is up to a minute


class StartTimeTooRecent(FatalError):
    """Zendesk refused ``start_time`` as less than a minute old (its clock is behind ours)."""


def _error_text(response: httpx.Response) -> str:
    """Zendesk's ``error``/``description`` when the body is JSON, else its first 200 chars."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return str(body)[:200]
    error, description = body.get("error"), body.get("description")
    if isinstance(error, dict):  # some endpoints nest {"title", "message"}
        error, description = error.get("title"), error.get("message")
    return ": ".join(str(p) for p in (error, description) if p) or response.text[:200]


def classify(response: httpx.Response, what: str) -> Exception | None:
    """None for a 2xx; else the error saying what the caller should do (``http_action``'s
    policy, departing only for "Too recent start_time")."""
    status = response.status_code
    if status < 300:
        return None
    text = _error_text(response)
    wait = retry_after(header(response.headers, "Retry-After"))
    action = http_action(status)
    if action == "rate_limited":
        return RateLimited(f"Zendesk {what}: rate limited ({text})", retry_after=wait or MINUTE)
    if action == "retry":
        return RetriableError(f"Zendesk {what}: {status} {text}", retry_after=wait)
    if status == 401:
        return AuthError(
            f"Zendesk {what}: credentials rejected (401 {text}); check "
            "ZENDESK_EMAIL (an agent's email; '/token' is added for you) and "
            "ZENDESK_API_TOKEN"
        )
    if action == "auth":
        return AuthError(
            f"Zendesk {what}: forbidden (403 {text}); the user in ZENDESK_EMAIL "
            "must be an admin to read incremental exports and CSAT"
        )
    if status in (400, 422) and "too recent start_time" in text.lower():
        return StartTimeTooRecent(f"Zendesk {what}: {text}")
    return FatalError(f"Zendesk {what}: {status} {text}")


class ZendeskClient:
    """``GET`` JSON from ``ZENDESK_BASE_URL`` (or ``https://{subdomain}.zendesk.com/api/v2/``)."""

    def __init__(
        self,
        settings: ZendeskSettings,
        *,
        requests_per_minute: float = 700,
        export_requests_per_minute: float = 10,
        retry: RetryPolicy | None = None,
        quota: Quota | None = None,
        export_quota: Quota | None = None,
        limit_scale: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        """``limit_scale`` shortens Zendesk's minute (only the sandbox does that, to run tests
        and benchmarks faster under the same limits)."""
        email, token, base = settings.require_zendesk()
        self.base_url = base.rstrip("/") + "/"
        self.retry = retry or DEFAULT_RETRY
        name = httpx.URL(self.base_url).host
        self.quota = quota or make_quota(
            settings.redis_url,
            f"zendesk:{name}",
            requests_per_minute * limit_scale / MINUTE,
            max(1, int(requests_per_minute) - 1),
        )
        self.export_quota = export_quota or make_quota(
            settings.redis_url,
            f"zendesk-export:{name}",
            export_requests_per_minute * limit_scale / MINUTE,
            max(1, int(export_requests_per_minute) - 1),
        )
        # verify stays on: httpx checks certificates for every https URL
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            verify=True,
            auth=httpx.BasicAuth(f"{email}/token", token),
            headers={"Accept": "application/json", "User-Agent": "healthscore-zendesk"},
        )
        self.requests = 0
        self.rate_limited = 0
        self._count = threading.Lock()  # a sync reads its lists and the export at once

    def close(self) -> None:
        self._http.close()

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        export: bool = False,
        what: str = "",
    ) -> dict[str, Any]:
        """One GET (``path`` relative to the base URL, or a full ``next`` URL) → its JSON."""
        what = what or path.split("?")[0]

        def once() -> dict[str, Any]:
            if export:
                self.export_quota.acquire()
            self.quota.acquire()
            with self._count:
                self.requests += 1
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                raise RetriableError(f"Zendesk {what}: {exc.__class__.__name__}: {exc}") from None
            error = classify(response, what)
            if error is not None:
                if isinstance(error, RateLimited):
                    with self._count:
                        self.rate_limited += 1
                raise error
            try:
                body = orjson.loads(response.content)
            except ValueError:
                raise RetriableError(
                    f"Zendesk {what}: a 200 without a JSON body ({response.text[:80]!r})"
                ) from None
            if not isinstance(body, dict):
                raise FatalError(
                    f"Zendesk {what}: expected a JSON object, got {type(body).__name__}"
                )
            return body

        return call_with_retry(once, self.retry, what=f"Zendesk {what}")
