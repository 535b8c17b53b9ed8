"""Mailchimp → per-account email engagement: campaign reports with per-member activity and
unsubscribes (see connectors/email/sync.py for the shared rules).

Objects: ``activity``, one per campaign and member (``<campaign>:<subscriber hash>``), merged
with what a later ``since`` read adds; ``unsubscribes``, per campaign; ``campaigns``, those
read completely (later syncs read only activity since the cursor).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from connectors.email.engagement import fact, parse_time, window_start
from connectors.email.sync import (
    FACT_OBJECTS,
    EmailSyncReport,
    Progress,
    RecipientMatcher,
    _finish,
    _id_of,
    _Keeper,
    existing,
    keep_records,
)
from connectors.mailchimp.client import (
    MailchimpClient,
    pull_email_activity,
    pull_reports,
    pull_unsubscribed,
)
from connectors.mailchimp.config import MailchimpSource
from store import Store

log = logging.getLogger(__name__)

SOURCE = "mailchimp"
FACT_OBJECTS[SOURCE] = ("activity", "unsubscribes")


def activity_facts(member: Any, send_time: datetime) -> tuple[str, dict[str, Any]]:
    """One member's email activity in a campaign → (record id, fact); ValueError if bad."""
    if not isinstance(member, dict) or not member.get("email_id"):
        raise ValueError("no email_id")
    email = member.get("email_address")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"email_address {email!r} is not an address")
    actions = member.get("activity") or []
    if not isinstance(actions, list):
        raise ValueError("activity is not a list")
    flags = {"delivered": True}
    for action in actions:
        if not isinstance(action, dict) or parse_time(action.get("timestamp")) is None:
            raise ValueError(f"activity {action!r} has no valid timestamp")
        kind = action.get("action")
        if kind == "open":
            flags["opened"] = True
        elif kind == "click":
            flags["clicked"] = True
        elif kind == "bounce":
            flags["bounced"] = True
    rid = f"{member.get('campaign_id')}:{member['email_id']}"
    return rid, fact(rid, email, send_time, **flags)


def _campaign_id_of(campaign_id: str, key: str, record: Any) -> str:
    return f"{campaign_id}:{_id_of(record, key)}"


def _member_fact(
    campaign_id: str, sent: datetime, member: Any
) -> tuple[str, dict[str, Any], datetime]:
    """A campaign member's email activity, dated when the campaign was sent."""
    rid, facts = activity_facts(
        {"campaign_id": campaign_id, **member} if isinstance(member, dict) else member, sent
    )
    return rid, facts, sent


def _unsubscribe_fact(campaign_id: str, unsub: Any) -> tuple[str, dict[str, Any], datetime]:
    at = parse_time(unsub.get("timestamp")) if isinstance(unsub, dict) else None
    email = unsub.get("email_address") if isinstance(unsub, dict) else None
    if at is None or not isinstance(email, str) or "@" not in email:
        raise ValueError("unsubscribe without email_address or timestamp")
    rid = f"{campaign_id}:{unsub.get('email_id') or email.lower()}"
    return rid, fact(None, email, at, suppression="unsubscribe"), at


def sync_mailchimp(
    client: MailchimpClient,
    store: Store,
    source: MailchimpSource,
    *,
    since: datetime | None,
    started: datetime,
    now: Callable[[], datetime],
    progress: Progress = None,
) -> EmailSyncReport:
    """Campaigns sent in the last 90 days: new ones read whole, known ones since ``since``."""
    report = EmailSyncReport(SOURCE)
    keeper = _Keeper(store, SOURCE, RecipientMatcher(store), report)
    requests_before, limited_before = client.requests, client.rate_limited
    opens = window_start(started)  # the engagement window's first moment
    campaigns: list[tuple[str, datetime, dict[str, Any]]] = []
    for page in pull_reports(client, opens.isoformat(), count=source.page_size):
        for rep in page:
            sent = parse_time(rep.get("send_time")) if isinstance(rep, dict) else None
            if sent is None or not rep.get("id"):
                report.skip(f"campaign:{_id_of(rep, 'id')}", "no id or send_time")
                continue
            if sent <= started:
                campaigns.append((str(rep["id"]), sent, rep))
    known = existing(store, SOURCE, "campaigns", [c for c, _, _ in campaigns])
    after = (since - source.overlap).isoformat() if since else None
    for campaign_id, sent, rep in campaigns:
        report.campaigns += 1
        read_since = after if campaign_id in known else None
        for page in pull_email_activity(client, campaign_id, read_since, count=source.page_size):
            keeper.keep_page(
                "activity",
                page,
                partial(_member_fact, campaign_id, sent),
                partial(_campaign_id_of, campaign_id, "email_id"),
                merge=True,
                progress=progress,
            )
        for page in pull_unsubscribed(client, campaign_id, count=source.page_size):
            keeper.keep_page(
                "unsubscribes",
                page,
                partial(_unsubscribe_fact, campaign_id),
                partial(_campaign_id_of, campaign_id, "email_id"),
            )
        # read completely: later syncs read only its activity since the cursor
        keep_records(
            store,
            SOURCE,
            "campaigns",
            [
                (
                    campaign_id,
                    None,
                    {
                        "title": rep.get("campaign_title"),
                        "send_time": sent.isoformat(),
                        "emails_sent": rep.get("emails_sent"),
                    },
                    False,
                    sent,
                )
            ],
        )
    report.requests = client.requests - requests_before
    report.rate_limited = client.rate_limited - limited_before
    _finish(store, SOURCE, keeper, report, now(), source.metric_prefix)
    log.info(
        "Mailchimp sync: %d campaigns, %d member records (%d skipped), %d unmatched "
        "recipients, %d accounts recomputed in %d requests (%d answered 429)",
        report.campaigns,
        report.records,
        report.skipped,
        report.unmatched,
        report.accounts_recomputed,
        report.requests,
        report.rate_limited,
    )
    return report
