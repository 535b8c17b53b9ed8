"""HubSpotEmailEmulator: a HubSpot portal (``HubSpotEmulator``) that also sends marketing email,
with the legacy Email Events API ``GET /email/public/v1/events``.

Events are served newest first, ``limit`` (default 10, at most 1,000) per page with an opaque
``offset`` token and ``hasMore``; ``startTimestamp`` / ``endTimestamp`` (epoch ms, inclusive),
``recipient``, ``eventType``, ``campaignId`` and ``excludeFilteredEvents`` filter. The portal's
token, ten-secondly and daily limits, error bodies and faults apply as to the CRM API.
"""

from __future__ import annotations

import base64
import random
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from sandbox.email_profiles import recipients
from sandbox.hubspot import HubSpotEmulator
from sandbox.hubspot_errors import error_response
from sandbox.server import route
from sandbox.synthetic import SyntheticOrg
from sandbox.wire import Request, Response

__all__ = ["HubSpotEmailEmulator"]

_PATH = "/email/public/v1/events"


def _token(index: int) -> str:
    return base64.urlsafe_b64encode(f"evt:{index}".encode()).decode()


class HubSpotEmailEmulator(HubSpotEmulator):
    api_prefixes = ("/crm/", "/email/")  # the Email Events API: same token, same limits

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._email_lock = threading.Lock()
        self.email_events: list[Any] = []

    # ------------------------------------------------------------------ data
    def add_email_event(
        self,
        kind: str,
        recipient: str,
        at: datetime,
        *,
        sent_by: str | None = None,
        campaign_id: int = 1001,
        **extra: Any,
    ) -> dict[str, Any]:
        created = int(at.timestamp() * 1000)
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "created": created,
            "type": kind,
            "recipient": recipient.lower(),
            "portalId": self.portal_id,
            "appId": 113,
            "appName": "BatchEmail",
            "emailCampaignId": campaign_id,
            **extra,
        }
        if sent_by is not None:
            event["sentBy"] = {"id": sent_by, "created": created}
        with self._email_lock:
            self.email_events.append(event)
        return event

    def send_email(
        self,
        recipient: str,
        at: datetime,
        *,
        opened: bool = False,
        clicked: bool = False,
        bounced: bool = False,
        unsubscribed: bool = False,
        bot_open: bool = False,
        campaign_id: int = 1001,
    ) -> str:
        """A SENT event and what followed it; returns the message's (SENT event's) id."""
        sent = self.add_email_event("SENT", recipient, at, campaign_id=campaign_id)
        sid = sent["id"]

        def later(kind: str, seconds: int, **extra: Any) -> None:
            self.add_email_event(
                kind,
                recipient,
                at + timedelta(seconds=seconds),
                sent_by=sid,
                campaign_id=campaign_id,
                **extra,
            )

        if bounced:
            later("BOUNCE", 5, category="HARD_BOUNCE", response="550 5.1.1 unknown user")
            return sid
        later("DELIVERED", 3, response="250 OK")
        if bot_open:
            later("OPEN", 4, filteredEvent=True)
        if opened or clicked:
            later("OPEN", 900, filteredEvent=False)
        if clicked:
            later("CLICK", 960, url="https://app.vendor.example/dash")
        if unsubscribed:
            later(
                "STATUSCHANGE",
                1000,
                portalSubscriptionStatus="UNSUBSCRIBED",
                source="SOURCE_RECIPIENT",
                subscriptions=[{"id": 7, "status": "UNSUBSCRIBED"}],
            )
        return sid

    def seed_email(
        self,
        org: SyntheticOrg,
        now: datetime,
        *,
        seed: int = 13,
        sends: int = 6,
        every: timedelta = timedelta(days=15),
    ) -> int:
        """A marketing email every ``every`` to every recipient, engaged per archetype."""
        rng = random.Random(f"hubspot-email:{seed}")
        people = recipients(org, rng)
        count = 0
        for n in range(sends):
            at = now - every * (sends - n) + timedelta(hours=2)
            for person in people:
                p = person.engagement
                bounced = rng.random() < p.bounce * 3
                opened = not bounced and rng.random() < p.open
                self.send_email(
                    person.email,
                    at + timedelta(seconds=rng.randrange(600)),
                    opened=opened,
                    clicked=opened and rng.random() < p.click,
                    bounced=bounced,
                    campaign_id=2000 + n,
                    unsubscribed=not bounced and rng.random() < p.unsubscribe * 3,
                    bot_open=rng.random() < 0.1,
                )
                count += 1
        return count

    # ------------------------------------------------------------------ route
    @route("GET", _PATH)
    def list_email_events(self, req: Request) -> Response:
        q = req.query

        def number(name: str, default: int | None) -> int | None:
            raw = q.get(name)
            if raw is None or raw == "":
                return default
            if not raw.lstrip("-").isdigit():
                raise ValueError(f"{name} must be an integer")
            return int(raw)

        try:
            limit = number("limit", 10)
            start, end = number("startTimestamp", None), number("endTimestamp", None)
            campaign = number("campaignId", None)
        except ValueError as exc:
            return error_response(400, "VALIDATION_ERROR", str(exc))
        if limit is None or not 1 <= limit <= 1000:
            return error_response(400, "VALIDATION_ERROR", "limit must be between 1 and 1000")
        offset = 0
        if q.get("offset"):
            try:
                offset = int(base64.urlsafe_b64decode(q["offset"]).decode().split(":")[1])
            except (ValueError, IndexError):
                return error_response(400, "VALIDATION_ERROR", "invalid offset")
        with self._email_lock:
            events = list(self.email_events)
        picked = []
        for e in events:
            if isinstance(e, dict) and isinstance(e.get("created"), int):
                if start is not None and e["created"] < start:
                    continue
                if end is not None and e["created"] > end:
                    continue
                if q.get("recipient") and e.get("recipient") != q["recipient"].lower():
                    continue
                if q.get("eventType") and e.get("type") != q["eventType"]:
                    continue
                if campaign is not None and e.get("emailCampaignId") != campaign:
                    continue
                if q.get("excludeFilteredEvents") == "true" and e.get("filteredEvent") is True:
                    continue
            picked.append(e)
        picked.sort(
            key=lambda e: (
                -e["created"] if isinstance(e, dict) and isinstance(e.get("created"), int) else 0
            )
        )
        page = picked[offset : offset + limit]
        more = offset + limit < len(picked)
        body: dict[str, Any] = {"events": page, "hasMore": more}
        if more:
            body["offset"] = _token(offset + limit)
        return Response(200, body)
