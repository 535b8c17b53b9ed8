"""Delivery: Slack alerts, CSM tasks in the record CRM and tech-touch emails, each intent
once (``actions.deliver``); the back ends come from the registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from actions import Channels, DeliveryHooks, DeliveryReport, SlackAlerter, deliver_pending
from actions.deliver import STUCK_SENDING
from actions.email import email_senders
from connectors.registry import crms

if TYPE_CHECKING:
    from connectors.contract import SyncContext
    from healthscore.config import Config
    from store import Store


class Delivery:
    """Deliver pending intents (a mixin of ``Pipeline``)."""

    config: Config
    store: Store
    clock: Callable[[], datetime]
    settings: Any
    context: SyncContext
    _slack: SlackAlerter | None
    _channels: Channels | None

    @property
    def slack(self) -> SlackAlerter | None:
        if self._slack is None and self.settings.slack_bot_token is not None:
            alerts = self.config.alerts.slack
            self._slack = SlackAlerter(
                self.settings.slack_bot_token.get_secret_value(),
                base_url=self.settings.slack_base_url,
                messages_per_second=alerts.messages_per_second,
                max_retry_wait=alerts.max_retry_wait,
            )
        return self._slack

    @property
    def alert_channel(self) -> str | None:
        return self.settings.slack_alert_channel or self.config.alerts.slack.channel

    def deliver(
        self,
        *,
        dry_run: bool = False,
        hooks: DeliveryHooks | None = None,
        stuck_after: timedelta = STUCK_SENDING,
    ) -> DeliveryReport:
        if dry_run:
            return deliver_pending(
                self.store, None, default_channel=self.alert_channel, dry_run=True
            )
        return deliver_pending(
            self.store,
            self.slack,
            default_channel=self.alert_channel,
            channels=self.action_channels(),
            hooks=hooks,
            now=self.clock(),
            stuck_after=stuck_after,
        )

    def action_channels(self) -> Channels:
        """Task and email back ends for the configured rules (built once, lazily)."""
        if self._channels is None:
            settings = self.config.actions
            kinds = {a.kind for r in self.config.active_rules for a in r.actions}
            tasks = None
            if "task" in kinds:
                record = next((c for c in crms() if c.record_system(self.config.sources)), None)
                if record is not None:
                    tasks = record.task_backend(self.context, settings)
            senders = email_senders(self.context, settings.email) if "email" in kinds else {}
            self._channels = Channels(tasks=tasks, senders=senders, settings=settings)
        return self._channels
