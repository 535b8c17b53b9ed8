"""Slack messages for governance: a source stopped syncing (operations), an override ends
soon (its owner). Untrusted text is escaped like every alert."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from actions.mrkdwn import escape_mrkdwn, link


def build_source_stale(payload: dict[str, Any]) -> dict[str, Any]:
    source = escape_mrkdwn(str(payload.get("source", "?")))
    age = escape_mrkdwn(str(payload.get("age", "?")))
    limit = escape_mrkdwn(str(payload.get("limit", "?")))
    accounts = int(payload.get("accounts") or 0)
    headline = (
        f":warning: *{source}* has not synced for *{age}* (limit {limit}): "
        f"{accounts} accounts are flagged stale until it syncs again"
    )
    since = escape_mrkdwn(str(payload.get("last_sync", "")))
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=headline)),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Last complete sync: {since} · check `healthscore sources` and the "
                    f"worker logs"
                )
            ]
        ),
    ]
    return {
        "text": f"{source} has not synced for {age}; {accounts} accounts stale",
        "blocks": [b.to_dict() for b in blocks],
    }


def build_override_expiring(payload: dict[str, Any], mention: str | None) -> dict[str, Any]:
    name = str(payload.get("name", ""))
    override = payload.get("override") or {}
    until = escape_mrkdwn(str(override.get("expires_at", ""))[:10])
    grade = escape_mrkdwn(str(override.get("grade", "")))
    computed = escape_mrkdwn(str(payload.get("computed_grade") or "unknown"))
    who = mention or escape_mrkdwn(str(payload.get("owner_name") or "owner"))
    headline = (
        f":hourglass: {who}: the *{grade}* override on "
        f"*{link(payload.get('crm_url'), name)}* expires on *{until}*; the account "
        f"then goes back to its computed grade (*{computed}* today)"
    )
    reason = escape_mrkdwn(str(override.get("reason") or ""))
    setter = escape_mrkdwn(str(override.get("set_by") or ""))
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=headline[:3000])),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Set by {setter}: {reason}"[:3000] + " · renew it with `healthscore "
                    "override` or in the CRM"
                )
            ]
        ),
    ]
    return {
        "text": f"{escape_mrkdwn(name)}: the {grade} override expires on {until}",
        "blocks": [b.to_dict() for b in blocks],
    }
