"""Errors typed by what the caller should do about them.

    HealthscoreError
    ├── ConfigError            bad settings or YAML: a person fixes the file / env, then restarts
    ├── FatalError             stop this job; retrying will not help (bad credentials, our bug)
    │   └── AuthError          credentials rejected: the customer fixes them
    ├── RetriableError         back off and try again (rate limits, 5xx, timeouts)
    │   └── RateLimited        the vendor's quota signal; carries ``retry_after`` seconds
    └── SkippableRecord        one record is malformed: log its id, count it, go on

Each error carries a ``failure_type`` saying *who must act* (Airbyte's idea):
``config`` (the customer), ``system`` (us), ``transient`` (nobody; retry). ``http_action`` is
the one status policy every vendor's ``classify`` (one per vendor package) starts from.
"""

from __future__ import annotations

from typing import Literal


class HealthscoreError(Exception):
    """Base class of every error the product raises on purpose."""

    failure_type = "system"


class ConfigError(HealthscoreError):
    """A setting, environment variable or YAML field is missing or invalid."""

    failure_type = "config"


class FatalError(HealthscoreError):
    """The job cannot go on; retrying the same request will fail the same way."""


class AuthError(FatalError):
    """The vendor rejected our credentials (after one re-authentication attempt)."""

    failure_type = "config"


class RetriableError(HealthscoreError):
    """A transient failure: back off and retry, now or in the next cycle."""

    failure_type = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The vendor's rate-limit signal (429, or a vendor's own, e.g. a 403 limit code)."""


class SkippableRecord(HealthscoreError):
    """One record cannot be used; the rest of the page goes on."""

    def __init__(self, record_id: str, reason: str) -> None:
        super().__init__(f"record {record_id}: {reason}")
        self.record_id = record_id
        self.reason = reason


HttpAction = Literal["auth", "rate_limited", "retry", "fail"]


def http_action(status: int) -> HttpAction:
    """What an HTTP error status asks of the caller — one policy for every vendor (Airbyte's
    table, STYLE §3): 401/403 ``auth`` (the customer fixes the credentials or their scopes →
    ``AuthError``); 429 ``rate_limited`` (wait for the vendor's signal → ``RateLimited``);
    408 and 5xx ``retry`` (transient → ``RetriableError``); any other 4xx ``fail`` (our bug →
    ``FatalError``). Each vendor's ``classify`` starts here and departs from it only where the
    vendor's own body says otherwise (a 403 that is a rate limit, a 400 that means "too
    recent, wait", OAuth's 400 ``invalid_client``)."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status == 408 or status >= 500:
        return "retry"
    return "fail"
