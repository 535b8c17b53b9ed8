"""Tech-touch email through Mailchimp Transactional (Mandrill) templates."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from connectors.outbound import Contact, Rejected, transport_error
from healthscore.core.errors import AuthError, FatalError, RateLimited, RetriableError

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
        if resp.status_code >= 300 or isinstance(body, dict):
            self._raise(resp.status_code, body if isinstance(body, dict) else {})
        result = body[0] if isinstance(body, list) and body else {}
        status = result.get("status")
        if status in ("rejected", "invalid"):
            raise Rejected(
                f"Mailchimp Transactional {status}: "
                f"{result.get('reject_reason') or 'invalid address'}"
            )
        self.sent += 1
        return str(result.get("_id") or "accepted")

    @staticmethod
    def _raise(status: int, body: dict[str, Any]) -> None:
        name, message = str(body.get("name", "")), str(body.get("message", status))
        what = "Mailchimp Transactional send-template"
        # the 1.3 API answers every error with 500: classify by name
        if name == "Invalid_Key" or status == 401:
            raise AuthError(f"{what}: MANDRILL_API_KEY was rejected ({message})")
        if name == "RequestLimitExceeded" or status == 429:
            raise RateLimited(f"{what}: {message}", retry_after=None)
        if name in ("Unknown_Template", "ValidationError", "Unknown_Subaccount", "PaymentRequired"):
            raise FatalError(f"{what}: {name}: {message}")
        raise RetriableError(f"{what}: {name or status}: {message}")
