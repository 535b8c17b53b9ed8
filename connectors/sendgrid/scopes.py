"""The SendGrid API key's scopes (``GET /v3/scopes``) against what healthscore calls with it.

A key missing a scope answers 403 on that endpoint only, so a cycle would fail halfway (the
sync reads, the send refused): ``check`` asks once and names every missing scope. Each needed
scope is listed with the call that needs it; ``suppression.read`` (the whole family) stands
in for any ``suppression.<list>.read``.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.sendgrid.client import SendGridClient
from connectors.sendgrid.config import SendGridSource
from healthscore.core.errors import AuthError, FatalError

SEND = {"mail.send": "POST /v3/mail/send (tech-touch email)"}
UNSUBSCRIBES = {"suppression.unsubscribes.read": "GET /v3/suppression/unsubscribes"}
GROUP = {"asm.groups.suppressions.read": "GET /v3/asm/groups/{id}/suppressions"}


def sender_scopes(unsubscribe_group: int | None) -> dict[str, str]:
    """What the tech-touch sender calls: mail send, and the unsubscribe lists it honours."""
    return {**SEND, **UNSUBSCRIBES, **(GROUP if unsubscribe_group is not None else {})}


def sync_scopes(source: SendGridSource) -> dict[str, str]:
    """What the engagement sync calls, for this ``sources.sendgrid`` section."""
    needed = {"suppression.bounces.read": "GET /v3/suppression/bounces", **UNSUBSCRIBES}
    if source.categories:
        needed["categories.stats.read"] = "GET /v3/categories/stats"
    else:
        needed["stats.read"] = "GET /v3/stats"
    if source.per_recipient == "activity_api":
        needed["email_activity.read"] = "GET /v3/messages (Email Activity)"
    return needed


def granted(client: SendGridClient) -> set[str]:
    """The key's scopes; a key SendGrid rejects raises ``AuthError`` saying so."""
    try:
        body = client.get("/v3/scopes")
    except AuthError as exc:  # any valid key may read its own scopes
        raise AuthError(f"SendGrid key rejected: {exc}") from None
    scopes = body.get("scopes") if isinstance(body, dict) else None
    if not isinstance(scopes, list):
        raise FatalError("SendGrid GET /v3/scopes: the answer has no 'scopes' list")
    return {str(s) for s in scopes}


def require(client: SendGridClient, needed: Mapping[str, str], what: str) -> str:
    """Raise ``AuthError`` naming each needed scope the key lacks; else a line saying so."""
    have = granted(client)
    missing = [
        scope
        for scope in needed
        if scope not in have
        and not (scope.startswith("suppression.") and "suppression.read" in have)
    ]
    if missing:
        raise AuthError(
            f"SendGrid {what}: SENDGRID_API_KEY lacks the scope(s) "
            + ", ".join(f"{s} ({needed[s]})" for s in missing)
            + " — edit the key's permissions in SendGrid (Settings → API Keys)"
        )
    return f"SendGrid {what}: key has {', '.join(needed)}"
