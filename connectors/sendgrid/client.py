"""SendGrid v3 over httpx: every call retried and classified the same way.

Rate limits are per endpoint: every response carries ``X-RateLimit-Limit``, ``-Remaining`` and
``-Reset`` (epoch seconds) and there is no ``Retry-After``. So a 429 waits until the endpoint's
``X-RateLimit-Reset``, and a response saying ``Remaining: 0`` makes the next request to that
endpoint wait for the reset first (no 429 spent). 5xx and connection errors back off; 401/403
stop with the variable to fix. The key is never logged or put in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from connectors.sendgrid.settings import SendGridSettings
from healthscore.core.errors import (
    AuthError,
    FatalError,
    HealthscoreError,
    RateLimited,
    RetriableError,
)
from healthscore.core.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)
ACTIVITY_LIMIT = 1000  # /v3/messages answers at most this many, with no paging


def _message(resp: httpx.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        return (
            "; ".join(
                str(e.get("message")) + (f" ({e['field']})" if e.get("field") else "")
                for e in errors
                if isinstance(e, dict)
            )
            or resp.reason_phrase
        )
    except (ValueError, AttributeError):
        return resp.reason_phrase or str(resp.status_code)


def classify(resp: httpx.Response, what: str, now: float) -> HealthscoreError:
    """A SendGrid error response → what the caller should do about it."""
    status, message = resp.status_code, _message(resp)
    if status == 429:
        reset = resp.headers.get("X-RateLimit-Reset")
        wait = max(0.0, float(reset) - now) if reset and reset.isdigit() else None
        return RateLimited(f"SendGrid {what}: rate limited ({message})", retry_after=wait)
    if status >= 500:
        return RetriableError(f"SendGrid {what}: {status} {message}")
    if status == 401:
        return AuthError(f"SendGrid {what}: SENDGRID_API_KEY was rejected ({message})")
    if status == 403:
        return AuthError(
            f"SendGrid {what}: SENDGRID_API_KEY lacks the access for this endpoint ({message})"
        )
    return FatalError(f"SendGrid {what}: {status} {message}")


class SendGridClient:
    """GETs against ``SENDGRID_BASE_URL`` (the sandbox in tests and the demo)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.sendgrid.com",
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "healthscore",
            },
        )
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.requests = 0
        self.rate_limited = 0
        self._exhausted: dict[str, float] = {}  # endpoint → reset epoch, after Remaining: 0

    @classmethod
    def from_settings(cls, settings: SendGridSettings, **kwargs: Any) -> SendGridClient:
        return cls(settings.require_sendgrid(), settings.sendgrid_base_url, **kwargs)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        def once() -> Any:
            reset = self._exhausted.pop(path, None)
            if reset is not None and reset > self.clock():
                self.retry.sleep(reset - self.clock())
            self.requests += 1
            try:
                resp = self.http.get(path, params=params)
            except httpx.TransportError as exc:
                raise RetriableError(f"SendGrid GET {path}: {exc.__class__.__name__}") from None
            remaining, reset_at = (
                resp.headers.get("X-RateLimit-Remaining"),
                resp.headers.get("X-RateLimit-Reset"),
            )
            if remaining == "0" and reset_at and reset_at.isdigit():
                self._exhausted[path] = float(reset_at)
            if resp.status_code >= 400:
                if resp.status_code == 429:
                    self.rate_limited += 1
                self._exhausted.pop(path, None)  # the 429's own wait covers it
                raise classify(resp, f"GET {path}", self.clock())
            try:
                return resp.json()
            except ValueError:
                raise RetriableError(f"SendGrid GET {path}: answer is not JSON") from None

        return call_with_retry(once, self.retry, what=f"SendGrid GET {path}")


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_activity(
    client: SendGridClient,
    start: datetime,
    end: datetime,
    *,
    limit: int = ACTIVITY_LIMIT,
    min_window: timedelta = timedelta(seconds=1),
) -> Iterator[list[dict[str, Any]]]:
    """Email Activity messages whose last event falls in [start, end], oldest slice first.

    The API has no paging (one answer of at most ``limit``): a full answer means there may be
    more, so the window is halved until each slice answers fewer than ``limit``.
    """
    slices = [(start, end)]
    while slices:
        a, b = slices.pop()
        query = f'last_event_time BETWEEN TIMESTAMP "{_stamp(a)}" AND TIMESTAMP "{_stamp(b)}"'
        data = client.get("/v3/messages", {"query": query, "limit": limit})
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            raise FatalError("SendGrid GET /v3/messages: answer has no 'messages' list")
        if len(messages) >= limit and b - a > min_window:
            mid = a + (b - a) / 2
            slices += [(mid, b), (a, mid)]  # the older half next
            continue
        if len(messages) >= limit:
            log.warning(
                "SendGrid activity: %d messages in one second at %s; some may be missing",
                len(messages),
                _stamp(a),
            )
        yield messages


def pull_suppressions(
    client: SendGridClient, kind: str, start: datetime, end: datetime, *, page_size: int = 500
) -> Iterator[list[dict[str, Any]]]:
    """``bounces`` or ``unsubscribes`` created in [start, end]; limit/offset pages, the last
    one shorter than ``page_size`` (SendGrid gives no total or next link)."""
    offset = 0
    while True:
        page = client.get(
            f"/v3/suppression/{kind}",
            {
                "start_time": int(start.timestamp()),
                "end_time": int(end.timestamp()),
                "limit": page_size,
                "offset": offset,
            },
        )
        if not isinstance(page, list):
            raise FatalError(f"SendGrid GET /v3/suppression/{kind}: answer is not a list")
        yield page
        if len(page) < page_size:
            return
        offset += page_size


def category_totals(
    client: SendGridClient, start: date, end: date, categories: list[str]
) -> dict[str, int]:
    """Summed metrics (delivered, unique_opens, …) over [start, end] — of the categories, or of
    all mail when none are given. Org-wide: the baseline the per-account rates compare with."""
    params: dict[str, Any] = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "aggregated_by": "month",
    }
    path = "/v3/stats"
    if categories:
        path, params["categories"] = "/v3/categories/stats", list(categories)
    totals: dict[str, int] = {}
    for day in client.get(path, params):
        for entry in day.get("stats") or []:
            for metric, value in (entry.get("metrics") or {}).items():
                if isinstance(value, int):
                    totals[metric] = totals.get(metric, 0) + value
    return totals
