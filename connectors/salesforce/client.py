"""A thin layer over simple-salesforce: authentication, error mapping, retries.

simple-salesforce builds its token URL from ``*.salesforce.com``, so we fetch OAuth tokens
ourselves (client-credentials or JWT bearer, to a configurable token URL) and use the client in
direct mode. An expired session is refreshed once; TLS verification is always on (a sandbox
only adds its CA to the trusted set).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
)

from connectors.salesforce.settings import DAILY_LIMIT_WAIT, REQUEST_TIMEOUT, SalesforceSettings
from healthscore.core.errors import AuthError, FatalError, RateLimited, RetriableError, http_action
from healthscore.core.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)
DESCRIBE_TTL = 900.0  # seconds
TOKEN_RESOURCE = "oauth2/token"  # resource_name of a token endpoint failure, for classify
T = TypeVar("T")


def vendor_errors(content: Any) -> list[dict[str, Any]]:
    """Salesforce's request-level error array, whatever shape simple-salesforce kept."""
    if isinstance(content, list):
        return [e for e in content if isinstance(e, dict)]
    if isinstance(content, dict):
        return [content]
    return []


def classify(exc: Exception, *, login: str = "") -> Exception:
    """A simple-salesforce, requests or httpx (token endpoint) exception → what the caller
    should do (``http_action``'s policy). Departures the vendor's body asks for: a 403
    ``REQUEST_LIMIT_EXCEEDED`` is a rate limit (the daily allocation waits a day), and the
    token endpoint answers bad credentials with a 400 (OAuth 2.0: ``invalid_client``,
    ``invalid_grant``), which is a login failure naming ``login`` (the flow, the client id).
    Anything else is returned unchanged."""
    if isinstance(exc, requests.exceptions.SSLError) or (
        isinstance(exc, httpx.TransportError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)
    ):
        return FatalError(f"Salesforce TLS verification failed: {exc}")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return RetriableError(f"Salesforce unreachable: {exc.__class__.__name__}")
    if isinstance(exc, httpx.TransportError):
        return RetriableError(f"Salesforce token endpoint unreachable: {exc.__class__.__name__}")
    if not isinstance(exc, SalesforceError):
        return exc
    errors = vendor_errors(exc.content)
    code = errors[0].get("errorCode", "") if errors else ""
    message = errors[0].get("message", "") if errors else str(exc.content)[:300]
    where = f"{exc.resource_name or 'request'} (HTTP {exc.status})"
    action = http_action(exc.status)
    if exc.resource_name == TOKEN_RESOURCE:
        if action in ("retry", "rate_limited"):
            return RetriableError(f"Salesforce token endpoint: HTTP {exc.status}")
        body = errors[0] if errors else {}
        return AuthError(
            f"Salesforce login failed ({login}): "
            f"{body.get('error', exc.status)} {body.get('error_description', '')}".strip()
        )
    if code == "REQUEST_LIMIT_EXCEEDED":
        if "TotalRequests" in message:
            return RateLimited(
                f"Salesforce daily API allocation used up: {message}", retry_after=DAILY_LIMIT_WAIT
            )
        return RateLimited(f"Salesforce concurrency limit: {message}")
    if action == "rate_limited":
        return RateLimited(f"Salesforce {where}: {code} {message}".strip())
    if action == "retry":
        return RetriableError(f"Salesforce {where}: {code or 'server error'} {message}".strip())
    if exc.status == 401:
        return AuthError(f"Salesforce rejected the session: {code} {message}".strip())
    if action == "auth":
        return AuthError(
            f"Salesforce refused {where}: {code} {message} — check the integration "
            f"user's permissions"
        )
    return FatalError(f"Salesforce rejected {where}: {code} {message}".strip())


