"""Tech-touch email through Mailchimp Transactional (Mandrill) templates.

Its own connection: another host, another key (``MANDRILL_API_KEY``, sent in the body) and
another product than the Marketing client's; its errors go through the package's one
``classify``. A failed send is not retried here: the delivery loop keeps it pending.

A batch is one ``send-template`` call: every recipient in ``to`` with ``preserve_recipients``
off (each gets their own message), their template data in ``merge_vars`` and their intent key
in ``recipient_metadata`` (merged over ``metadata`` for that recipient). Mandrill answers one
result per address, so an address appears once a request, and a rejected one (``unsub``,
``hard-bounce``) is skipped alone.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

import httpx

from connectors.mailchimp.client import classify
from connectors.outbound import (
    Contact,
    Outcome,
    OutcomeUnknown,
    OutgoingEmail,
    Rejected,
    send_in_parts,
    transport_error,
)
from healthscore.core.errors import AuthError

log = logging.getLogger(__name__)

BATCH = 500  # recipients a call: our cap (Mandrill publishes none)
ACCEPTED = ("sent", "queued", "scheduled")


class MandrillSender:
    """``messages/send-template`` (key in the body); the intent key rides in ``metadata``."""

    provider = "mailchimp"
    batch_size = BATCH

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

    def check(self) -> list[str]:
        """``users/ping2`` with the key: Mandrill answers ``{"PING": "PONG!"}`` to a valid one
        and ``Invalid_Key`` (raised as ``AuthError``: key rejected) to any other."""
        try:
            resp = self.http.post("/users/ping2.json", json={"key": self.key})
        except httpx.HTTPError as exc:
            raise transport_error(exc, "Mailchimp Transactional users/ping2") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 300 or not isinstance(body, dict) or "PING" not in body:
            error = classify(resp, "users/ping2", api="transactional")
            if isinstance(error, AuthError):
                raise AuthError(f"Mailchimp Transactional key rejected: {error}") from None
            raise error
        return [f"Mailchimp Transactional key accepted (ping2: {body['PING']})"]

    def suppressed(self) -> set[str]:
        return set()  # the rejection list answers per recipient at send time

    def batch_key(self, email: OutgoingEmail) -> Hashable:
        """What must be equal within one call: the template and the subject."""
        return (email.template, email.subject)

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
        """One email in its own call; a rejected recipient raises ``Rejected``."""
        email = OutgoingEmail(key, to, template, data, account_id, subject)
        message = self._message([email])
        message["global_merge_vars"] = [{"name": k, "content": v} for k, v in data.items()]
        message["metadata"] = {"healthscore_key": key, "healthscore_account": account_id}
        result = self._call(template, message).get(to.email.lower())
        if result is None:
            raise OutcomeUnknown(f"Mailchimp Transactional did not answer for {to.email}")
        if isinstance(result, Exception):
            raise result
        return result

    def send_batch(self, emails: list[OutgoingEmail]) -> dict[str, Outcome]:
        """One call per template, subject and ``BATCH`` distinct addresses; an outcome per
        key. An error of a lone call is raised (every item's); later calls' are the items'."""
        parts: list[list[OutgoingEmail]] = []
        for email in emails:
            home = next(
                (
                    p
                    for p in parts
                    if self.batch_key(p[0]) == self.batch_key(email)
                    and len(p) < BATCH
                    and all(e.to.email.lower() != email.to.email.lower() for e in p)
                ),
                None,
            )
            if home is None:
                parts.append([email])
            else:
                home.append(email)
        return send_in_parts(parts, self._send_part)

    def _send_part(self, emails: list[OutgoingEmail]) -> dict[str, Outcome]:
        if len(emails) == 1:  # the single form: global merge vars, the key in ``metadata``
            e = emails[0]
            try:
                return {e.key: self.send(**_fields(e))}
            except Rejected as exc:
                return {e.key: exc}
        message = self._message(emails)
        message["merge_vars"] = [
            {
                "rcpt": e.to.email,
                "vars": [{"name": k, "content": v} for k, v in e.data.items()],
            }
            for e in emails
        ]
        message["metadata"] = {}
        message["recipient_metadata"] = [
            {
                "rcpt": e.to.email,
                "values": {"healthscore_key": e.key, "healthscore_account": e.account_id},
            }
            for e in emails
        ]
        answers = self._call(emails[0].template, message)
        return {
            e.key: answers.get(
                e.to.email.lower(),
                OutcomeUnknown(f"Mailchimp Transactional did not answer for {e.to.email}"),
            )
            for e in emails
        }

    def _message(self, emails: list[OutgoingEmail]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "from_email": self.from_email,
            "from_name": self.from_name,
            "to": [{"email": e.to.email, "name": e.to.first_name, "type": "to"} for e in emails],
            "merge_language": "handlebars",
            "tags": self.tags,
            "preserve_recipients": False,
        }
        if emails[0].subject:
            message["subject"] = emails[0].subject
        return message

    def _call(self, template: str, message: dict[str, Any]) -> dict[str, str | Exception]:
        """One ``send-template`` call: each address's message id, or ``Rejected``."""
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
        out: dict[str, str | Exception] = {}
        for result in body if isinstance(body, list) else []:
            if not isinstance(result, dict):
                continue
            address = str(result.get("email") or "").lower()
            status = result.get("status")
            if status in ACCEPTED:
                self.sent += 1
                out[address] = str(result.get("_id") or "accepted")
            else:
                out[address] = Rejected(
                    f"Mailchimp Transactional {status}: "
                    f"{result.get('reject_reason') or 'invalid address'}"
                )
        return out


def _fields(email: OutgoingEmail) -> dict[str, Any]:
    return {
        "to": email.to,
        "template": email.template,
        "data": email.data,
        "key": email.key,
        "account_id": email.account_id,
        "subject": email.subject,
    }
