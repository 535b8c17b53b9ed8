"""Tech-touch email through httpx: SendGrid v3 dynamic templates or Mailchimp Transactional.

Recipients are the account's CRM contacts in the action's roles (Salesforce Contacts with
``Role__c``/``Title``, HubSpot contacts with their job title), minus anyone unsubscribed: the
CRM's opt-out flag, the local suppression list, and the provider's own lists (SendGrid's global
and group unsubscribes, read once per delivery run; Mailchimp Transactional answers
``rejected``/``unsub`` per recipient). A per-contact frequency cap is counted from the action log.

Neither provider can be asked "did you already send the message with key K?" on its send API —
SendGrid's Email Activity search is a paid add-on and ``custom_args`` are not searchable — so
email is *at most once*: the per-contact intent (key ``rule:account:episode[:dN]:email:contact``)
is stored before the request, and an outcome we could not see stays ``unknown``, never re-sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from healthscore.core.errors import AuthError, ConfigError, FatalError, RateLimited, RetriableError
from store import Store

log = logging.getLogger(__name__)

SALESFORCE_CONTACTS = ("salesforce", "Contact")
HUBSPOT_CONTACTS = ("hubspot", "contacts")


class OutcomeUnknown(Exception):
    """The request may or may not have been accepted (timeout, connection lost mid-answer)."""


class Rejected(Exception):
    """The provider refused this recipient (unsubscribed, bounced): skip it, do not retry."""


@dataclass(frozen=True)
class Contact:
    id: str
    email: str
    first_name: str
    role: str
    opted_out: bool
    source: str


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() == "true"


def account_contacts(store: Store, account_ids: Iterable[str]) -> dict[str, list[Contact]]:
    """Each account's contacts from both CRMs (one per address; an opt-out anywhere wins)."""
    ids = list(account_ids)
    out: dict[str, dict[str, Contact]] = {a: {} for a in ids}
    for source, obj in (SALESFORCE_CONTACTS, HUBSPOT_CONTACTS):
        for account_id, records in store.source_records(source, obj, ids).items():
            for r in records:
                if source == "salesforce":
                    email, first = r.get("Email"), r.get("FirstName")
                    role = r.get("Role__c") or r.get("Title") or ""
                    opted_out, rid = _truthy(r.get("HasOptedOutOfEmail")), r.get("Id")
                else:
                    email, first = r.get("email"), r.get("firstname")
                    role = r.get("jobtitle") or ""
                    opted_out, rid = _truthy(r.get("hs_email_optout")), r.get("hs_object_id")
                if not email or "@" not in str(email):
                    continue
                email = str(email).strip().lower()
                contact = Contact(
                    str(rid or email), email, str(first or ""), str(role), opted_out, source
                )
                held = out[account_id].get(email)
                if held is not None:  # the first CRM's identity, an opt-out in either
                    contact = replace(held, opted_out=held.opted_out or opted_out)
                out[account_id][email] = contact
    return {a: sorted(c.values(), key=lambda c: c.email) for a, c in out.items()}


def in_roles(contact: Contact, roles: list[str]) -> bool:
    """A role matches the CRM role exactly, or appears in the title (case-insensitive)."""
    have = contact.role.casefold()
    return any(r.casefold() == have or r.casefold() in have for r in roles)


def locally_suppressed(email: str, suppressed: Iterable[str]) -> bool:
    domain = "@" + email.rsplit("@", 1)[-1]
    return any(s.lower() in (email, domain) for s in suppressed)


class EmailSender(Protocol):
    provider: str

    def suppressed(self) -> set[str]: ...

    def send(
        self,
        *,
        to: Contact,
        template: str,
        data: dict[str, Any],
        key: str,
        account_id: str,
        subject: str | None,
    ) -> str: ...


def _transport_error(exc: httpx.HTTPError, what: str) -> Exception:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):  # nothing left the host
        return RetriableError(f"{what}: unreachable ({exc.__class__.__name__})")
    return OutcomeUnknown(f"{what}: {exc.__class__.__name__}: {exc}")


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
            raise _transport_error(exc, "SendGrid mail send") from None
        self._check(resp, "mail send")
        self.sent += 1
        return resp.headers.get("X-Message-Id") or "accepted"


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
            raise _transport_error(exc, "Mailchimp Transactional send-template") from None
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


def email_senders(settings: Any, email: Any) -> dict[str, EmailSender]:
    """A sender per provider whose API key is set (``healthscore.core.settings.Settings``)."""
    senders: dict[str, EmailSender] = {}
    common = {
        "from_email": email.from_email,
        "from_name": email.from_name,
        "categories": email.categories,
    }
    if settings.sendgrid_api_key is not None:
        senders["sendgrid"] = SendGridSender(
            settings.sendgrid_api_key.get_secret_value(),
            base_url=settings.sendgrid_base_url,
            unsubscribe_group=email.unsubscribe_group,
            **common,
        )
    if settings.mandrill_api_key is not None:
        senders["mailchimp"] = MandrillSender(
            settings.mandrill_api_key.get_secret_value(),
            base_url=settings.mandrill_base_url,
            **common,
        )
    return senders