class SalesforceClient:
    """One authenticated simple-salesforce client plus the retry and error policy."""

    def __init__(self, settings: SalesforceSettings, retry: RetryPolicy | None = None) -> None:
        settings.require_salesforce()
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.instance_url = str(settings.salesforce_instance_url).rstrip("/")
        self._verify: str | bool = (
            str(settings.salesforce_ca_bundle) if settings.salesforce_ca_bundle else True
        )
        self._httpx_verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self._verify)
            if isinstance(self._verify, str)
            else True
        )
        self._sf: Salesforce | None = None
        self._describes: dict[str, tuple[float, dict[str, Any]]] = {}
        self.requests_made = 0

    # -- authentication ----------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        return self.settings.salesforce_token_url or f"{self.instance_url}/services/oauth2/token"

    def _fetch_token(self) -> str:
        s = self.settings
        if s.salesforce_auth_flow == "jwt":
            key = Path(str(s.salesforce_private_key_file)).read_text()
            assertion = jwt.encode(
                {
                    "iss": s.salesforce_client_id,
                    "sub": s.salesforce_username,
                    "aud": self.token_url.split("/services/")[0],
                    "exp": int(time.time()) + 180,
                },
                key,
                algorithm="RS256",
            )
            data = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            }
            auth = None
        else:
            secret = (
                s.salesforce_client_secret.get_secret_value() if s.salesforce_client_secret else ""
            )
            data = {"grant_type": "client_credentials"}
            auth = (str(s.salesforce_client_id), secret)
        try:
            resp = httpx.post(
                self.token_url,
                data=data,
                auth=auth,
                verify=self._httpx_verify,
                timeout=REQUEST_TIMEOUT,
            )
        except httpx.TransportError as exc:
            raise classify(exc) from None
        body = (
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if resp.status_code != 200 or "access_token" not in body:
            status = resp.status_code if resp.status_code != 200 else 401  # 200 without a token
            failed = SalesforceGeneralError(self.token_url, status, TOKEN_RESOURCE, body)
            login = f"{s.salesforce_auth_flow} flow, SALESFORCE_CLIENT_ID={s.salesforce_client_id}"
            raise classify(failed, login=login) from None
        self.instance_url = str(body.get("instance_url") or self.instance_url).rstrip("/")
        return str(body["access_token"])

    def _login(self) -> Salesforce:
        session = requests.Session()
        session.verify = self._verify
        if self._verify is not True:
            # requests lets REQUESTS_CA_BUNDLE override Session.verify; an explicit
            # SALESFORCE_CA_BUNDLE must win, so the environment is not consulted
            session.trust_env = False
        self._sf = Salesforce(
            instance_url=self.instance_url,
            session_id=self._fetch_token(),
            session=session,
            version=self.settings.salesforce_api_version,
        )
        return self._sf

    @property
    def sf(self) -> Salesforce:
        return self._sf or self._login()

    # -- calls -------------------------------------------------------------------------------
    def call(self, fn: Callable[[Salesforce], T], *, what: str) -> T:
        """Call ``fn(sf)`` with retries; an expired session is refreshed once."""

        def attempt() -> T:
            refreshed = False
            while True:
                try:
                    self.requests_made += 1
                    return fn(self.sf)
                except SalesforceExpiredSession:
                    if refreshed:
                        raise AuthError(
                            "Salesforce session expired again right after a fresh login"
                        ) from None
                    log.info("Salesforce session expired; logging in again")
                    self._login()
                    refreshed = True
                except (SalesforceError, requests.exceptions.RequestException) as exc:
                    raise classify(exc) from None

        return call_with_retry(attempt, self.retry, what=what)

    def describe(self, sobject: str, *, max_age: float = DESCRIBE_TTL) -> dict[str, Any]:
        """The sObject describe, cached per client for ``max_age`` seconds (fields change
        rarely; a sync on unchanged data then costs one query per object)."""
        held = self._describes.get(sobject)
        if held is not None and time.monotonic() - held[0] < max_age:
            return held[1]
        result = self.call(
            lambda sf: sf.restful(f"sobjects/{sobject}/describe", timeout=REQUEST_TIMEOUT),
            what=f"describe {sobject}",
        )
        self._describes[sobject] = (time.monotonic(), result)
        return result

    def query_pages(
        self, soql: str, *, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page of records, following ``nextRecordsUrl`` (each page retried alone)."""
        page = self.call(
            lambda sf: sf.query(soql, include_deleted=include_deleted, timeout=REQUEST_TIMEOUT),
            what="SOQL query",
        )
        while True:
            yield page["records"]
            if page.get("done", True):
                return
            next_url = page["nextRecordsUrl"]
            page = self.call(
                lambda sf, u=next_url: sf.query_more(
                    u, identifier_is_url=True, timeout=REQUEST_TIMEOUT
                ),
                what="SOQL queryMore",
            )

    def update_collection(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PATCH sObject Collections (allOrNone false): one SaveResult per record, same order."""
        body = {"allOrNone": False, "records": records}
        result = self.call(
            lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json=body, timeout=REQUEST_TIMEOUT
            ),
            what=f"sObject Collections update ({len(records)} records)",
        )
        if not isinstance(result, list) or len(result) != len(records):
            raise FatalError(
                f"Salesforce sObject Collections answered {len(result or [])} "
                f"results for {len(records)} records"
            )
        return result
