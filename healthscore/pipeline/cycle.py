"""One cycle, in-process: pull → store → score → write back → alert.

The CLI, the demo, the tests and the Celery tasks all run these same methods; ``tasks.py``
only unpacks arguments and maps errors to retries.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actions import (
    ENTERED_RED,
    Channels,
    DeliveryHooks,
    DeliveryReport,
    Intent,
    RuleContext,
    RuleState,
    SlackAlerter,
    deliver_pending,
    evaluate,
)
from actions.deliver import STUCK_SENDING
from actions.email import email_senders
from actions.tasks import HubSpotTasks, SalesforceTasks
from connectors.hubspot import HubSpotClient, HubSpotWriter
from connectors.hubspot.related import pull_owners
from connectors.identity import DOMAIN
from connectors.mailchimp import MailchimpClient
from connectors.salesforce import SalesforceClient, SalesforceWriter, SyncState, pull_accounts
from connectors.salesforce.accounts import parse_sf_datetime
from connectors.salesforce.related import RELATED, RelatedSync, account_of, pull_related
from connectors.sendgrid import SendGridClient
from connectors.zendesk import ZendeskClient
from healthscore.accounts_file import ImportReport, import_accounts
from healthscore.config import Config
from healthscore.core.durations import format_duration
from healthscore.core.errors import ConfigError
from healthscore.core.settings import Settings
from healthscore.email_sync import (
    HUBSPOT_EMAIL,
    MAILCHIMP,
    SENDGRID,
    EmailSyncReport,
    sync_hubspot_email,
    sync_mailchimp,
    sync_sendgrid,
)
from healthscore.governance.apply import explain_with_override, govern, hysteresis_grade
from healthscore.governance.overrides import find_account, record_crm_overrides
from healthscore.governance.versioning import scorecard_version
from healthscore.hubspot_related_sync import (
    HubSpotRelatedReport,
    RelatedRules,
    sync_hubspot_related,
)
from healthscore.hubspot_sync import COMPANY_KEY, HubSpotSyncReport, sync_hubspot
from healthscore.hubspot_sync import OBJECT as HUBSPOT_OBJECT
from healthscore.hubspot_sync import SOURCE as HUBSPOT
from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory, load_usage, snapshot_moment
from healthscore.pipeline.writeback import WriteReport, flush_pending, queue_changes
from healthscore.zendesk_sync import ZendeskSyncReport, sync_zendesk
from scoring import (
    INSUFFICIENT,
    Explanation,
    ScoreBatch,
    SignalTable,
    explain,
    missing_measures,
    reasons_for,
    score,
)
from scoring.windows import day_of, window_columns
from store import SignalRow, Store
from store.models import Account, Score, utcnow

if TYPE_CHECKING:
    from healthscore.usage_sync import (
        UsageLoadReport,  # pyarrow is imported only when usage is loaded
    )

log = logging.getLogger(__name__)

CRM = "salesforce"
CRM_GRADES = {
    "red": "Red",
    "yellow": "Yellow",
    "green": "Green",
    "insufficient_data": "Insufficient Data",
}
REASONS_MAX = 1000
# compute(as_of) within this of the clock is a live run (signal_latest), else point-in-time
LIVE_SLACK = timedelta(minutes=1)


@dataclass
class SyncReport:
    records: int = 0
    skipped: int = 0
    deleted: int = 0
    signals_changed: int = 0
    cursor: str | None = None
    skipped_ids: list[str] = field(default_factory=list)
    overrides: dict[str, int] = field(default_factory=dict)  # CRM overrides applied/refused


@dataclass
class ScoreReport:
    run_id: int | None = None
    scored: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    entered_red: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # rule → intents this run
    writes_queued: int = 0
    scorecard_version: str = ""
    overrides_active: int = 0
    stale_accounts: int = 0
    stale_sources: list[str] = field(default_factory=list)


@dataclass
class ActReport:
    """What one score → write back → deliver pass did."""

    scoring: ScoreReport
    write: WriteReport
    delivery: DeliveryReport
    hubspot_write: WriteReport | None = None

    @property
    def pending_write_error(self) -> WriteReport | None:
        """A write-back that stopped early with records still pending (worth a retry)."""
        for report in (self.write, self.hubspot_write):
            if report is not None and report.error and report.pending:
                return report
        return None


@dataclass
class CycleReport:
    sync: SyncReport
    scoring: ScoreReport
    write: WriteReport
    delivery: DeliveryReport
    seconds: float = 0.0
    hubspot_sync: HubSpotSyncReport | None = None
    hubspot_write: WriteReport | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "scored": self.scoring.scored,
            "grades": {g: self.scoring.grades.get(g, 0) for g in CRM_GRADES},
            "accounts_pulled": self.sync.records,
            "records_skipped": self.sync.skipped,
            "crm_records_updated": self.write.records_updated,
            "crm_write_requests": self.write.requests,
            "crm_writes_pending": self.write.pending,
            "entered_red": self.scoring.entered_red,
            "slack_messages": self.delivery.sent,
            "overrides_active": self.scoring.overrides_active,
            "stale_accounts": self.scoring.stale_accounts,
            "tasks_created": self.delivery.tasks_created,
            "emails_sent": self.delivery.emails_sent,
            "emails_skipped": self.delivery.emails_skipped,
            **(
                {}
                if self.hubspot_sync is None
                else {
                    "hubspot_companies_pulled": self.hubspot_sync.records,
                    "hubspot_companies_matched": self.hubspot_sync.matched,
                }
            ),
            **(
                {}
                if self.hubspot_write is None
                else {
                    "hubspot_records_updated": self.hubspot_write.records_updated,
                    "hubspot_write_requests": self.hubspot_write.requests,
                    "hubspot_writes_pending": self.hubspot_write.pending,
                }
            ),
            "seconds": round(self.seconds, 3),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trend_text(delta: float | None, window: str) -> str | None:
    if delta is None:
        return None
    points = round(delta)
    arrow = "↑" if points > 0 else "↓" if points < 0 else "→"
    sign = "+" if points > 0 else "−" if points < 0 else ""
    return f"{arrow} {sign}{abs(points)} pts vs {window}"


class PastScores:
    """Each account's latest score ``ago`` before ``now``, read once per lookback: a run's
    trend, deltas, scorecard-change marks and score-drop rules often share one window."""

    def __init__(self, store: Store, now: datetime) -> None:
        self.store, self.now = store, now
        self._read: dict[timedelta, dict[str, Score]] = {}

    def __call__(self, ago: timedelta) -> dict[str, Score]:
        if ago not in self._read:
            self._read[ago] = self.store.scores_as_of(self.now - ago)
        return self._read[ago]


def score_deltas(batch: ScoreBatch, then: Mapping[str, Score]) -> dict[str, float]:
    """Score now minus the score ``then`` (accounts scored both times only)."""
    out = {}
    for i, account_id in enumerate(batch.account_ids):
        old = then.get(account_id)
        if old is not None and old.score is not None and not math.isnan(batch.score[i]):
            out[account_id] = round(float(batch.score[i]) - old.score, 2)
    return out


class Pipeline:
    """The product's main job for one CRM (Salesforce today)."""

    def __init__(
        self,
        config: Config,
        settings: Settings,
        store: Store,
        *,
        config_path: str = "healthscore.yaml",
        salesforce: SalesforceClient | None = None,
        slack: SlackAlerter | None = None,
        hubspot: HubSpotClient | None = None,
        zendesk: ZendeskClient | None = None,
        sendgrid: SendGridClient | None = None,
        mailchimp: MailchimpClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.config_path = config_path
        self._salesforce = salesforce
        self._slack = slack
        self._hubspot = hubspot
        self._zendesk = zendesk
        self._sendgrid = sendgrid
        self._mailchimp = mailchimp
        self.clock = clock
        self._channels: Channels | None = None

    # -- collaborators, built lazily so `score --dry-run` needs no credentials --------------
    @property
    def salesforce(self) -> SalesforceClient:
        if self._salesforce is None:
            self._salesforce = SalesforceClient(self.settings)
        return self._salesforce

    @property
    def hubspot(self) -> HubSpotClient:
        if self._hubspot is None:
            self._hubspot = HubSpotClient(
                self.settings, requests_per_10s=self.config.sources.hubspot.requests_per_10s
            )
        return self._hubspot

    @property
    def zendesk(self) -> ZendeskClient:
        if self._zendesk is None:
            source = self.config.sources.zendesk
            settings = self.settings
            if settings.zendesk_subdomain is None and source.subdomain:
                settings = settings.model_copy(update={"zendesk_subdomain": source.subdomain})
            self._zendesk = ZendeskClient(
                settings,
                requests_per_minute=source.requests_per_minute,
                export_requests_per_minute=source.export_requests_per_minute,
            )
        return self._zendesk

    @property
    def sendgrid(self) -> SendGridClient:
        if self._sendgrid is None:
            self._sendgrid = SendGridClient.from_settings(self.settings)
        return self._sendgrid

    @property
    def mailchimp(self) -> MailchimpClient:
        if self._mailchimp is None:
            self._mailchimp = MailchimpClient.from_settings(
                self.settings, max_connections=self.config.sources.mailchimp.max_connections
            )
        return self._mailchimp

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

    # -- stages --------------------------------------------------------------------------------
    def sync_salesforce(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> SyncReport:
        """Pull Accounts changed since the cursor (all of them with ``full``)."""
        source = self.config.sources.salesforce
        started = self.clock()
        stored = None if full else self.store.cursor(CRM, "Account")
        cursor = datetime.fromisoformat(stored) if stored else None
        state = SyncState(cursor=None)
        report = SyncReport()
        for page in pull_accounts(
            self.salesforce, source, cursor, state, config_path=self.config_path
        ):
            self.store.upsert_accounts(r.account for r in page)
            report.signals_changed += self.store.record_signals(s for r in page for s in r.signals)
            self.store.remember_crm_values(CRM, {r.account.id: r.crm_values for r in page})
            self.store.set_account_keys(
                DOMAIN, {r.account.id: [r.domain] if r.domain else [] for r in page}
            )
            if source.override_fields is not None:
                counts = record_crm_overrides(
                    self.store,
                    self.config.overrides,
                    CRM,
                    {r.account.id: r.override for r in page if r.override is not None},
                    self.clock(),
                )
                report.overrides = dict(Counter(report.overrides) + Counter(counts))
            if progress is not None:
                progress(len(page))
        report.cursor = self._advance_cursor(CRM, "Account", started)
        report.records, report.skipped, report.deleted = state.records, state.skipped, state.deleted
        report.skipped_ids = state.skipped_ids
        log.info(
            "Salesforce sync: %d records, %d skipped, %d signal changes",
            report.records,
            report.skipped,
            report.signals_changed,
        )
        return report

    def _advance_cursor(self, source: str, obj: str, started: datetime) -> str:
        """After a complete pull, the cursor is the moment the pull *started*.

        The next pull reads from there minus the overlap: what was modified during this pull,
        or committed late with an earlier timestamp, comes again; what was read before the
        overlap window is not read twice (a cursor at the newest record seen would re-read
        the newest records on every sync).
        """
        stored = self.store.cursor(source, obj)
        if stored is None or started > datetime.fromisoformat(stored):
            self.store.set_cursor(source, obj, started.isoformat())
            return started.isoformat()
        return stored

    def sync_related(
        self,
        *,
        full: bool = False,
        progress: Callable[[int], None] | None = None,
        objects: list[str] | None = None,
    ) -> dict[str, RelatedSync]:
        """Pull each configured related object (or only ``objects``) and recompute the
        touched accounts' signals."""
        source = self.config.sources.salesforce
        reports = {}
        # an account holding none of an object's signals yet (it has no such records, or it is
        # new) gets the aggregates of zero records: no open case is 0 cases_open, not missing
        live = {a.id for a in self.store.accounts()}
        held = {(a, m) for a, m, _, _ in self.store.latest_signals()}
        for name in objects if objects is not None else source.related:
            obj = RELATED[name]
            started = self.clock()
            stored = None if full else self.store.cursor(CRM, name)
            since = datetime.fromisoformat(stored) if stored else None
            state = RelatedSync()
            touched = {a for a in live if (a, obj.metrics[0]) not in held}
            for page in pull_related(
                self.salesforce,
                obj,
                since,
                state,
                overlap=source.overlap,
                bulk_threshold=source.bulk_threshold,
            ):
                rows = []
                for raw in page:
                    stamp = (
                        parse_sf_datetime(str(raw.get("SystemModstamp") or ""))
                        if raw.get("SystemModstamp")
                        else None
                    )
                    if not raw.get("Id") or stamp is None:
                        state.skipped_ids.append(str(raw.get("Id") or "<no Id>"))
                        log.warning(
                            "skipped Salesforce %s %s: no Id or SystemModstamp", name, raw.get("Id")
                        )
                        continue
                    fields = {k: v for k, v in raw.items() if k != "attributes"}
                    deleted = str(raw.get("IsDeleted")).lower() == "true"
                    rows.append((str(raw["Id"]), account_of(obj, raw), fields, deleted, stamp))
                touched |= self.store.upsert_source_records(CRM, name, rows)
                if progress is not None:
                    progress(len(page))
            now = self.clock()
            by_account = self.store.source_records(CRM, name, touched)
            self.store.record_signals(
                SignalRow(account_id, metric, value, now, CRM)
                for account_id, records in by_account.items()
                for metric, value in obj.aggregate(records, now).items()
            )
            self._advance_cursor(CRM, name, started)
            log.info(
                "Salesforce %s: %d records (%s), %d accounts recomputed",
                name,
                state.records,
                "Bulk 2.0" if state.bulk else "REST",
                len(touched),
            )
            reports[name] = state
        return reports

    def sync_hubspot_related(
        self,
        *,
        full: bool = False,
        progress: Callable[[int], None] | None = None,
        objects: list[str] | None = None,
    ) -> HubSpotRelatedReport:
        """Pull HubSpot deals/tickets/contacts changed since their cursors; recompute signals."""
        source = self.config.sources.hubspot
        started = self.clock()
        since: dict[str, datetime | None] = {}
        for name in objects if objects is not None else source.related:
            stored = None if full else self.store.cursor(HUBSPOT, name)
            since[name] = datetime.fromisoformat(stored) if stored else None
        report = sync_hubspot_related(
            self.hubspot,
            self.store,
            since_by_object=since,
            started=started,
            source=source,
            rules=RelatedRules(learn_contact_domains=source.learn_contact_domains),
            now=self.clock,
            progress=progress,
            committed=lambda name: self._advance_cursor(HUBSPOT, name, started),
        )
        log.info(
            "HubSpot related: %s in %d requests",
            {o: r.records for o, r in report.objects.items()},
            report.requests,
        )
        return report

    def sync_hubspot(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> HubSpotSyncReport:
        """Pull companies modified since the cursor (all with ``full``) and match them."""
        stored = None if full else self.store.cursor(HUBSPOT, HUBSPOT_OBJECT)
        since = datetime.fromisoformat(stored) if stored else None
        started = self.clock()
        source = self.config.sources.hubspot
        # as the CRM of record, each company's owner becomes the account's owner (mentions)
        # (and to read an override's "by" when it holds a HubSpot owner)
        owners = (
            pull_owners(self.hubspot)
            if (source.record_system or source.override_properties is not None)
            else None
        )
        report, _newest = sync_hubspot(
            self.hubspot,
            source,
            self.store,
            since,
            started=started,
            progress=progress,
            owners=owners,
            policy=self.config.overrides if source.override_properties is not None else None,
        )
        report.cursor = self._advance_cursor(HUBSPOT, HUBSPOT_OBJECT, started)
        log.info(
            "HubSpot sync: %d companies (%d matched, %d unmatched, %d ambiguous) in %d requests",
            report.records,
            report.matched,
            report.unmatched,
            report.ambiguous,
            report.requests,
        )
        return report

    def sync_zendesk(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> ZendeskSyncReport:
        """Zendesk organizations, tickets changed since the export cursor and CSAT ratings;
        the support signals of the accounts they touch (see healthscore/zendesk_sync.py)."""
        return sync_zendesk(
            self.zendesk,
            self.store,
            self.config.sources.zendesk,
            now=self.clock,
            full=full,
            progress=progress,
        )

    def sync_sendgrid(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> EmailSyncReport:
        """Pull SendGrid suppressions (and Email Activity, if chosen) since the cursor, keep
        them per recipient and recompute the touched accounts (webhook events included)."""
        return self._sync_email(
            SENDGRID,
            "activity",
            sync_sendgrid,
            self.sendgrid,
            self.config.sources.sendgrid,
            full,
            progress,
        )

    def sync_mailchimp(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> EmailSyncReport:
        """Read the last 90 days' campaign reports: new campaigns whole, known ones' activity
        since the cursor; recompute the touched accounts."""
        return self._sync_email(
            MAILCHIMP,
            "email-activity",
            sync_mailchimp,
            self.mailchimp,
            self.config.sources.mailchimp,
            full,
            progress,
        )

    def sync_hubspot_email(
        self, *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> EmailSyncReport:
        """Pull HubSpot marketing email events since the cursor; recompute touched accounts."""
        return self._sync_email(
            HUBSPOT_EMAIL,
            "events",
            sync_hubspot_email,
            self.hubspot,
            self.config.sources.hubspot_email,
            full,
            progress,
        )

    def _sync_email(
        self,
        source: str,
        obj: str,
        sync: Callable[..., EmailSyncReport],
        client: Any,
        config: Any,
        full: bool,
        progress: Callable[[int], None] | None,
    ) -> EmailSyncReport:
        """One email platform's pull from its cursor (everything with ``full``)."""
        stored = None if full else self.store.cursor(source, obj)
        started = self.clock()
        report = sync(
            client,
            self.store,
            config,
            since=datetime.fromisoformat(stored) if stored else None,
            started=started,
            now=self.clock,
            progress=progress,
        )
        report.cursor = self._advance_cursor(source, obj, started)
        return report

    def sync_usage_file(
        self,
        *,
        dry_run: bool = False,
        force: bool = False,
        paths: list[Path] | None = None,
        form: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> UsageLoadReport:
        """Load the drop folder's new usage files (or ``paths``) into usage_daily."""
        from healthscore.usage_sync import load_usage_files

        source = self.config.sources.usage_file
        if form is not None:
            source = source.model_validate({**source.model_dump(), "form": form})
        return load_usage_files(
            self.store, source, paths=paths, dry_run=dry_run, force=force, progress=progress
        )

    def sync_warehouse(
        self,
        *,
        dry_run: bool = False,
        full: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> UsageLoadReport:
        """Run the warehouse usage query from its cursor and upsert the rows."""
        from healthscore.usage_sync import sync_warehouse

        return sync_warehouse(
            self.store,
            self.config.sources.warehouse,
            today=self.clock().date(),
            dry_run=dry_run,
            full=full,
            progress=progress,
        )

    def compute(
        self,
        as_of: datetime | None = None,
        *,
        accounts: list[Account] | None = None,
        previous: dict[str, Score] | None = None,
        live: bool | None = None,
    ) -> ScoreBatch:
        """Score every live account as of ``as_of`` (now by default; nothing is stored).

        A moment in the past (over a minute before the clock) is scored point-in-time: each
        metric as last observed by then, usage windows ending then, accounts that had started
        by then (``healthscore.pipeline.point_in_time``).
        ``live`` forces one way or the other (a run scoring "now" passes True).
        ``previous`` (each account's last score) turns on grade hysteresis.
        """
        if as_of is None:
            as_of, live = self.clock(), True
        elif live is None:
            live = as_of >= self.clock() - LIVE_SLACK
        card = self.config.scorecard
        accounts = self.store.accounts() if accounts is None else accounts
        ids = [a.id for a in accounts]
        if not live:  # accounts that had not started by then are left out
            history = self.history(until=as_of, since=as_of, accounts=accounts)
            table = history.table_at(as_of, np.flatnonzero(history.started(as_of)))
            ids = list(table.account_ids)
        else:
            table = self._live_table(as_of, accounts)
        prior = None
        if previous:
            prior = np.array(
                [hysteresis_grade(previous[a]) if a in previous else None for a in ids],
                dtype=object,
            )
        return score(card, table, as_of, previous_grades=prior)

    def _live_table(self, as_of: datetime, accounts: list[Account]) -> SignalTable:
        """Current signals (``signal_latest``), history-derived values, usage windows."""
        card = self.config.scorecard
        ids = [a.id for a in accounts]
        table = SignalTable.from_rows(
            ids,
            self.store.latest_signals(),
            card.source_metrics(),
            attributes={a.id: a.attributes for a in accounts},
        )
        needs = card.history_needs()
        if needs:
            table = table.with_history(
                needs, self.store.history_rows({m for _, m, _ in needs}, until=as_of), as_of
            )
        windows = card.usage_windows()
        if windows:
            usage = load_usage(self.store, card, ids, until=day_of(as_of), recent=True)
            table = SignalTable(
                table.account_ids,
                table.columns,
                table.observed,
                table.labels,
                {**table.history, **window_columns(windows, usage, as_of)},
            )
        return table

    # -- point in time -------------------------------------------------------------------------
    @property
    def start_attribute(self) -> str | None:
        """The account attribute (or date metric) holding each account's start date."""
        if self.config.scoring.start_field is not None:
            return self.config.scoring.start_field
        source = self.config.sources.accounts_file
        return None if source is None else source.start_column

    def history(
        self,
        *,
        until: datetime | None = None,
        since: datetime | None = None,
        accounts: list[Account] | None = None,
        include_deleted: bool = False,
    ) -> ScoringHistory:
        """Every account's signal and usage history up to ``until``, loaded once, to score
        moments from ``since`` on."""
        return ScoringHistory.load(
            self.store,
            self.config.scorecard,
            accounts=accounts,
            until=until,
            since=since,
            include_deleted=include_deleted,
            start_attribute=self.start_attribute,
        )

    def score_at_dates(
        self,
        dates: Iterable[date | datetime],
        *,
        outcomes: Mapping[str, Outcome] | None = None,
        include_deleted: bool = True,
        hysteresis: bool = True,
    ) -> Iterator[tuple[datetime, ScoreBatch]]:
        """Score each past snapshot from history loaded once (a date is taken at its end).

        Accounts that churned on or before a snapshot (``outcomes``) or had not started are
        left out of it. Accounts deleted in the CRM since are included by default: they were
        customers back then.
        """
        moments = sorted(snapshot_moment(d) for d in dates)
        if not moments:
            return iter(())
        history = self.history(until=moments[-1], since=moments[0], include_deleted=include_deleted)
        excluded = None if outcomes is None else (lambda m: churned_by(outcomes, m))
        return history.snapshots(moments, excluded=excluded, hysteresis=hysteresis)

    @property
    def scorecard_version(self) -> str:
        """The scorecard's content hash, plus the config file's git commit when it has one."""
        return scorecard_version(self.config.scorecard, self.config_path)

    def score(self, *, dry_run: bool = False) -> tuple[ScoreReport, ScoreBatch]:
        now = self.clock()
        accounts = self.store.accounts()
        previous = self.store.scores_as_of(now)
        batch = self.compute(now, accounts=accounts, previous=previous, live=True)
        window = self.config.scoring.trend_window
        version = self.scorecard_version
        past = PastScores(self.store, now)
        gov = govern(
            self, batch, now, version=version, baseline=past(window), act=not dry_run
        )  # overrides replace grades in the batch
        report = ScoreReport(
            scored=len(batch.account_ids),
            grades=dict(Counter(batch.grade.tolist())),
            scorecard_version=version,
            overrides_active=len(gov.overrides),
            stale_accounts=len(gov.stale),
            stale_sources=[a.source for a in gov.ages.values() if a.stale],
        )
        if dry_run:
            return report, batch
        run_id = self.store.start_run(version, started_at=now)
        lookbacks = {"7d": timedelta(days=7), "30d": timedelta(days=30), "trend": window}
        deltas = {label: score_deltas(batch, past(ago)) for label, ago in lookbacks.items()}
        by_id = {a.id: a for a in accounts}
        rows, payloads, desired = [], {}, {}
        for i, account_id in enumerate(batch.account_ids):
            value = None if math.isnan(batch.score[i]) else float(batch.score[i])
            grade = str(batch.grade[i])
            reasons = reasons_for(batch, i)
            reason_text = [str(r) for r in reasons]
            if grade == INSUFFICIENT:
                reason_text = [
                    "Insufficient data: missing " + ", ".join(missing_measures(batch, i))
                ]
            reason_text = gov.reasons(account_id, reason_text)
            delta = deltas["trend"].get(account_id)
            rows.append(
                {
                    "account_id": account_id,
                    "scored_at": now,
                    "score": value,
                    "grade": grade,
                    "coverage": float(batch.coverage[i]),
                    "groups": {
                        g: (None if math.isnan(v[i]) else round(float(v[i]), 2))
                        for g, v in batch.groups.items()
                    },
                    "reasons": {
                        "top": [r.as_dict() for r in reasons],
                        "segment": batch.segment_name(i),
                        "delta_7d": deltas["7d"].get(account_id),
                        "delta_30d": deltas["30d"].get(account_id),
                        **gov.row_reasons(account_id),
                    },
                }
            )
            account = by_id[account_id]
            payloads[account_id] = {
                "name": account.name,
                "score": value,
                "grade": grade,
                "previous_grade": previous[account_id].grade if account_id in previous else None,
                "delta": delta,
                "delta_window": format_duration(window),
                "reasons": reason_text,
                "owner_email": account.owner_email,
                "owner_name": account.owner_name,
                "crm_url": self._record_url(account_id),
                "renewal_date": account.attributes.get("renewal_date"),
                "arr": account.attributes.get("arr"),
                **gov.payload(account_id),
            }
            desired[account_id] = {
                "score": None if value is None else float(round(value)),
                "grade": CRM_GRADES[grade],
                "trend": gov.trend(account_id, trend_text(delta, format_duration(window))),
                "reasons": "; ".join(reason_text)[:REASONS_MAX] or None,
                "updated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "stale": account_id in gov.stale,
            }
        intents, states = self._fire_rules(batch, now, payloads, past)
        intents += gov.intents
        self.store.save_scores(
            run_id,
            rows,
            [
                {
                    "key": i.key,
                    "rule": i.rule,
                    "kind": i.kind,
                    "account_id": i.account_id,
                    "target": i.target,
                    "payload": i.payload,
                }
                for i in intents
            ],
            [
                {
                    "rule": r,
                    "account_id": a,
                    "true_since": st.true_since,
                    "active": st.active,
                    "episode": st.episode,
                    "last_fired": st.last_fired,
                }
                for (r, a), st in states.items()
            ],
        )
        report.run_id = run_id
        fired = {(i.rule, i.account_id) for i in intents}  # an account once per rule
        report.entered_red = sum(1 for r, _ in fired if r == ENTERED_RED.name)
        report.alerts = dict(Counter(r for r, _ in fired))
        if self.config.sources.salesforce.enabled:
            report.writes_queued = queue_changes(self.store, CRM, desired)
        hubspot = self.config.sources.hubspot
        if hubspot.enabled and hubspot.write_back.enabled:
            matched = {a for _, _, a in self.store.account_keys(COMPANY_KEY)}
            report.writes_queued += queue_changes(
                self.store,
                HUBSPOT,
                {
                    a: {**v, "grade": payloads[a]["grade"]}  # HubSpot's options: red, yellow …
                    for a, v in desired.items()
                    if a in matched
                },
            )
        log.info(
            "scored %d accounts (%s); %d entered red; %d CRM writes queued",
            report.scored,
            report.grades,
            report.entered_red,
            report.writes_queued,
        )
        return report, batch

    def explain(self, account: str) -> tuple[Account, Explanation]:
        """Explain one account (by id or exact, case-insensitive name) as the batch scores it.

        The whole batch is scored, so percentile ranks and hysteresis match a real run.
        """
        accounts = self.store.accounts()
        found = find_account(self.store, account, accounts)
        now = self.clock()
        batch = self.compute(
            now, accounts=accounts, previous=self.store.scores_as_of(now), live=True
        )
        return found, explain_with_override(self.store, explain(batch, batch.index(found.id)), now)

    def _fire_rules(
        self,
        batch: ScoreBatch,
        now: datetime,
        payloads: dict[str, dict[str, Any]],
        past: PastScores,
    ) -> tuple[list[Intent], dict[tuple[str, str], RuleState]]:
        """Evaluate every alert rule on this run's scores (see ``actions.rules``)."""
        rules = self.config.active_rules
        if not rules:
            return [], {}
        windows = {r.when.score_dropped.within for r in rules if r.when.score_dropped}
        scores_then = {
            window.total_seconds(): {
                a: s.score for a, s in past(window).items() if s.score is not None
            }
            for window in windows
        }
        states = {
            k: RuleState(v.true_since, v.active, v.episode, v.last_fired)
            for k, v in self.store.rule_states().items()
        }
        sequences = any(a.email is not None and a.email.steps for r in rules for a in r.actions)
        known = self.store.action_keys("email") if sequences else set()
        return evaluate(
            rules, batch, RuleContext(now, scores_then), states, payloads, self.alert_channel, known
        )

    def preview_rules(self) -> list[Intent]:
        """The intents a scoring run now would produce (nothing is stored or sent)."""
        now = self.clock()
        accounts = self.store.accounts()
        previous = self.store.scores_as_of(now)
        batch = self.compute(now, accounts=accounts, previous=previous)
        by_id = {a.id: a for a in accounts}
        payloads = {}
        for i, account_id in enumerate(batch.account_ids):
            account = by_id[account_id]
            payloads[account_id] = {
                "name": account.name,
                "grade": str(batch.grade[i]),
                "score": None if math.isnan(batch.score[i]) else float(batch.score[i]),
                "owner_email": account.owner_email,
                "owner_name": account.owner_name,
                "crm_url": self._record_url(account_id),
            }
        intents, _ = self._fire_rules(batch, now, payloads, PastScores(self.store, now))
        return intents

    def _record_url(self, account_id: str) -> str | None:
        hubspot = self.config.sources.hubspot
        if hubspot.record_system:
            if hubspot.portal_id is None:
                return None
            return hubspot.record_url.format(portal_id=hubspot.portal_id, id=account_id)
        base = self.settings.salesforce_instance_url
        if not base:
            return None
        return self.config.sources.salesforce.record_url.format(
            instance_url=base.rstrip("/"), id=account_id
        )

    def write_back(self, *, dry_run: bool = False) -> WriteReport:
        source = self.config.sources.salesforce
        if not source.enabled:
            return WriteReport()
        writer = SalesforceWriter(self.salesforce, source.write_back, source.batch_size)
        report = flush_pending(self.store, writer, dry_run=dry_run)
        log.info(
            "CRM write-back: %d records in %d requests, %d pending",
            report.records_updated,
            report.requests,
            report.pending,
        )
        return report

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
                if self.config.sources.hubspot.record_system:
                    owners = {
                        (o.email or "").lower(): o.id
                        for o in pull_owners(self.hubspot).values()
                        if o.email
                    }
                    tasks = HubSpotTasks(self.hubspot, settings.hubspot_task_key_property, owners)
                else:
                    tasks = SalesforceTasks(self.salesforce, settings.salesforce_task_key_field)
            senders = email_senders(self.settings, settings.email) if "email" in kinds else {}
            self._channels = Channels(tasks=tasks, senders=senders, settings=settings)
        return self._channels

    def write_back_hubspot(self, *, dry_run: bool = False) -> WriteReport | None:
        """Mirror the health fields onto matched HubSpot companies (when configured)."""
        source = self.config.sources.hubspot
        if not (source.enabled and source.write_back.enabled):
            return None
        company_of = {a: v for _, v, a in self.store.account_keys(COMPANY_KEY)}
        writer = HubSpotWriter(self.hubspot, source.write_back, company_of, source.batch_size)
        report = flush_pending(self.store, writer, dry_run=dry_run)
        log.info(
            "HubSpot write-back: %d records in %d requests, %d pending",
            report.records_updated,
            report.requests,
            report.pending,
        )
        return report

    def score_and_act(self) -> ActReport:
        scoring, _ = self.score()
        write = self.write_back()
        hubspot_write = self.write_back_hubspot()
        return ActReport(scoring, write, self.deliver(), hubspot_write)

    def import_accounts(self, path: Path | None = None, *, dry_run: bool = False) -> ImportReport:
        """Read the accounts file (``sources.accounts_file``) into the store."""
        spec = self.config.sources.accounts_file
        if spec is None:
            raise ConfigError(
                "no sources.accounts_file in the configuration: add one to "
                "import accounts from a file"
            )
        return import_accounts(self.store, spec, path, dry_run=dry_run)

    def sync_all(self) -> tuple[SyncReport, HubSpotSyncReport | None]:
        sync = SyncReport()
        if self.config.sources.accounts_file is not None:
            imported = self.import_accounts()
            sync.records, sync.skipped = imported.records, imported.skipped
        if self.config.sources.salesforce.enabled:
            sync = self.sync_salesforce()
            self.sync_related()
        hubspot = self.config.sources.hubspot
        hubspot_sync = self.sync_hubspot() if hubspot.enabled else None
        if hubspot.enabled and hubspot.related:
            self.sync_hubspot_related()  # after companies: it maps through their keys
        if self.config.sources.zendesk.enabled:
            self.sync_zendesk()  # after the CRM: organizations match its accounts
        # email after the CRMs: recipients are matched through the accounts' domains
        if self.config.sources.sendgrid.enabled:
            self.sync_sendgrid()
        if self.config.sources.mailchimp.enabled:
            self.sync_mailchimp()
        if self.config.sources.hubspot_email.enabled:
            self.sync_hubspot_email()
        if self.config.sources.usage_file.enabled:  # after the CRMs: usage maps to accounts
            self.sync_usage_file()
        if self.config.sources.warehouse.enabled:
            self.sync_warehouse()
        return sync, hubspot_sync

    def run_cycle(self) -> CycleReport:
        started = time.perf_counter()
        sync, hubspot_sync = self.sync_all()
        act = self.score_and_act()
        return CycleReport(
            sync,
            act.scoring,
            act.write,
            act.delivery,
            time.perf_counter() - started,
            hubspot_sync,
            act.hubspot_write,
        )
