"""OAuth 2.0 token endpoint of the Salesforce emulator (client credentials and JWT bearer).

Failures are 400 ``{"error", "error_description"}``.  Client credentials: an unknown (or absent)
client id is ``invalid_client_id`` / ``client identifier invalid``, a wrong secret
``invalid_client`` / ``invalid client credentials``.  JWT bearer: a bad assertion is
``invalid_grant``; an unknown ``iss`` still answers ``invalid_client`` (pinned by
tests/test_sandbox_salesforce.py).  Any other grant type: ``unsupported_grant_type``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

import jwt

from sandbox.wire import Request, Response

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00DSB0000000001AAA"
INTEGRATION_USER_ID = "005SB000000INTGAAA"


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, {"error": error, "error_description": description})


class TokenIssuer:
    """Issues opaque access tokens and remembers which ones are valid."""

    def __init__(
        self, *, client_id: str, client_secret: str, jwt_public_key: str | bytes | None = None
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt_public_key = jwt_public_key
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens.add(token)
        return token

    def is_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ endpoint
    def token_response(self, req: Request, instance_url: str) -> Response:
        """Handle ``POST /services/oauth2/token`` (form-encoded)."""
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            error = self._check_client_credentials(req, form)
        elif grant == JWT_GRANT:
            error = self._check_jwt(form.get("assertion", ""))
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if error is not None:
            return error
        return Response(200, self._success_body(instance_url))

    def _success_body(self, instance_url: str) -> dict[str, Any]:
        issued_at = str(int(time.time() * 1000))
        identity = f"{instance_url}/id/{ORG_ID}/{INTEGRATION_USER_ID}"
        digest = hmac.new(
            self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        return {
            "access_token": self.issue(),
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
            "scope": "api",
        }

    def _check_client_credentials(self, req: Request, form: dict[str, str]) -> Response | None:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = req.header("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
            client_id, _, client_secret = decoded.partition(":")
        if not hmac.compare_digest((client_id or "").encode(), self.client_id.encode()):
            # unknown (or absent) consumer key: Salesforce's own error code, not RFC 6749's
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest((client_secret or "").encode(), self.client_secret.encode()):
            return _oauth_error("invalid_client", "invalid client credentials")
        return None

    def _check_jwt(self, assertion: str) -> Response | None:
        options = {
            "verify_exp": False,
            "verify_aud": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("alg") != "RS256":
                return _oauth_error("invalid_grant", "invalid assertion")
            if self.jwt_public_key is not None:
                claims = jwt.decode(
                    assertion, self.jwt_public_key, algorithms=["RS256"], options=options
                )
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.client_id:
            return _oauth_error("invalid_client", "client identifier invalid")
        if not claims.get("sub"):
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            expires = float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expires < time.time():
            return _oauth_error("invalid_grant", "expired authorization code")
        return None
