"""Deliver pending intents from the action log, each at most once.

Each intent moves ``pending → sending`` (committed) before the vendor call, then to ``sent``
with the vendor's id. A definite failure (rate limit, 5xx) goes back to ``pending`` for the next
try; a configuration error is ``failed``; a timeout or a worker killed mid-call leaves the
outcome unknown, so the intent is marked ``unknown`` and never re-posted blindly (Slack has no
idempotency key) — operators see it in ``healthscore actions --log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from healthscore.errors import HealthscoreError, RetriableError
from store import Store
from store.models import utcnow

from .slack import SlackAlerter, build_alert

log = logging.getLogger(__name__)

STUCK_SENDING = timedelta(minutes=10)


@dataclass
class DeliveryReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_pending(store: Store, alerter: SlackAlerter | None, *, default_channel: str | None,
                    dry_run: bool = False) -> DeliveryReport:
    report = DeliveryReport()
    for stuck in store.actions(status="sending"):
        if utcnow() - stuck.updated_at > STUCK_SENDING:
            store.finish_delivery(stuck.key, "unknown",
                                  error="worker stopped mid-delivery; not re-sent")
            report.unknown += 1
    pending = store.actions(status="pending", kind="slack")
    if dry_run or alerter is None:
        report.retry_later = len(pending)
        if alerter is None and not dry_run and pending:
            log.warning("%d Slack alerts wait: SLACK_BOT_TOKEN is not set", len(pending))
        return report
    for index, action in enumerate(pending):
        channel = action.target or default_channel
        if not channel:
            store.finish_delivery(action.key, "failed", error="no Slack channel configured")
            report.failed += 1
            continue
        if not store.begin_delivery(action.key):
            continue  # another worker has it
        try:
            message = build_alert(action.payload, alerter.mention(action.payload.get(
                "owner_email")))
            ts = alerter.post(channel, message)
        except RetriableError as exc:
            store.finish_delivery(action.key, "pending", error=str(exc))
            # Slack is down or rate limiting us: the rest would fail the same way (and could pin
            # the worker for as long as their timeouts add up), so they all wait for next time
            report.retry_later += len(pending) - index
            report.errors.append(str(exc))
            log.warning("Slack alerts wait for the next run (%s): %d pending", exc,
                        len(pending) - index)
            break
        except HealthscoreError as exc:
            store.finish_delivery(action.key, "failed", error=str(exc))
            report.failed += 1
            report.errors.append(str(exc))
            log.error("Slack alert %s failed: %s", action.key, exc)
            continue
        except Exception as exc:  # timeout or unknown: the message may have been posted
            store.finish_delivery(action.key, "unknown", error=f"{exc.__class__.__name__}: {exc}")
            report.unknown += 1
            log.error("Slack alert %s outcome unknown (%s); not re-sent", action.key, exc)
            continue
        store.finish_delivery(action.key, "sent", response_id=f"{channel}/{ts}")
        report.sent += 1
    return report
