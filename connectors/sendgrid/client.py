"""SendGrid v3 over httpx: the package's one client. The engagement pull, ``check`` and the
tech-touch sender all go through it, so every call is authenticated, retried and classified
the same way (``classify`` is the package's one error mapping).

Rate limits are per endpoint: every response carries ``X-RateLimit-Limit``, ``-Remaining`` and
``-Reset`` (epoch seconds) and there is no ``Retry-After``. So a 429 waits until the endpoint's
``X-RateLimit-Reset``, and a response saying ``Remaining: 0`` makes the next request to that
endpoint wait for the reset first (no 429 spent); both waits go through the shared retry
policy, which sends a wait longer than its cap back to the caller. 5xx and connection errors
back off; 401/403 stop with the variable to fix. The key is never logged or put in a message.

Suppression lists are read whole and kept on the client for ``suppression_ttl`` seconds: the
sync's pull refreshes them (keeping the entries created in its window) and the sender reuses
them, so a cycle that syncs and delivers reads each list once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx

from connectors.outbound import Unreachable, transport_error
from connectors.sendgrid.settings import SendGridSettings
from healthscore.core.errors import (
    AuthError,
    FatalError,
    HealthscoreError,
    RateLimited,
    RetriableError,
    http_action,
)
from healthscore.core.retry import RetryPolicy, call_with_retry, header, retry_after, until_reset

log = logging.getLogger(__name__)
T = TypeVar("T")
ACTIVITY_LIMIT = 1000  # /v3/messages answers at most this many, with no paging
SUPPRESSION_PAGE = 500  # the suppression endpoints' largest page
# A list a few minutes old costs at worst a "dropped" event instead of a "skipped" intent:
# SendGrid itself drops mail to a suppressed recipient.
SUPPRESSION_TTL = 300.0


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
    """A SendGrid error answer → what the caller should do (``http_action``'s policy). A 429
    carries no Retry-After: its wait is until ``X-RateLimit-Reset`` (epoch seconds)."""
    status, message = resp.status_code, _message(resp)
    action = http_action(status)
    if action == "rate_limited":
        wait = until_reset(resp.headers.get("X-RateLimit-Reset"), now=now)
        return RateLimited(f"SendGrid {what}: {message}", retry_after=wait)
    if action == "retry":
        wait = retry_after(header(resp.headers, "Retry-After"), now=now)
        return RetriableError(f"SendGrid {what}: {status} {message}", retry_after=wait)
    if status == 401:
        return AuthError(f"SendGrid {what}: SENDGRID_API_KEY was rejected ({message})")
    if action == "auth":
        return AuthError(
            f"SendGrid {what}: SENDGRID_API_KEY lacks the access for this endpoint ({message}); "
            "give the key the scope (stats, suppressions read, mail.send) and verify the sender"
        )
    return FatalError(f"SendGrid {what}: {status} {message}")


def _json(resp: httpx.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise RetriableError(f"SendGrid {what}: answer is not JSON") from None


class SendGridClient:
    """Requests against ``SENDGRID_BASE_URL`` (the sandbox in tests and the demo)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.sendgrid.com",
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        suppression_ttl: float = SUPPRESSION_TTL,
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
        self.suppression_ttl = suppression_ttl
        self.requests = 0
        self.rate_limited = 0
        self._exhausted: dict[str, float] = {}  # endpoint → reset epoch, after Remaining: 0
        self._lists: dict[str, tuple[float, list[Any]]] = {}  # path → (read at, entries)
        self._lists_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SendGridSettings, **kwargs: Any) -> SendGridClient:
        return cls(settings.require_sendgrid(), settings.sendgrid_base_url, **kwargs)

    def close(self) -> None:
        self.http.close()

    def _call(
        self,
        method: str,
        path: str,
        read: Callable[[httpx.Response], T],
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        what: str | None = None,
    ) -> T:
        """One request through the retry policy. A write (mail send) is retried only when
        SendGrid provably did not take it (429, no connection); a 5xx goes up at once."""
        what = what or f"{method} {path}"
        write = method != "GET"

        def once() -> T:
            reset = self._exhausted.pop(path, None)
            if reset is not None and reset > self.clock():
                raise RateLimited(
                    f"SendGrid {what}: the endpoint's window is spent (X-RateLimit-Remaining: 0)",
                    retry_after=reset - self.clock(),
                )
            self.requests += 1
            try:
                resp = self.http.request(method, path, params=params, json=body)
            except httpx.HTTPError as exc:
                if write:
                    raise transport_error(exc, f"SendGrid {what}") from None
                raise RetriableError(f"SendGrid {what}: {exc.__class__.__name__}") from None
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
                raise classify(resp, what, self.clock())
            return read(resp)

        retry_on = (RateLimited, Unreachable) if write else (RetriableError,)
        return call_with_retry(once, self.retry, what=f"SendGrid {what}", retry_on=retry_on)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` → its JSON (an answer that is not JSON is retried)."""
        return self._call("GET", path, lambda r: _json(r, f"GET {path}"), params=params)

    def post(self, path: str, body: Any, *, what: str) -> httpx.Response:
        """POST a JSON body; the response (mail send answers 202 with an empty body)."""
        return self._call("POST", path, lambda r: r, body=body, what=what)

    def suppressions(
        self, kind: str, *, page_size: int = SUPPRESSION_PAGE, fresh: bool = False
    ) -> list[Any]:
        """The whole ``bounces`` or ``unsubscribes`` list (limit/offset pages until a short
        one: SendGrid gives no total or next link), reused for ``suppression_ttl`` seconds
        unless ``fresh``."""
        path = f"/v3/suppression/{kind}"

        def read() -> list[Any]:
            entries: list[Any] = []
            while True:
                page = self.get(path, {"limit": page_size, "offset": len(entries)})
                if not isinstance(page, list):
                    raise FatalError(f"SendGrid GET {path}: answer is not a list")
                entries += page
                if len(page) < page_size:
                    return entries

        return self._remember(path, read, fresh)

    def group_suppressions(self, group: int, *, fresh: bool = False) -> list[Any]:
        """The addresses unsubscribed from one unsubscribe group (one answer, no paging)."""
        path = f"/v3/asm/groups/{group}/suppressions"

        def read() -> list[Any]:
            answer = self.get(path)
            if not isinstance(answer, list):
                raise FatalError(f"SendGrid GET {path}: answer is not a list")
            return answer

        return self._remember(path, read, fresh)

    def _remember(self, path: str, read: Callable[[], list[Any]], fresh: bool) -> list[Any]:
        with self._lists_lock:  # held while reading: two callers never read one list twice
            held = self._lists.get(path)
            if not fresh and held and time.monotonic() - held[0] < self.suppression_ttl:
                return held[1]
            entries = read()
            self._lists[path] = (time.monotonic(), entries)
            return entries


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
    client: SendGridClient,
    kind: str,
    start: datetime,
    end: datetime,
    *,
    page_size: int = SUPPRESSION_PAGE,
) -> Iterator[list[dict[str, Any]]]:
    """``bounces`` or ``unsubscribes`` created in [start, end], in pages of ``page_size``.

    The whole list is read afresh and kept on the client, because the tech-touch sender needs
    all of it: one read serves the sync and the delivery of a cycle. Entries without epoch
    seconds in ``created`` are passed on, for the caller to skip with their id.
    """
    low, high = int(start.timestamp()), int(end.timestamp())
    kept = [
        e
        for e in client.suppressions(kind, page_size=page_size, fresh=True)
        if not isinstance(e, dict)
        or not isinstance(e.get("created"), int)
        or low <= e["created"] <= high
    ]
    for offset in range(0, max(len(kept), 1), page_size):
        yield kept[offset : offset + page_size]


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
