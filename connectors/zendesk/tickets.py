"""The cursor-based incremental ticket export, and a ticket as the record we keep.

The first pull starts from ``start_time`` (at least a minute old: Zendesk refuses newer ones);
every later pull goes on from the ``after_cursor`` the previous one ended with, which Zendesk
returns even when ``end_of_stream`` is true. The caller persists that cursor only after the
whole pull is stored, so a pull that fails half-way is read again from the same place.
Ticket ids reappear whenever a ticket changes: records are upserted by id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.zendesk.client import StartTimeTooRecent, ZendeskClient
from healthscore.core.errors import FatalError, SkippableRecord

log = logging.getLogger(__name__)

EXPORT_PATH = "incremental/tickets/cursor.json"
MIN_AGE = timedelta(seconds=61)  # Zendesk: start_time at least one minute in the past
OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})


@dataclass
class ExportState:
    """What one export pull did; ``cursor`` is the position to persist when it completes."""

    cursor: str | None = None
    requests: int = 0
    records: int = 0
    too_recent: bool = False


def export_start(since: datetime, now: datetime) -> int:
    """``since`` as Unix seconds, moved back so it is at least a minute older than ``now``."""
    return int(min(since, now - MIN_AGE).timestamp())


def pull_tickets(
    client: ZendeskClient,
    state: ExportState,
    *,
    cursor: str | None = None,
    start_time: int | None = None,
    per_page: int = 1000,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of raw tickets from ``cursor`` (or, the first time, ``start_time``).

    Each ticket gets its sideloaded metric set under ``metric_set`` (reopens live there).
    A ``start_time`` Zendesk calls too recent ends the pull with ``state.too_recent`` set and
    nothing read: the caller keeps the start time and tries again next run.
    """
    if cursor is None and start_time is None:
        raise ValueError("pull_tickets needs a cursor or a start_time")
    position: dict[str, Any] = {"cursor": cursor} if cursor else {"start_time": start_time}
    while True:
        params = {**position, "per_page": per_page, "include": "metric_sets"}
        try:
            body = client.get(EXPORT_PATH, params, export=True, what="incremental ticket export")
        except StartTimeTooRecent as exc:
            log.warning("%s; the export starts from the same start_time next run", exc)
            state.too_recent = True
            return
        state.requests += 1
        tickets = body.get("tickets")
        if not isinstance(tickets, list):
            raise FatalError("Zendesk incremental ticket export: no 'tickets' list in the response")
        metrics = {
            m.get("ticket_id"): m for m in body.get("metric_sets") or [] if isinstance(m, dict)
        }
        for ticket in tickets:
            if isinstance(ticket, dict) and ticket.get("id") in metrics:
                ticket["metric_set"] = metrics[ticket["id"]]
        after = body.get("after_cursor")
        if after:
            state.cursor = str(after)
        state.records += len(tickets)
        yield tickets
        if body.get("end_of_stream", True):
            return
        if not after:
            raise FatalError(
                "Zendesk incremental ticket export: end_of_stream is false but "
                "there is no after_cursor"
            )
        position = {"cursor": after}


_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_NOISE = re.compile(r"[^a-z]+")


def subject_topic(subject: str) -> str | None:
    """``RE: Export fails (#4312)!`` → ``export fails``; None when nothing is left."""
    text = _PREFIX.sub("", subject or "").lower()
    text = " ".join(_NOISE.sub(" ", text).split())
    return text if len(text) >= 3 else None


def parse_time(value: Any) -> datetime:
    """Zendesk's ``2026-11-20T09:14:03Z`` → an aware datetime (ValueError when it is not)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    stamp = datetime.fromisoformat(value)  # Python 3.11 reads the Z itself
    if stamp.tzinfo is UTC:  # Zendesk's, and the times we keep: one C call
        return stamp
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def _reopens(raw: dict[str, Any]) -> int:
    metric = raw.get("metric_set")
    if isinstance(metric, dict):
        try:
            return int(metric.get("reopens") or 0)
        except (TypeError, ValueError):
            return 0
    return 1 if "reopened" in (raw.get("tags") or []) else 0


def ticket_record(raw: Any) -> tuple[str, str | None, dict[str, Any], bool, datetime]:
    """(id, organization id, kept fields, deleted, updated_at) of one exported ticket.

    Raises ``SkippableRecord`` for a ticket without an id or with an unparsable
    ``updated_at``/``created_at``.
    """
    if not isinstance(raw, dict):
        raise SkippableRecord("<not an object>", "the ticket is not a JSON object")
    ticket_id = raw.get("id")
    if ticket_id is None or ticket_id == "" or isinstance(ticket_id, bool):
        raise SkippableRecord("<no id>", "the ticket has no id")
    rid = str(ticket_id)
    try:
        updated = parse_time(raw.get("updated_at"))
        created = parse_time(raw.get("created_at") or raw.get("updated_at"))
    except ValueError as exc:
        raise SkippableRecord(rid, f"unparsable timestamp ({exc})") from None
    org = raw.get("organization_id")
    org_id = None if org in (None, "") else str(org)
    rating = raw.get("satisfaction_rating")
    tags = [str(t) for t in raw.get("tags") or [] if t is not None]
    fields = {
        "org": org_id,
        "subject": str(raw.get("subject") or "")[:255],
        "status": str(raw.get("status") or "").lower(),
        "priority": str(raw.get("priority") or "").lower(),
        "type": raw.get("type"),
        "tags": tags,
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
        "reopens": _reopens(raw),
        "csat": rating.get("score") if isinstance(rating, dict) else None,
    }
    fields["topic"] = subject_topic(fields["subject"])  # once here, not at every recompute
    return rid, org_id, fields, fields["status"] == "deleted", updated
