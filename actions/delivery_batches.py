"""Sending in batches and settling what a dead worker left — each item on its own.

A batch is claimed (``pending → sending``, one transaction) right before its one vendor
request, and its outcomes are recorded together after it. What each item becomes:

=====================================  =========  ==================================================
outcome (per item, or raised for all)  status     why
=====================================  =========  ==================================================
the vendor's id                        sent
``Rejected``                           skipped    the provider refused the recipient (unsubscribed)
``AuthError``, ``ConfigError``         pending    our credentials or settings, not the item: it
                                                  keeps the error and goes out by itself once fixed
``RetriableError``                     pending    a rate limit, an outage: the next run
another ``HealthscoreError``           failed     the vendor refused this item (an archived
                                                  channel, a bad owner); ``actions --retry-failed``
anything else (``OutcomeUnknown`` …)   unknown    it may have gone through: reconciled by key
                                                  (Slack, tasks) or never re-sent (email)
=====================================  =========  ==================================================

When the credentials are refused, the vendor rate limits us or cannot be reached — or a whole
batch waits on our settings or an outage — that destination stops for this run: the rest of it
stays ``pending`` with the error, and the other destinations go on. A batch that failed or
whose answer was lost does not stop the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from datetime import timedelta
from typing import Any

from actions.delivery_model import DeliveryHooks, DeliveryReport, Handler, batch_key, destination
from connectors.outbound import Outcome, OutcomeUnknown, Rejected, Unreachable, chunks
from healthscore.core.errors import (
    AuthError,
    ConfigError,
    HealthscoreError,
    RateLimited,
    RetriableError,
)
from store import Store
from store.models import ActionLog, utcnow

log = logging.getLogger("actions.deliver")  # one logger for delivery, whatever module

Row = tuple[str, str, str | None, str | None]  # key, status, response id, error
HOLDS_ALL = (AuthError, RateLimited, Unreachable)  # they would refuse the next item too


def settle(outcome: Outcome) -> tuple[str, str | None, str | None]:
    """(status, response id, error) of one item's outcome."""
    if isinstance(outcome, str):
        return "sent", outcome, None
    if isinstance(outcome, Rejected):
        return "skipped", None, str(outcome)
    if isinstance(outcome, (AuthError, ConfigError, RetriableError)):
        return "pending", None, str(outcome)
    if isinstance(outcome, HealthscoreError):
        return "failed", None, str(outcome)
    return "unknown", None, f"{outcome.__class__.__name__}: {outcome}"


def batches(handler: Handler, pending: list[ActionLog]) -> Iterator[list[ActionLog]]:
    """``pending`` in the handler's requests: by batch key (first seen first), then by size."""
    groups: dict[Hashable, list[ActionLog]] = {}
    for action in pending:
        groups.setdefault(batch_key(handler, action), []).append(action)
    for group in groups.values():
        yield from chunks(group, handler.batch_size)


def send_all(
    store: Store,
    handler: Handler,
    pending: list[ActionLog],
    report: DeliveryReport,
    hooks: DeliveryHooks,
    label: str,
) -> None:
    """Deliver ``pending`` (one kind) batch by batch; see the module's table."""
    prepare = getattr(handler, "prepare", None)
    if prepare is not None:  # e.g. the tasks' owners, read in bulk
        try:
            prepare(pending)
        except HealthscoreError as exc:
            wait(store, pending, str(exc), report, label)
            return
    held: dict[Hashable, str] = {}  # destination → the error holding the rest of it back
    for batch in batches(handler, pending):
        where = destination(handler, batch[0])
        if where in held:
            wait(store, batch, held[where], report, label, quiet=True)
            continue
        claimed = store.begin_deliveries([a.key for a in batch])
        batch = [a for a in batch if a.key in claimed]  # another worker has the others
        if not batch:
            continue
        if hooks.before_send is not None:
            for action in batch:
                hooks.before_send(action)
        raised: Exception | None = None
        try:
            outcomes = handler.send_batch(batch)
        except Exception as exc:  # the whole batch shares it (a kill is not an Exception)
            raised = exc
            outcomes = {a.key: exc for a in batch}
        stop = record(store, handler, batch, outcomes, report, hooks, label, raised)
        if stop is not None:
            held[where] = stop


