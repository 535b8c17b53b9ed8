"""Tech-touch email through SendGrid v3 dynamic templates (``POST /v3/mail/send``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from connectors.outbound import Contact, transport_error
from healthscore.core.errors import AuthError, ConfigError, FatalError, RateLimited, RetriableError

log = logging.getLogger(__name__)


class SendGridSender:
    """``POST /v3/mail/send`` with a dynamic template; the key rides in ``custom_args``."""

    provider = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.sendgrid.com",
        from_email: str,
        from_name: str,
        unsubscribe_group: int | None = None,
        categories: list[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "healthscore"},
        )
        self.sender = {"email": from_email, "name": from_name}
        self.group = unsubscribe_group
        self.categories = categories or []
        self.sent = 0

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code < 300:
            return
        try:
            errors = resp.json().get("errors") or []
        except ValueError:
            errors = []
        detail = (
            "; ".join(
                f"{e.get('field') or ''} {e.get('message', '')}".strip()
                for e in errors
                if isinstance(e, dict)
            )
            or resp.reason_phrase
        )
        if resp.status_code == 429:  # no Retry-After: the window resets at X-RateLimit-Reset
            reset = resp.headers.get("X-RateLimit-Reset")
            wait = max(1.0, float(reset) - time.time()) if reset and reset.isdigit() else 1.0
            raise RateLimited(f"SendGrid {what}: too many requests", retry_after=wait)
        if resp.status_code >= 500:
            raise RetriableError(f"SendGrid {what}: {resp.status_code} {detail}")
        if resp.status_code == 401:
            raise AuthError(f"SendGrid {what}: SENDGRID_API_KEY was rejected ({detail})")
        if resp.status_code == 403:
            raise ConfigError(
                f"SendGrid {what}: {detail} (verify the sender, give the key "
                f"mail.send and suppression read scopes)"
            )
        raise FatalError(f"SendGrid {what}: {resp.status_code} {detail}")

    def suppressed(self) -> set[str]:
        """Global unsubscribes (paged by limit/offset until a short page) and the group's."""
        out: set[str] = set()
        offset, limit = 0, 500
        while True:
            try:
                resp = self.http.get(
                    "/v3/suppression/unsubscribes", params={"limit": limit, "offset": offset}
                )
            except httpx.HTTPError as exc:
                raise RetriableError(f"SendGrid unsubscribes: {exc.__class__.__name__}") from None
            self._check(resp, "unsubscribes")
            page = resp.json()
            out |= {str(r["email"]).lower() for r in page if isinstance(r, dict)}
            if len(page) < limit:
                break
            offset += limit
        if self.group is not None:
            try:
                resp = self.http.get(f"/v3/asm/groups/{self.group}/suppressions")
            except httpx.HTTPError as exc:
                raise RetriableError(
                    f"SendGrid group suppressions: {exc.__class__.__name__}"
                ) from None
            self._check(resp, f"group {self.group} suppressions")
            out |= {str(e).lower() for e in resp.json()}
        return out

    def send(
        self,
        *,
        to: Contact,
        template: str,
        data: dict[str, Any],
        key: str,
        account_id: str,
        subject: str | None,
    ) -> str:
        body: dict[str, Any] = {
            "from": self.sender,
            "template_id": template,
            "personalizations": [
                {
                    "to": [
                        {"email": to.email, **({"name": to.first_name} if to.first_name else {})}
                    ],
                    "dynamic_template_data": data,
                    "custom_args": {"healthscore_key": key, "healthscore_account": account_id},
                }
            ],
        }
        if self.categories:
            body["categories"] = self.categories
        if self.group is not None:
            body["asm"] = {"group_id": self.group}
        try:
            resp = self.http.post("/v3/mail/send", json=body)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "SendGrid mail send") from None
        self._check(resp, "mail send")
        self.sent += 1
        return resp.headers.get("X-Message-Id") or "accepted"
