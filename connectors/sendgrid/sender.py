"""Tech-touch email through SendGrid v3 dynamic templates (``POST /v3/mail/send``).

The sender owns no connection: it sends and reads the suppression lists through the
package's one ``SendGridClient`` (the one the sync uses, when both run in one process), so the
key, the retry policy, the rate-limit waits and the error mapping are the client's.

A batch is one request: one personalization per recipient (up to 1,000 a request), each with
its own intent key in ``custom_args``. ``template_id`` is per request, so a batch holds one
template. SendGrid validates the whole request and names a bad recipient by its index
(``personalizations.3.to.0.email``): that recipient fails alone and the rest — nothing was sent
— go again in one request. Any other refusal is the request's, so every item shares it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable
from typing import Any

from connectors.outbound import Contact, Outcome, OutgoingEmail, chunks, send_in_parts
from connectors.sendgrid.client import SendGridClient
from connectors.sendgrid.scopes import require, sender_scopes
from healthscore.core.errors import AuthError, FatalError

log = logging.getLogger(__name__)

BATCH = 1000  # personalizations (and recipients) a mail send takes
_ITEM = re.compile(r"personalizations\.(\d+)\.")


class SendGridSender:
    """``POST /v3/mail/send`` with a dynamic template; the key rides in ``custom_args``."""

    provider = "sendgrid"
    batch_size = BATCH

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

    def check(self) -> list[str]:
        """The key is accepted and has every scope sending needs (``GET /v3/scopes``)."""
        return [require(self.client, sender_scopes(self.group), "tech-touch sender")]

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

    def batch_key(self, email: OutgoingEmail) -> Hashable:
        """What must be equal within one request: the template (``template_id``)."""
        return email.template

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
        """One email in its own request (errors raised as the client typed them)."""
        email = OutgoingEmail(key, to, template, data, account_id, subject)
        return self._post(template, [email], what="mail send")

    def send_batch(self, emails: list[OutgoingEmail]) -> dict[str, Outcome]:
        """One request per template and ``BATCH`` recipients; an outcome per key. An error
        of a lone request is raised (it is every item's); later requests' are the items'."""
        parts = [
            part
            for template in dict.fromkeys(e.template for e in emails)
            for part in chunks([e for e in emails if e.template == template], BATCH)
        ]
        return send_in_parts(parts, self._send_part)

    def _send_part(self, emails: list[OutgoingEmail]) -> dict[str, Outcome]:
        template = emails[0].template
        try:
            message_id = self._post(template, emails, what="mail send")
        except AuthError:
            raise
        except FatalError as exc:  # a 4xx: SendGrid sent nothing of this request
            reasons = str(exc).split("; ")
            bad = {int(i) for i in _ITEM.findall(str(exc)) if int(i) < len(emails)}
            if not bad or len(emails) == 1:
                raise
            out: dict[str, Outcome] = {
                emails[i].key: FatalError(
                    f"SendGrid refused {emails[i].to.email}: "
                    + "; ".join(r for r in reasons if f"personalizations.{i}." in r)
                )
                for i in sorted(bad)
            }
            rest = [e for i, e in enumerate(emails) if i not in bad]
            log.warning(
                "SendGrid refused %d of %d recipients; sending the rest", len(bad), len(emails)
            )
            try:
                out.update(self._send_part(rest))
            except Exception as again:  # the rest keep what happened to them
                out.update({e.key: again for e in rest})
            return out
        return {e.key: message_id for e in emails}

    def _post(self, template: str, emails: list[OutgoingEmail], *, what: str) -> str:
        body: dict[str, Any] = {
            "from": self.sender,
            "template_id": template,
            "personalizations": [self._personalization(e) for e in emails],
        }
        if self.categories:
            body["categories"] = self.categories
        if self.group is not None:
            body["asm"] = {"group_id": self.group}
        resp = self.client.post("/v3/mail/send", body, what=what)
        self.sent += len(emails)
        return resp.headers.get("X-Message-Id") or "accepted"

    @staticmethod
    def _personalization(email: OutgoingEmail) -> dict[str, Any]:
        to = email.to
        return {
            "to": [{"email": to.email, **({"name": to.first_name} if to.first_name else {})}],
            "dynamic_template_data": email.data,
            "custom_args": {"healthscore_key": email.key, "healthscore_account": email.account_id},
        }