def record(
    store: Store,
    handler: Handler,
    batch: list[ActionLog],
    outcomes: dict[str, Outcome],
    report: DeliveryReport,
    hooks: DeliveryHooks,
    label: str,
    raised: Exception | None,
) -> str | None:
    """Record a batch's outcomes in one transaction; the error that holds the rest of its
    destination back, if any."""
    rows: list[Row] = []
    accepted: list[tuple[ActionLog, str]] = []
    stop: str | None = None
    for action in batch:
        outcome = outcomes.get(action.key)
        if outcome is None:
            outcome = OutcomeUnknown(f"{label}: the vendor's answer does not name this item")
        status, response_id, error = settle(outcome)
        rows.append((action.key, status, response_id, error))
        if status == "sent":
            accepted.append((action, str(response_id)))
        if isinstance(outcome, HOLDS_ALL) or (
            raised is not None and isinstance(raised, HealthscoreError) and status == "pending"
        ):
            stop = stop or str(outcome)
    if hooks.after_accept is not None:
        for action, response_id in accepted:
            hooks.after_accept(action, response_id)
    store.finish_deliveries(rows)
    _count(handler, batch, rows, report, label, raised)
    return stop


def _count(
    handler: Handler,
    batch: list[ActionLog],
    rows: list[Row],
    report: DeliveryReport,
    label: str,
    raised: Exception | None,
) -> None:
    for (key, status, _, error), _action in zip(rows, batch, strict=True):
        if status == "sent":
            if handler.kind == "slack":
                report.sent += 1
            elif handler.kind == "task":
                report.tasks_created += 1
            else:
                report.emails_sent += 1
        elif status == "skipped":
            report.emails_skipped += 1
            log.info("%s %s skipped by the provider: %s", label, key, error)
        elif status == "pending":
            report.retry_later += 1
            if raised is None:
                log.warning("%s %s waits: %s", label, key, error)
                if error not in report.errors:
                    report.errors.append(str(error))
        elif status == "failed":
            report.failed += 1
            report.errors.append(str(error))
            log.error("%s %s failed: %s", label, key, error)
        else:
            report.unknown += 1
            log.error(
                "%s %s outcome unknown (%s); %s",
                label,
                key,
                error,
                "reconciled by key next run" if handler.reconcilable else "not re-sent",
            )
    if raised is not None and isinstance(raised, (AuthError, ConfigError, RetriableError)):
        report.errors.append(str(raised))
        log.warning("%s wait for the next run (%s): %d pending", label, raised, len(batch))


def wait(
    store: Store,
    actions: list[ActionLog],
    error: str,
    report: DeliveryReport,
    label: str,
    *,
    quiet: bool = False,
) -> None:
    """Leave ``actions`` pending, each with the error that holds it back."""
    store.note_waiting([a.key for a in actions], error)
    report.retry_later += len(actions)
    if not quiet:
        report.errors.append(error)
        log.warning("%s wait for the next run (%s): %d pending", label, error, len(actions))


def recover(
    store: Store, handlers: dict[str, Any], report: DeliveryReport, stuck_after: timedelta
) -> None:
    """Settle ``sending`` rows a dead worker left and ``unknown`` outcomes, by key — looked
    up in batches where the vendor allows it, each item settled on its own."""
    now = utcnow()
    lookups: dict[str, list[ActionLog]] = {}
    gone: list[Row] = []
    for action in store.actions(status="sending") + store.actions(status="unknown"):
        stale = now - action.updated_at > stuck_after
        if action.status == "sending" and not stale:
            continue  # another worker may still be on it
        handler = handlers.get(action.kind)
        if handler is None:
            continue
        if not handler.reconcilable or not action.payload.get("keyed"):
            # (an alert queued before keys rode in the metadata cannot be looked up either)
            if action.status == "sending":
                gone.append(
                    (
                        action.key,
                        "unknown",
                        None,
                        "worker stopped mid-delivery; not re-sent (no look-up by key)",
                    )
                )
            continue
        lookups.setdefault(action.kind, []).append(action)
    store.finish_deliveries(gone)
    report.unknown += len(gone)
    for kind, actions in lookups.items():
        try:
            found = handlers[kind].find_many(actions)
        except HealthscoreError as exc:
            log.warning("could not reconcile %d %s yet: %s", len(actions), kind, exc)
            continue
        rows: list[Row] = []
        for action in actions:
            if action.key not in found:
                continue  # not checked: asked again next run
            vendor_id = found[action.key]
            if vendor_id is not None:
                rows.append((action.key, "sent", vendor_id, None))
                report.reconciled += 1
                log.info(
                    "%s was delivered before (%s): recorded, not re-sent", action.key, vendor_id
                )
            elif action.status == "sending" or now - action.updated_at > stuck_after:
                # not at the vendor, and no request can still be in flight: send it again
                rows.append(
                    (
                        action.key,
                        "pending",
                        None,
                        "not found at the vendor after an interrupted delivery; sent again",
                    )
                )
            # a fresh unknown that is not found yet may still be in flight: ask again next time
        store.finish_deliveries(rows)
