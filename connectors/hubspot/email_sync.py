"""HubSpot marketing email events → per-account email engagement (see
connectors/email/sync.py for the shared rules).

Object ``events``: one per Email Events API event (id ``<created>:<id>``), pulled by time
window from the cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from connectors.email.engagement import window_start
from connectors.email.sync import (
    FACT_OBJECTS,
    EmailSyncReport,
    Progress,
    RecipientMatcher,
    _finish,
    _id_of,
    _Keeper,
)
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import HubSpotEmailSource
from connectors.hubspot.email_events import event_fact as hubspot_event_fact
from connectors.hubspot.email_events import pull_email_events
from store import Store

log = logging.getLogger(__name__)

SOURCE = "hubspot_email"
FACT_OBJECTS[SOURCE] = ("events",)


def sync_hubspot_email(
    client: HubSpotClient,
    store: Store,
    source: HubSpotEmailSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Marketing email events that occurred since ``since`` (the last 90 days when None)."""
    report = EmailSyncReport(SOURCE)
    keeper = _Keeper(store, SOURCE, RecipientMatcher(store), report)
    requests_before = client.requests
    opens = window_start(started)  # the engagement window's first moment
    start = max(opens, since - source.overlap) if since else opens
    for page in pull_email_events(client, start, started, exclude_filtered=source.exclude_filtered):
        keeper.keep_page(
            "events", page, hubspot_event_fact, lambda e: _id_of(e, "id"), progress=progress
        )
    report.requests = client.requests - requests_before
    _finish(store, SOURCE, keeper, report, now(), source.metric_prefix)
    log.info(
        "HubSpot marketing email: %d events (%d skipped), %d unmatched recipients, "
        "%d accounts recomputed in %d requests",
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
    )
    return report
