"""HubSpot marketing email events (Email Events API, ``GET /email/public/v1/events``).

Through the SDK's ``api_request`` (the SDK has no typed client for this API) and the shared
``HubSpotClient.call``: same token, quota, retry and error classification as every other HubSpot
call. Pages of up to 1,000 events, newest first, follow the opaque ``offset`` token while
``hasMore``; the token is only valid with the same query, so a window is read in one go.
Needs the ``content`` scope (Marketing Hub).

An event belongs to one email message to one recipient: ``sentBy.id`` (the message's SENT
event; a SENT event is its own). Types used: SENT, DELIVERED, OPEN, CLICK, BOUNCE, DROPPED,
SPAMREPORT and STATUSCHANGE (an unsubscribe when the portal or a subscription status becomes
UNSUBSCRIBED). Opens HubSpot filtered as bots or machine opens (``filteredEvent``) do not count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from hubspot.crm.companies.exceptions import ApiException

from connectors.email.engagement import fact, parse_time
from connectors.hubspot.client import HubSpotClient
from healthscore.core.errors import FatalError

PATH = "/email/public/v1/events"
FLAGS = {
    "DELIVERED": "delivered",
    "OPEN": "opened",
    "CLICK": "clicked",
    "BOUNCE": "bounced",
    "DROPPED": "dropped",
    "SPAMREPORT": "unsubscribed",
}
KNOWN = {
    *FLAGS,
    "SENT",
    "PROCESSED",
    "DEFERRED",
    "STATUSCHANGE",
    "PRINT",
    "FORWARD",
    "SUPPRESSED",
    "UNBOUNCE",
}


def _get(client: HubSpotClient, params: dict[str, Any]) -> dict[str, Any]:
    def request() -> dict[str, Any]:
        resp = client.sdk.api_request({"method": "GET", "path": PATH, "qs": params})
        if resp.status_code >= 400:
            exc = ApiException(status=resp.status_code, reason=resp.reason)
            exc.body, exc.headers = resp.content, dict(resp.headers)
            raise exc
        return resp.json()

    data = client.call("email events", request)
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise FatalError("HubSpot email events: answer has no 'events' list")
    return data


def pull_email_events(
    client: HubSpotClient,
    start: datetime,
    end: datetime,
    *,
    limit: int = 1000,
    exclude_filtered: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """Events that occurred in [start, end], a page at a time (newest first)."""
    params: dict[str, Any] = {
        "startTimestamp": int(start.timestamp() * 1000),
        "endTimestamp": int(end.timestamp() * 1000),
        "limit": limit,
    }
    if exclude_filtered:
        params["excludeFilteredEvents"] = "true"
    while True:
        data = _get(client, params)
        yield data["events"]
        if not data.get("hasMore") or not data.get("offset"):
            return
        params = {**params, "offset": data["offset"]}


def _unsubscribed(event: dict[str, Any]) -> bool:
    if event.get("portalSubscriptionStatus") == "UNSUBSCRIBED":
        return True
    return any(
        isinstance(s, dict) and s.get("status") == "UNSUBSCRIBED"
        for s in event.get("subscriptions") or []
    )


def event_fact(event: Any) -> tuple[str, dict[str, Any], datetime]:
    """One event → (event id, fact, time); ValueError (with the reason) when malformed."""
    if not isinstance(event, dict) or not event.get("id"):
        raise ValueError("no id")
    kind, email = event.get("type"), event.get("recipient")
    if kind not in KNOWN:
        raise ValueError(f"unknown type {kind!r}")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"recipient {email!r} is not an address")
    created = event.get("created")
    at = parse_time(created / 1000) if isinstance(created, int) else None
    if at is None:
        raise ValueError(f"created {created!r} is not epoch milliseconds")
    sent_by = event.get("sentBy") if isinstance(event.get("sentBy"), dict) else {}
    message = str(sent_by.get("id") or (event["id"] if kind == "SENT" else ""))
    if not message:
        raise ValueError("no sentBy.id (which message?)")
    flag = FLAGS.get(str(kind))
    if kind == "STATUSCHANGE" and _unsubscribed(event):
        flag = "unsubscribed"
    if kind == "OPEN" and event.get("filteredEvent") is True:
        flag = None  # a bot or machine open
    key = f"{created}:{event['id']}"  # HubSpot's EventId is (created, id)
    return key, fact(message, email, at, **({flag: True} if flag else {})), at
