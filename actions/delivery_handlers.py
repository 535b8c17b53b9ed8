"""The Slack and email back ends of delivery (CSM tasks come from the record CRM's package).

Slack has no batch post: one message a request, each looked up by the key in its metadata.
Email goes through the provider's sender in batches of one template (and subject); email can
not be looked up, so it is never reconciled — at most once (see ``actions.email``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from actions.email import EmailSender
from actions.slack import SlackAlerter, build_alert, build_digest
from connectors.outbound import Contact, Outcome, OutgoingEmail
from healthscore.core.errors import ConfigError, FatalError
from store.models import ActionLog

log = logging.getLogger("actions.deliver")  # one logger for delivery, whatever module


class SlackHandler:
    kind = "slack"
    reconcilable = True
    batch_size = 1  # chat.postMessage posts one message

    def __init__(self, alerter: SlackAlerter, default_channel: str | None) -> None:
        self.alerter = alerter
        self.default_channel = default_channel

    def channel(self, action: ActionLog) -> str | None:
        return action.target or self.default_channel

    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """Post each; a refusal of the token or a rate limit is raised (it is everyone's),
        a channel Slack refuses is that item's failure."""
        out: dict[str, Outcome] = {}
        for action in actions:
            channel = self.channel(action)
            if not channel:  # our setting, not the alert's fault: it waits for one
                out[action.key] = ConfigError(
                    "no Slack channel configured (SLACK_ALERT_CHANNEL or the rule's channel)"
                )
                continue
            if action.payload.get("digest") is True:
                message = build_digest(action.payload)
            else:
                message = build_alert(
                    action.payload, self.alerter.mention(action.payload.get("owner_email"))
                )
            try:
                ts = self.alerter.post(channel, message, key=action.key)
            except ConfigError as exc:  # channel_not_found, is_archived …: this alert's channel
                out[action.key] = FatalError(str(exc))
                continue
            out[action.key] = f"{channel}/{ts}"
        return out

    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]:
        """Each message by the key in its metadata (``conversations.history``); an alert
        whose channel could not be read is left out (checked again next run)."""
        out: dict[str, str | None] = {}
        for action in actions:
            channel = self.channel(action)
            if not channel:
                continue
            try:
                ts = self.alerter.find(
                    channel, action.key, oldest=action.created_at.timestamp() - 60
                )
            except Exception as exc:  # this one stays as it is; the others go on
                log.warning("could not reconcile %s yet: %s", action.key, exc)
                continue
            out[action.key] = None if ts is None else f"{channel}/{ts}"
        return out


class EmailHandler:
    kind = "email_send"
    reconcilable = False

    def __init__(self, senders: dict[str, EmailSender]) -> None:
        self.senders = senders
        self.batch_size = max((s.batch_size for s in senders.values()), default=1)

    @staticmethod
    def email(action: ActionLog) -> OutgoingEmail:
        p = action.payload
        return OutgoingEmail(
            key=action.key,
            to=Contact(**p["contact"]),
            template=p["template"],
            data=p["data"],
            account_id=action.account_id,
            subject=p.get("subject"),
        )

    def destination(self, action: ActionLog) -> Hashable:
        """A provider refusing our key holds back its own emails, not the other's."""
        return ("email_send", action.payload["provider"])

    def batch_key(self, action: ActionLog) -> Hashable:
        provider = action.payload["provider"]
        sender = self.senders.get(provider)
        return (provider, None if sender is None else sender.batch_key(self.email(action)))

    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        provider = actions[0].payload["provider"]
        sender = self.senders.get(provider)
        if sender is None:  # a setting to fix: the emails wait for it
            missing = ConfigError(f"no API key for the {provider} email provider")
            return {a.key: missing for a in actions}
        return sender.send_batch([self.email(a) for a in actions])

    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]:  # pragma: no cover
        raise NotImplementedError("email providers offer no look-up by key")
