"""CRM write-back: queue only what changed, send in batches, keep failures pending.

The contract every CRM writer meets: ``crm`` (a name), ``batch_size``, and
``write(batch) -> {account_id: None | error}`` for one request. A request-level failure raises;
the batch stays pending and is retried next time. A value is removed from pending only once
the CRM said it accepted it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.registry import crms
from healthscore.core.errors import HealthscoreError, RetriableError
from store import Store

log = logging.getLogger(__name__)

TIMESTAMP_ROLE = "updated"  # written along with a change, never a reason to write


class CrmWriter(Protocol):
    crm: str
    batch_size: int

    def write(self, batch: list[tuple[str, Mapping[str, Any]]]) -> dict[str, str | None]: ...


@dataclass
class WriteReport:
    queued: int = 0
    records_updated: int = 0
    requests: int = 0
    failed_records: int = 0
    pending: int = 0
    error: str | None = None
    retry_after: float | None = None  # what the CRM said to wait, if it said
    retriable: bool = True  # False: a person must act (credentials, missing fields) first


def _comparable(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for role, value in values.items():
        if role == TIMESTAMP_ROLE:
            continue
        out[role] = (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else (value or None)
        )
    return out


def queue_changes(store: Store, crm: str, desired: Mapping[str, dict[str, Any]]) -> int:
    """Queue the accounts whose health values differ from what the CRM holds.

    ``desired`` holds every live account; a pending write for any other account (deleted or
    merged away in the CRM since) is dropped instead of failing on every cycle.
    """
    known = store.crm_state(crm)
    changed = {a: v for a, v in desired.items() if _comparable(v) != _comparable(known.get(a, {}))}
    unchanged_pending = [a for a in desired if a not in changed]
    gone = [p.account_id for p in store.pending_writes(crm) if p.account_id not in desired]
    store.queue_writes(crm, changed)
    if unchanged_pending or gone:
        # the CRM already holds these values, or the account no longer exists
        store.drop_pending(crm, unchanged_pending + gone)
    return len(changed)


def flush_pending(store: Store, writer: CrmWriter, *, dry_run: bool = False) -> WriteReport:
    """Send every pending write; stop at the first request-level failure (the rest stay
    pending, with the error in the report: a failure never loses a write, and never stops
    the caller's other CRMs or deliveries)."""
    pending = store.pending_writes(writer.crm)
    report = WriteReport(pending=len(pending))
    if dry_run:
        return report
    for start in range(0, len(pending), writer.batch_size):
        batch = [(p.account_id, p.fields) for p in pending[start : start + writer.batch_size]]
        try:
            outcome = writer.write(batch)
        except HealthscoreError as exc:
            report.error = str(exc)
            report.retry_after = getattr(exc, "retry_after", None)
            report.retriable = isinstance(exc, RetriableError)
            log.warning(
                "%s write stopped (%s); %d writes stay pending and will be retried%s",
                writer.crm,
                exc,
                len(pending) - start,
                "" if report.retriable else " once the cause is fixed",
            )
            break
        finally:
            report.requests += 1
        written = {a: dict(f) for a, f in batch if outcome.get(a) is None and a in outcome}
        failed = {a: str(err) for a, err in outcome.items() if err is not None}
        for account_id, err in failed.items():
            log.warning("CRM rejected account %s: %s (stays pending)", account_id, err)
        store.complete_writes(writer.crm, written)
        store.fail_writes(writer.crm, failed)
        report.records_updated += len(written)
        report.failed_records += len(failed)
    report.pending = len(store.pending_writes(writer.crm))
    return report


class WriteBack:
    """Flush each CRM's pending health fields (a mixin of ``Pipeline``): one CRM failing
    leaves its writes pending and never stops the others."""

    config: Any
    store: Store
    context: Any

    def write_back(self, *, dry_run: bool = False) -> dict[str, WriteReport]:
        """Every CRM with write-back on, by its summary prefix."""
        reports = {}
        for crm in crms():
            if not crm.write_back(self.config.sources):
                continue
            try:
                writer = crm.writer(self.context)
            except HealthscoreError as exc:  # e.g. its credentials are missing
                log.warning("%s write-back not started: %s", crm.name, exc)
                reports[crm.summary_prefix] = WriteReport(
                    pending=len(self.store.pending_writes(crm.name)),
                    error=str(exc),
                    retriable=False,
                )
                continue
            report = flush_pending(self.store, writer, dry_run=dry_run)
            log.info(
                "%s write-back: %d records in %d requests, %d pending",
                crm.name,
                report.records_updated,
                report.requests,
                report.pending,
            )
            reports[crm.summary_prefix] = report
        return reports
