"""Tech-touch email through SendGrid v3 dynamic templates (``POST /v3/mail/send``).

The sender owns no connection: it sends and reads the suppression lists through the
package's one ``SendGridClient`` (the one the sync uses, when both run in one process), so the
key, the retry policy, the rate-limit waits and the error mapping are the client's.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.outbound import Contact
from connectors.sendgrid.client import SendGridClient

log = logging.getLogger(__name__)


class SendGridSender:
    """``POST /v3/mail/send`` with a dynamic template; the key rides in ``custom_args``."""

    provider = "sendgrid"

    def __init__(
        self,
        client: SendGridClient,
        *,
        from_email: str,
        from_name: str,
        unsubscribe_group: int | None = None,
        categories: list[str] | None = None,
    ) -> None:
        self.client = client
        self.sender = {"email": from_email, "name": from_name}
        self.group = unsubscribe_group
        self.categories = categories or []
        self.sent = 0

    def suppressed(self) -> set[str]:
        """Global unsubscribes and the unsubscribe group's, as the client last read them
        (within its TTL: a sync earlier in the cycle has read them already)."""
        out = {
            str(r["email"]).lower()
            for r in self.client.suppressions("unsubscribes")
            if isinstance(r, dict) and "email" in r
        }
        if self.group is not None:
            out |= {str(e).lower() for e in self.client.group_suppressions(self.group)}
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
        resp = self.client.post("/v3/mail/send", body, what="mail send")
        self.sent += 1
        return resp.headers.get("X-Message-Id") or "accepted"
