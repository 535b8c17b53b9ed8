"""Slack mrkdwn: untrusted text escaped, links that cannot be forged by an account name."""

from __future__ import annotations


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's three control characters, and nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str:
    label = escape_mrkdwn(label).replace("|", "¦")
    return f"<{url}|{label}>" if url else label
