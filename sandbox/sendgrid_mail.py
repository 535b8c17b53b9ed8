"""SendGrid error bodies and the v3 Mail Send validation of the SendGrid emulator.

Every error is ``{"errors": [{"message", "field", "help"}]}`` as SendGrid sends it:

- Mail Send 400s carry ``help``, a link into SendGrid's "Mail Send Errors" reference
  (``http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.<field>``; the
  anchors are those of the reference's error tables: ``message.from``, ``message.subject``,
  ``message.content``, ``message.personalizations``, ``message.personalizations.to``,
  ``message.personalizations.custom_args``), and list every problem of the request at once.
- An unparsable body is ``Bad Request`` and a sender that is not a verified Sender Identity a
  403, both with ``"help": null``; so are a rejected API key on Mail Send ("The provided
  authorization grant is invalid, expired, or revoked") and the other endpoints' errors.
- 401 ``authorization required`` and 429 ``too many requests`` have no ``help`` key at all
  (/work/shared/api-specs/sendgrid.md §1 and §5).
"""

from __future__ import annotations

from typing import Any

from sandbox.wire import Response

JSON = "application/json"
MAIL_SEND = "/v3/mail/send"
HELP_BASE = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"
MAX_PERSONALIZATIONS = 1000
GRANT_REJECTED = "The provided authorization grant is invalid, expired, or revoked"
SENDER_NOT_VERIFIED = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent until this "
    "error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/"
    "sender-identity/ to see the Sender Identity requirements"
)
_FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires the "
    'email parameter, but may also contain a name parameter.  e.g. {"email" : '
    '"example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.'
)
_SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with a "
    "subject defined or if every personalization has a subject defined."
)
_CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at "
    "least one defined content block. We typically suggest both text/plain and text/html blocks "
    "are included, but only one block is required."
)
_TO_REQUIRED = (
    "The to array is required for all personalization objects, and must have at least one email "
    "object with a valid email address."
)
_PERSONALIZATIONS_REQUIRED = (
    "The personalizations field is required and must have at least one personalization."
)
_NOT_AN_ADDRESS = "Does not contain a valid address."
#: JSON type names SendGrid's schema validation reports ("Expected: string, given: integer.")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}

Error = dict[str, Any]


def error(message: str, field: str | None = None, help_anchor: str | None = None) -> Error:
    """One ``errors`` item; ``help_anchor`` names the Mail Send reference section."""
    return {
        "message": message,
        "field": field,
        "help": HELP_BASE + help_anchor if help_anchor else None,
    }


def errors_response(
    status: int, items: list[Error], headers: dict[str, str] | None = None
) -> Response:
    return Response(status, {"errors": items}, {"Content-Type": JSON, **(headers or {})})


def errors(
    status: int,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    bare: bool = False,
) -> Response:
    """One error; ``bare``: ``{"field", "message"}`` without ``help`` (the 401/429 bodies)."""
    item = {"field": field, "message": message} if bare else error(message, field)
    return errors_response(status, [item], headers)


def unauthorized(path: str, *, key_sent: bool) -> Response:
    """401: ``authorization required`` (bare) — except a Mail Send with a key SendGrid rejects,
    which answers like Mail Send's own errors, ``help: null``."""
    if key_sent and path.rstrip("/") == MAIL_SEND:
        return errors_response(401, [error(GRANT_REJECTED)])
    return errors(401, "authorization required", bare=True)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for t, name in _JSON_TYPES.items() if isinstance(value, t)), "string")


def _personalization_errors(i: int, p: Any) -> list[Error]:
    where = f"personalizations.{i}"
    to = p.get("to") if isinstance(p, dict) else None
    if not isinstance(to, list) or not to:
        return [error(_TO_REQUIRED, f"{where}.to", "message.personalizations.to")]
    out = [
        error(_NOT_AN_ADDRESS, f"{where}.to.{j}.email", "message.personalizations.to")
        for j, r in enumerate(to)
        if not isinstance(r, dict) or "@" not in str(r.get("email", ""))
    ]
    custom_args = p.get("custom_args") or {}
    if isinstance(custom_args, dict):
        out += [
            error(
                f"Invalid type. Expected: string, given: {_json_type(v)}.",
                f"{where}.custom_args.{k}",
                "message.personalizations.custom_args",
            )
            for k, v in custom_args.items()
            if not isinstance(v, str)
        ]
    return out


def mail_problem(body: Any, verified: set[str]) -> Response | None:
    """SendGrid's 400/403 answer to a Mail Send body, or None when it is accepted.

    ``verified``: the verified sender addresses (empty: any sender is accepted).
    """
    if not isinstance(body, dict):
        return errors_response(400, [error("Bad Request")])
    found: list[Error] = []
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        found.append(error(_FROM_REQUIRED, "from.email", "message.from"))
    elif "@" not in str(sender["email"]):
        found.append(
            error("The from email does not contain a valid address.", "from.email", "message.from")
        )
    people = body.get("personalizations")
    if body.get("template_id") is None:
        subjects = (
            isinstance(people, list)
            and bool(people)
            and all(isinstance(p, dict) and p.get("subject") for p in people)
        )
        if not body.get("subject") and not subjects:
            found.append(error(_SUBJECT_REQUIRED, "subject", "message.subject"))
        if not body.get("content"):
            found.append(error(_CONTENT_REQUIRED, "content", "message.content"))
    if not isinstance(people, list) or not people:
        found.append(
            error(_PERSONALIZATIONS_REQUIRED, "personalizations", "message.personalizations")
        )
    elif len(people) > MAX_PERSONALIZATIONS:
        message = (
            f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per "
            f"API request. You have provided {len(people)} personalizations. Please consider "
            "splitting this into multiple requests and resending your request."
        )
        found.append(error(message, "personalizations", "message.personalizations"))
    else:
        for i, p in enumerate(people):
            found += _personalization_errors(i, p)
    if found:
        return errors_response(400, found)
    if verified and str(sender["email"]).lower() not in verified:
        return errors_response(403, [error(SENDER_NOT_VERIFIED, "from")])
    return None
