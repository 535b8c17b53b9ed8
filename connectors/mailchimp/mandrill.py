"""Tech-touch email through Mailchimp Transactional (Mandrill) templates.

Its own connection: another host, another key (``MANDRILL_API_KEY``, sent in the body) and
another product than the Marketing client's; its errors go through the package's one
``classify``. A failed send is not retried here: the delivery loop keeps it pending.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from connectors.mailchimp.client import classify
from connectors.outbound import Contact, Rejected, transport_error

log = logging.getLogger(__name__)


class MandrillSender:
    """``messages/send-template`` (key in the body); the intent key rides in ``metadata``."""

    provider = "mailchimp"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://mandrillapp.com/api/1.3",
        from_email: str,
        from_name: str,
        categories: list[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"User-Agent": "healthscore"}
        )
        self.key = api_key
        self.from_email, self.from_name = from_email, from_name
        self.tags = categories or []
        self.sent = 0

    def suppressed(self) -> set[str]:
        return set()  # the rejection list answers per recipient at send time

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
        message: dict[str, Any] = {
            "from_email": self.from_email,
            "from_name": self.from_name,
            "to": [{"email": to.email, "name": to.first_name, "type": "to"}],
            "merge_language": "handlebars",
            "global_merge_vars": [{"name": k, "content": v} for k, v in data.items()],
            "tags": self.tags,
            "metadata": {"healthscore_key": key, "healthscore_account": account_id},
            "preserve_recipients": False,
        }
        if subject:
            message["subject"] = subject
        try:
            resp = self.http.post(
                "/messages/send-template.json",
                json={
                    "key": self.key,
                    "template_name": template,
                    "template_content": [],
                    "message": message,
                    "async": False,
                },
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "Mailchimp Transactional send-template") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 300 or isinstance(body, dict):  # a list answers a send
            raise classify(resp, "send-template", api="transactional")
        result = body[0] if isinstance(body, list) and body else {}
        status = result.get("status")
        if status in ("rejected", "invalid"):
            raise Rejected(
                f"Mailchimp Transactional {status}: "
                f"{result.get('reject_reason') or 'invalid address'}"
            )
        self.sent += 1
        return str(result.get("_id") or "accepted")
