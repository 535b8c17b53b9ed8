"""A thin layer over hubspot-api-client: every call retried and classified the same way.

The SDK does not retry by default, and urllib3's retry would skip POST/PATCH (search, batch
update) anyway, so retries happen here, through the shared ``call_with_retry``: 429 (or a
``RATE_LIMITS`` body, which HubSpot also sends with a 500) waits for ``Retry-After`` or the
10-second rolling window; other 5xx and connection errors back off; 401/403 stop with the
variable to fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import urllib3
from hubspot import HubSpot
from hubspot.crm.companies.exceptions import ApiException

from connectors.hubspot.settings import HubSpotSettings
from healthscore.core.errors import (
    AuthError,
    FatalError,
    HealthscoreError,
    RateLimited,
    RetriableError,
    http_action,
)
from healthscore.core.quota import LocalQuota, SharedQuota, make_quota
from healthscore.core.retry import RetryPolicy, call_with_retry, header, retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")
ROLLING_WINDOW = 10.0  # seconds: HubSpot's burst limit is per rolling 10 s
Quota = LocalQuota | SharedQuota
SEARCH_PER_SECOND = 5


def _body(exc: Any) -> dict[str, Any]:
    try:
        data = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def classify(exc: Exception, what: str) -> HealthscoreError:
    """An SDK or transport error → what the caller should do (``http_action``'s policy; a
    ``RATE_LIMITS`` body is a rate limit whatever its status, HubSpot sends it with 500s)."""
    status = getattr(exc, "status", None)
    if status is None:  # urllib3: refused, reset, timed out — nothing reached HubSpot's logic
        return RetriableError(f"HubSpot {what}: {exc.__class__.__name__}: {exc}")
    body = _body(exc)
    message = str(body.get("message") or getattr(exc, "reason", "") or status)
    category = str(body.get("category") or body.get("errorType") or "")
    wait = retry_after(header(getattr(exc, "headers", None), "Retry-After"))
    action = http_action(status)
    if action == "rate_limited" or category in ("RATE_LIMITS", "RATE_LIMIT"):
        if wait is None:
            wait = 86400.0 if body.get("policyName") == "DAILY" else ROLLING_WINDOW
        return RateLimited(
            f"HubSpot {what}: rate limited ({body.get('policyName', status)})", retry_after=wait
        )
    if action == "retry":
        return RetriableError(f"HubSpot {what}: {status} {message}", retry_after=wait)
    if status == 401:
        return AuthError(f"HubSpot {what}: HUBSPOT_ACCESS_TOKEN was rejected ({message})")
    if action == "auth":
        return AuthError(f"HubSpot {what}: the private app lacks a scope ({message})")
    return FatalError(f"HubSpot {what}: {status} {category} {message}".replace("  ", " "))


class HubSpotClient:
    """The SDK client pointed at ``HUBSPOT_BASE_URL`` (the sandbox in tests and the demo)."""

    def __init__(
        self,
        settings: HubSpotSettings,
        retry: RetryPolicy | None = None,
        *,
        requests_per_10s: int = 100,
        quota: Quota | None = None,
        search_quota: Quota | None = None,
    ) -> None:
        token = settings.require_hubspot()
        base = settings.hubspot_base_url.rstrip("/")
        # `host` is what the SDK's API classes use, `base_url` what api_request uses
        # retry=0: urllib3 would otherwise retry some 429s itself (sleeping Retry-After)
        # behind our back; every retry goes through call_with_retry instead
        self.sdk = HubSpot(
            access_token=token,
            host=base,
            base_url=base,
            retry=urllib3.util.Retry(total=0, raise_on_status=False),
        )
        self.retry = retry or RetryPolicy()
        # one budget for every worker of this deployment (HubSpot counts per account)
        self.quota = quota or make_quota(
            settings.redis_url, "hubspot", requests_per_10s / ROLLING_WINDOW, requests_per_10s
        )
        # the search endpoints allow SEARCH_PER_SECOND across the account, on top
        self.search_quota = search_quota or make_quota(
            settings.redis_url, "hubspot-search", SEARCH_PER_SECOND, SEARCH_PER_SECOND
        )
        self.requests = 0

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def once() -> T:
            self.quota.acquire()
            self.requests += 1
            try:
                return fn(*args, **kwargs)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise classify(exc, what) from None
            except Exception as exc:  # the SDK's per-package ApiException classes
                if exc.__class__.__name__.endswith("Exception") and hasattr(exc, "status"):
                    raise classify(exc, what) from None
                raise

        return call_with_retry(once, self.retry, what=f"HubSpot {what}")

    def call_json(
        self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """:meth:`call`, answered with the response's JSON as plain dicts: the SDK's own
        models (a datetime parsed by dateutil for every ``createdAt``) cost more CPU than
        the rest of a 100k-company sync. Errors come back through the SDK as usual."""

        def raw() -> dict[str, Any]:
            response = fn(*args, _preload_content=False, **kwargs)
            try:
                body = orjson.loads(response.data)
            except ValueError:
                raise RetriableError(f"HubSpot {what}: a 2xx without a JSON body") from None
            finally:
                response.release_conn()
            if not isinstance(body, dict):
                raise FatalError(
                    f"HubSpot {what}: expected a JSON object, got {type(body).__name__}"
                )
            return body

        return self.call(what, raw)
