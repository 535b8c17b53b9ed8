"""One error mapping per vendor, one policy for all (STYLE §3, Airbyte's table): 401/403 →
the customer fixes credentials or scopes, 400/404 → our bug unless the vendor's body says
otherwise, 408/429/5xx/connection → transient, honouring the vendor's rate-limit signal.

Each case is a vendor answer (status, body, headers — or the SDK's exception) → the error type,
its message and its ``retry_after``, through the vendor package's one ``classify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import requests
import urllib3
from hubspot.crm.companies.exceptions import ApiException
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from actions.slack import classify as slack_classify
from connectors.hubspot.client import classify as hubspot_classify
from connectors.mailchimp.client import classify as mailchimp_classify
from connectors.salesforce.client import TOKEN_RESOURCE
from connectors.salesforce.client import classify as salesforce_classify
from connectors.salesforce.settings import DAILY_LIMIT_WAIT
from connectors.sendgrid.client import classify as sendgrid_classify
from connectors.zendesk.client import StartTimeTooRecent
from connectors.zendesk.client import classify as zendesk_classify
from healthscore.core.errors import (
    AuthError,
    ConfigError,
    FatalError,
    RateLimited,
    RetriableError,
    http_action,
)
from healthscore.core.retry import retry_after, until_reset

NOW = 1_800_000_000.0  # epoch seconds the SendGrid cases compute their waits from
COLUMNS = ("answer", "kind", "message", "wait")


def response(status: int, body: Any = None, text: str = "", **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://vendor.example/x")
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=text, headers=headers, request=request)


def check(error: Exception | None, kind: type[Exception], message: str, wait: float | None) -> None:
    assert type(error) is kind, f"{type(error).__name__}: {error}"
    assert message in str(error), str(error)
    if isinstance(error, RetriableError):
        assert error.retry_after == (None if wait is None else pytest.approx(wait))


# -- the shared policy and the rate-limit signals ----------------------------------------------
POLICY = {400: "fail", 401: "auth", 403: "auth", 404: "fail", 408: "retry", 413: "fail"}
POLICY |= {422: "fail", 429: "rate_limited", 500: "retry", 503: "retry", 521: "retry"}


@pytest.mark.parametrize(("status", "action"), POLICY.items())
def test_one_status_policy_for_every_vendor(status: int, action: str) -> None:
    assert http_action(status) == action


def test_retry_after_reads_seconds_dates_and_slack_lists() -> None:
    when = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=90)
    assert retry_after("17") == 17.0 and retry_after("1.5") == 1.5
    assert retry_after(["3"]) == 3.0  # slack-sdk's header values are lists
    assert retry_after(format_datetime(when, usegmt=True), now=NOW) == 90.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0  # past: no wait
    assert retry_after(None) is None and retry_after("soon") is None and retry_after([]) is None
    assert until_reset(str(int(NOW) + 42), now=NOW) == 42.0
    assert until_reset(str(int(NOW) - 5), now=NOW) == 0.0
    assert until_reset(None, now=NOW) is None and until_reset("x", now=NOW) is None


# -- SendGrid: {"errors": [{"message", "field"}]}, 429 with X-RateLimit-Reset, no Retry-After ----
def sg(status: int, message: str | None = None, field: str | None = None, **headers: str) -> Any:
    body = {"errors": [{"message": message, "field": field}]} if message else None
    return response(status, body, **headers)


UNVERIFIED = "The from address does not match a verified Sender Identity."


@pytest.mark.parametrize(
    COLUMNS,
    [
        (sg(401, "authorization required"), AuthError,
         "SendGrid mail send: SENDGRID_API_KEY was rejected (authorization required)", None),
        (sg(403, UNVERIFIED, "from"), AuthError, "SendGrid mail send: SENDGRID_API_KEY lacks "
         f"the access for this endpoint ({UNVERIFIED} (from)); give the key the scope", None),
        (sg(429, "too many requests", X_RateLimit_Remaining="0",
            X_RateLimit_Reset=str(int(NOW) + 42)),
         RateLimited, "SendGrid mail send: too many requests", 42.0),
        (sg(429, "too many requests"), RateLimited, "too many requests", None),
        (sg(500, "internal server error"), RetriableError, "mail send: 500 internal", None),
        (sg(503, Retry_After="7"), RetriableError, "SendGrid mail send: 503", 7.0),
        (sg(408), RetriableError, "SendGrid mail send: 408", None),
        (sg(400, "limit must be an integer between 1 and 500", "limit"), FatalError,
         "SendGrid mail send: 400 limit must be an integer between 1 and 500 (limit)", None),
        (sg(404, "resource not found"), FatalError, "404 resource not found", None),
        (sg(413), FatalError, "SendGrid mail send: 413", None),
    ],
)  # fmt: skip
def test_sendgrid(answer: httpx.Response, kind: type, message: str, wait: float | None) -> None:
    check(sendgrid_classify(answer, "mail send", NOW), kind, message, wait)


# -- Mailchimp: Marketing's problem+json, Transactional's named errors (sent as 500s) ------------
def problem(status: int, title: str, detail: str, **headers: str) -> httpx.Response:
    return response(status, {"title": title, "status": status, "detail": detail}, **headers)


def named(status: int, name: str, message: str) -> httpx.Response:
    return response(status, {"status": "error", "code": -1, "name": name, "message": message})


@pytest.mark.parametrize(
    ("api", *COLUMNS),
    [
        ("marketing", problem(401, "API Key Invalid", "Your API key may be invalid."), AuthError,
         "Mailchimp GET /reports: MAILCHIMP_API_KEY was rejected (API Key Invalid: Your API key "
         "may be invalid.); a key from another data centre than the URL's", None),
        ("marketing", problem(403, "Forbidden", "Not yours"), AuthError,
         "Mailchimp GET /reports: MAILCHIMP_API_KEY may not do this (Forbidden: Not yours)", None),
        ("marketing", response(403), RetriableError, "Mailchimp GET /reports: 403", None),
        ("marketing", problem(429, "Too Many Requests", "Over the limit"), RateLimited,
         "too many simultaneous requests (Too Many Requests: Over the limit)", None),
        ("marketing", problem(404, "Resource Not Found", "Gone"), FatalError,
         "Mailchimp GET /reports: 404 Resource Not Found: Gone", None),
        ("marketing", response(502, Retry_After="4"), RetriableError, "502", 4.0),
        ("transactional", named(500, "Invalid_Key", "Invalid API key"), AuthError,
         "Mailchimp Transactional GET /reports: MANDRILL_API_KEY was rejected "
         "(Invalid_Key: Invalid API key)", None),
        ("transactional", named(500, "Unknown_Template", 'No such template "x"'), FatalError,
         'Mailchimp Transactional GET /reports: 404 Unknown_Template: No such template "x"', None),
        ("transactional", named(500, "RequestLimitExceeded", "Too many"), RateLimited,
         "Mailchimp Transactional GET /reports: too many requests (RequestLimitExceeded", None),
        ("transactional", response(429, Retry_After="30"), RateLimited, "too many requests", 30.0),
        ("transactional", named(500, "GeneralError", "Oops"), RetriableError,
         "500 GeneralError: Oops", None),
        # an error body on a 2xx is the 1.3 API's way of answering a 500
        ("transactional", named(200, "Odd_Error", "odd"), RetriableError, "500 Odd_Error", None),
        ("transactional", named(400, "ValidationError", "bad"), FatalError, "400", None),
    ],
)  # fmt: skip
def test_mailchimp(api: Any, answer: httpx.Response, kind: type, message: str, wait: Any) -> None:
    check(mailchimp_classify(answer, "GET /reports", api=api), kind, message, wait)


# -- Zendesk: {"error", "description"}, 429 with Retry-After (the account's may be plain text) ---
def zd(status: int, error: str | None = None, description: str = "", **headers: str) -> Any:
    body = {"error": error, "description": description} if error else None
    return response(status, body, "Number of allowed API requests per minute exceeded", **headers)


@pytest.mark.parametrize(
    COLUMNS,
    [
        (zd(429, Retry_After="17"), RateLimited,
         "Zendesk export: rate limited (Number of allowed API requests per minute exceeded)", 17.0),
        (zd(429, "APIRateLimitExceeded"), RateLimited, "APIRateLimitExceeded", 60.0),
        (zd(503, "ServiceUnavailable", Retry_After="5"), RetriableError, "export: 503", 5.0),
        (zd(408, "Timeout"), RetriableError, "Zendesk export: 408 Timeout", None),
        (zd(401, "Couldn't authenticate you"), AuthError, "check ZENDESK_EMAIL", None),
        (zd(403, "Forbidden"), AuthError, "ZENDESK_EMAIL must be an admin", None),
        (zd(422, "InvalidValue", "Too recent start_time. Use an older one"), StartTimeTooRecent,
         "Zendesk export: InvalidValue: Too recent start_time", None),
        (zd(404, "RecordNotFound", "Not found"), FatalError,
         "Zendesk export: 404 RecordNotFound: Not found", None),
    ],
)  # fmt: skip
def test_zendesk(answer: httpx.Response, kind: type, message: str, wait: float | None) -> None:
    check(zendesk_classify(answer, "export"), kind, message, wait)
    assert zendesk_classify(response(200, {}), "export") is None


# -- HubSpot: the SDK's ApiException (status, JSON body, headers); RATE_LIMITS bodies on 500s ----
def hs(status: int, body: dict[str, Any], **headers: str) -> ApiException:
    exc = ApiException(status=status, reason="reason")
    exc.body = json.dumps(body).encode()
    exc.headers = {k.replace("_", "-"): v for k, v in headers.items()}
    return exc


def limit(policy: str) -> dict[str, Any]:
    return {"status": "error", "message": "limit", "errorType": "RATE_LIMIT", "policyName": policy}


@pytest.mark.parametrize(
    COLUMNS,
    [
        (hs(429, limit("SECONDLY"), Retry_After="1"), RateLimited,
         "HubSpot search companies: rate limited (SECONDLY)", 1.0),
        (hs(429, limit("DAILY")), RateLimited, "rate limited (DAILY)", 86400.0),
        (hs(429, limit("TEN_SECONDLY_ROLLING")), RateLimited, "TEN_SECONDLY_ROLLING", 10.0),
        (hs(500, {"category": "RATE_LIMITS", "message": "limit"}), RateLimited, "rate", 10.0),
        (hs(502, {"message": "Bad gateway"}), RetriableError, "502 Bad gateway", None),
        (hs(401, {"category": "INVALID_AUTHENTICATION", "message": "No credentials"}), AuthError,
         "HubSpot search companies: HUBSPOT_ACCESS_TOKEN was rejected (No credentials)", None),
        (hs(403, {"category": "MISSING_SCOPES", "message": "Scopes"}), AuthError,
         "HubSpot search companies: the private app lacks a scope (Scopes)", None),
        (hs(400, {"category": "VALIDATION_ERROR", "message": "Bad value"}), FatalError,
         "HubSpot search companies: 400 VALIDATION_ERROR Bad value", None),
        (urllib3.exceptions.ProtocolError("aborted"), RetriableError,
         "HubSpot search companies: ProtocolError", None),
    ],
)  # fmt: skip
def test_hubspot(answer: Exception, kind: type, message: str, wait: float | None) -> None:
    check(hubspot_classify(answer, "search companies"), kind, message, wait)


# -- Salesforce: simple-salesforce's exceptions, the OAuth token endpoint, the transports --------
URL = "https://acme.my.salesforce.com/services/data/v59.0/query"


def sf(kind: type, status: int, code: str, message: str, where: str = "query") -> Exception:
    return kind(URL, status, where, [{"errorCode": code, "message": message}])


def token(status: int, error: str = "", description: str = "") -> Exception:
    body = {"error": error, "error_description": description} if error else {}
    return SalesforceGeneralError(URL, status, TOKEN_RESOURCE, body)


REFUSED, LIMIT = SalesforceRefusedRequest, "REQUEST_LIMIT_EXCEEDED"


@pytest.mark.parametrize(
    COLUMNS,
    [
        (sf(REFUSED, 403, LIMIT, "TotalRequests Limit exceeded."), RateLimited,
         "Salesforce daily API allocation used up: TotalRequests Limit exceeded.",
         DAILY_LIMIT_WAIT),
        (sf(REFUSED, 403, LIMIT, "ConcurrentPerOrgLongTxn Limit exceeded."), RateLimited,
         "Salesforce concurrency limit", None),
        (sf(REFUSED, 403, "INSUFFICIENT_ACCESS", "no access"), AuthError,
         "Salesforce refused query (HTTP 403): INSUFFICIENT_ACCESS no access — check the "
         "integration user's permissions", None),
        (sf(SalesforceExpiredSession, 401, "INVALID_SESSION_ID", "Session expired"), AuthError,
         "Salesforce rejected the session: INVALID_SESSION_ID Session expired", None),
        (sf(SalesforceMalformedRequest, 400, "MALFORMED_QUERY", "unexpected token"), FatalError,
         "Salesforce rejected query (HTTP 400): MALFORMED_QUERY unexpected token", None),
        (sf(SalesforceResourceNotFound, 404, "NOT_FOUND", "gone", "Account"), FatalError,
         "Salesforce rejected Account (HTTP 404): NOT_FOUND gone", None),
        (sf(SalesforceGeneralError, 503, "SERVER_UNAVAILABLE", "later"), RetriableError,
         "Salesforce query (HTTP 503): SERVER_UNAVAILABLE later", None),
        (token(400, "invalid_client", "invalid client credentials"), AuthError,
         "Salesforce login failed (client_credentials flow, SALESFORCE_CLIENT_ID=3MV): "
         "invalid_client invalid client credentials", None),
        (token(503), RetriableError, "Salesforce token endpoint: HTTP 503", None),
        (requests.exceptions.ConnectionError("refused"), RetriableError,
         "Salesforce unreachable: ConnectionError", None),
        (requests.exceptions.SSLError("bad"), FatalError, "Salesforce TLS verification", None),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
         FatalError, "Salesforce TLS verification failed", None),
        (httpx.ConnectError("refused"), RetriableError, "token endpoint unreachable", None),
    ],
)  # fmt: skip
def test_salesforce(answer: Exception, kind: type, message: str, wait: float | None) -> None:
    login = "client_credentials flow, SALESFORCE_CLIENT_ID=3MV"
    check(salesforce_classify(answer, login=login), kind, message, wait)


# -- Slack: slack-sdk's SlackApiError — an HTTP status, or 200 with {"ok": false, "error"} -------
def slack(status: int, error: str | None = None, **headers: Any) -> SlackApiError:
    answer = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, **({"error": error} if error else {})},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        status_code=status,
    )
    return SlackApiError("failed", answer)


@pytest.mark.parametrize(
    COLUMNS,
    [
        (slack(429, "ratelimited", Retry_After=["3"]), RateLimited,
         "Slack chat.postMessage rate limited", 3.0),
        (slack(200, "rate_limited"), RateLimited, "Slack chat.postMessage rate limited", None),
        (slack(503, "internal_error"), RetriableError, "chat.postMessage: internal_error", None),
        (slack(200, "request_timeout", retry_after="2"), RetriableError, "request_timeout", 2.0),
        (slack(200, "invalid_auth"), AuthError, "invalid_auth — check SLACK_BOT_TOKEN", None),
        (slack(401), AuthError, "Slack chat.postMessage: 401 — check SLACK_BOT_TOKEN", None),
        (slack(200, "channel_not_found"), ConfigError, "invite the bot to it", None),
        (slack(200, "msg_too_long"), FatalError, "Slack chat.postMessage: msg_too_long", None),
    ],
)  # fmt: skip
def test_slack(answer: SlackApiError, kind: type, message: str, wait: float | None) -> None:
    check(slack_classify(answer, "chat.postMessage"), kind, message, wait)
