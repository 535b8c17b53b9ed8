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
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
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


MAX_TIMESTAMP_DIGITS = 12  # epoch seconds have 10 digits until the year 2286
MAX_SIGNATURE_CHARS = 256  # a base64 DER P-256 signature is at most 96 characters


class MalformedHeaderError(SignatureError):
    """A signature header that is not even well-formed: a bad request rather than a forgery."""


@dataclass(frozen=True)
class SignedHeaders:
    """The checked signature headers of a request: its timestamp and DER signature."""

    timestamp: str
    signature: bytes

    def digest(self, body: bytes = b"") -> SignedDigest:
        """A running SHA-256 of ``timestamp + body``; feed it the body with ``update``."""
        return SignedDigest(self, body)


class SignedDigest:
    """What SendGrid signs, hashed as it arrives, so a body need not be held to be checked."""

    def __init__(self, headers: SignedHeaders, body: bytes = b"") -> None:
        self.headers = headers
        self._hash = hashes.Hash(hashes.SHA256())
        self._hash.update(headers.timestamp.encode("ascii"))
        self._hash.update(body)

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def verify(self, key: ec.EllipticCurvePublicKey) -> None:
        """Raise ``SignatureError`` unless the bytes fed in were signed with ``key``."""
        try:
            key.verify(
                self.headers.signature,
                self._hash.finalize(),
                ec.ECDSA(Prehashed(hashes.SHA256())),
            )
        except (InvalidSignature, ValueError):
            raise SignatureError("signature does not match") from None


def signed_headers(headers: Mapping[str, str], *, now: float, max_age: float) -> SignedHeaders:
    """The signature headers, checked before any body is read.

    ``MalformedHeaderError`` for a timestamp that is not epoch seconds (ASCII digits, at most
    ``MAX_TIMESTAMP_DIGITS``); ``SignatureError`` for a missing header, a stale timestamp or a
    signature that is not base64 of a plausible length. Header values are never echoed.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    if not signature or not stamp:
        raise SignatureError("missing signature or timestamp header")
    stamp = stamp.strip()
    if not (len(stamp) <= MAX_TIMESTAMP_DIGITS and stamp.isascii() and stamp.isdigit()):
        raise MalformedHeaderError(
            f"{TIMESTAMP_HEADER} is not epoch seconds (at most {MAX_TIMESTAMP_DIGITS} digits)"
        )
    age = abs(now - int(stamp))
    if age > max_age:
        raise SignatureError(f"timestamp is {age:.0f}s away from now (limit {max_age:.0f}s)")
    signature = signature.strip()
    if len(signature) > MAX_SIGNATURE_CHARS or not signature.isascii():
        raise SignatureError("signature is not base64")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not base64") from None
    if not raw:
        raise SignatureError("signature is not base64")
    return SignedHeaders(stamp, raw)


def verify(
    key: ec.EllipticCurvePublicKey,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    max_age: float,
) -> None:
    """Raise ``SignatureError`` unless ``body`` was signed by SendGrid within ``max_age``."""
    signed_headers(headers, now=now, max_age=max_age).digest(body).verify(key)


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
