"""SendGrid's signed Event Webhook: verify a request, turn its events into facts.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256 and sends the base64 DER
signature in ``X-Twilio-Email-Event-Webhook-Signature`` and the epoch-seconds timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``. The verification key (Mail Settings → Signed
Event Webhook) is base64 DER; a PEM block is accepted too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from connectors.email.engagement import fact, parse_time
from healthscore.core.errors import ConfigError

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# event → the flag it sets on its message (processed/deferred/resubscribe set none)
EVENT_FLAGS = {
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "dropped": "dropped",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "spamreport": "unsubscribed",
}
KNOWN_EVENTS = {*EVENT_FLAGS, "processed", "deferred", "group_resubscribe"}


class SignatureError(Exception):
    """The request is not provably from SendGrid (bad, missing or stale signature)."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from SENDGRID_WEBHOOK_PUBLIC_KEY (base64 DER or PEM)."""
    if not text or not text.strip():
        raise ConfigError(
            "missing environment variable: SENDGRID_WEBHOOK_PUBLIC_KEY (the "
            "verification key of SendGrid's Signed Event Webhook)"
        )
    try:
        raw = text.strip()
        key = (
            load_pem_public_key(raw.encode())
            if raw.startswith("-----BEGIN")
            else load_der_public_key(base64.b64decode(raw, validate=True))
        )
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY: not a base64 DER or PEM public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY: not an ECDSA P-256 public key")
    return key


def verify(
    key: ec.EllipticCurvePublicKey,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    max_age: float,
) -> None:
    """Raise ``SignatureError`` unless ``body`` was signed by SendGrid within ``max_age``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    if not signature or not stamp:
        raise SignatureError("missing signature or timestamp header")
    if not stamp.isdigit():
        raise SignatureError("timestamp is not epoch seconds")
    if abs(now - int(stamp)) > max_age:
        raise SignatureError(
            f"timestamp is {abs(now - int(stamp)):.0f}s away from now (limit {max_age:.0f}s)"
        )
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            stamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError("signature does not match") from None


@dataclass(frozen=True)
class EventFact:
    event_id: str
    fact: dict[str, Any]


def event_fact(event: Any) -> EventFact:
    """One webhook event → its fact; ValueError (with the reason) when it is malformed."""
    if not isinstance(event, dict):
        raise ValueError("event is not an object")
    event_id = event.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("no sg_event_id")
    kind, email = event.get("event"), event.get("email")
    if kind not in KNOWN_EVENTS:
        raise ValueError(f"unknown event {kind!r}")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"email {email!r} is not an address")
    at = parse_time(event.get("timestamp")) if isinstance(event.get("timestamp"), int) else None
    if at is None:
        raise ValueError(f"timestamp {event.get('timestamp')!r} is not epoch seconds")
    message = event.get("sg_message_id")
    if not isinstance(message, str) or not message:
        raise ValueError("no sg_message_id")
    categories = event.get("category") or []
    if isinstance(categories, str):
        categories = [categories]
    flag = EVENT_FLAGS.get(kind)
    if kind == "open" and event.get("sg_machine_open") is True:
        flag = None  # Apple Mail Privacy Protection: the proxy opened it, not the person
    flags = {flag: True} if flag else {}
    return EventFact(
        event_id,
        fact(
            message,
            email,
            at,
            categories=[str(c) for c in categories if isinstance(c, str)],
            **flags,
        ),
    )
