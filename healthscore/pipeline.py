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
from typing import Any

import numpy as np

from actions import (
    ENTERED_RED,
    DeliveryReport,
    Intent,
    RuleContext,
    RuleState,
    SlackAlerter,
    deliver_pending,
    evaluate,
)
from connectors.hubspot import HubSpotClient, HubSpotWriter
from connectors.hubspot.related import pull_owners
from connectors.identity import DOMAIN
from connectors.salesforce import SalesforceClient, SalesforceWriter, SyncState, pull_accounts
from connectors.salesforce.accounts import parse_sf_datetime
from connectors.salesforce.related import RELATED, RelatedSync, account_of, pull_related
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

from .accounts_file import ImportReport, import_accounts
from .config import Config
from .durations import format_duration
from .errors import ConfigError
from .history import ScoringHistory, load_usage, snapshot_moment
from .hubspot_related_sync import HubSpotRelatedReport, RelatedRules, sync_hubspot_related
from .hubspot_sync import COMPANY_KEY, HubSpotSyncReport, sync_hubspot
from .hubspot_sync import OBJECT as HUBSPOT_OBJECT
from .hubspot_sync import SOURCE as HUBSPOT
from .outcomes import Outcome, churned_by
from .settings import Settings
from .writeback import WriteReport, flush_pending, queue_changes

log = logging.getLogger(__name__)

CRM = "salesforce"
CRM_GRADES = {"red": "Red", "yellow": "Yellow", "green": "Green",
              "insufficient_data": "Insufficient Data"}
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


@dataclass
class ScoreReport:
    run_id: int | None = None
    scored: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    entered_red: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # rule → intents this run
    writes_queued: int = 0
    scorecard_version: str = ""


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
            **({} if self.hubspot_sync is None else {
                "hubspot_companies_pulled": self.hubspot_sync.records,
                "hubspot_companies_matched": self.hubspot_sync.matched,
            }),
            **({} if self.hubspot_write is None else {
                "hubspot_records_updated": self.hubspot_write.records_updated,
                "hubspot_write_requests": self.hubspot_write.requests,
                "hubspot_writes_pending": self.hubspot_write.pending,
            }),
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


class Pipeline:
    """The product's main job for one CRM (Salesforce today)."""

    def __init__(self, config: Config, settings: Settings, store: Store, *,
                 config_path: str = "healthscore.yaml",
                 salesforce: SalesforceClient | None = None,
                 slack: SlackAlerter | None = None,
                 hubspot: HubSpotClient | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.config_path = config_path
        self._salesforce = salesforce
        self._slack = slack
        self._hubspot = hubspot
        self.clock = clock

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
                self.settings,
                requests_per_10s=self.config.sources.hubspot.requests_per_10s)
        return self._hubspot

    @property
    def slack(self) -> SlackAlerter | None:
        if self._slack is None and self.settings.slack_bot_token is not None:
            alerts = self.config.alerts.slack
            self._slack = SlackAlerter(
                self.settings.slack_bot_token.get_secret_value(),
                base_url=self.settings.slack_base_url,
                messages_per_second=alerts.messages_per_second,
                max_retry_wait=alerts.max_retry_wait)
        return self._slack

    @property
    def alert_channel(self) -> str | None:
        return self.settings.slack_alert_channel or self.config.alerts.slack.channel

    # -- stages --------------------------------------------------------------------------------
    def sync_salesforce(self, *, full: bool = False,
                        progress: Callable[[int], None] | None = None) -> SyncReport:
        """Pull Accounts changed since the cursor (all of them with ``full``)."""
        source = self.config.sources.salesforce
        started = self.clock()
        stored = None if full else self.store.cursor(CRM, "Account")
        cursor = datetime.fromisoformat(stored) if stored else None
        state = SyncState(cursor=None)
        report = SyncReport()
        for page in pull_accounts(self.salesforce, source, cursor, state,
                                  config_path=self.config_path):
            self.store.upsert_accounts(r.account for r in page)
            report.signals_changed += self.store.record_signals(
                s for r in page for s in r.signals)
            self.store.remember_crm_values(CRM, {r.account.id: r.crm_values for r in page})
            self.store.set_account_keys(DOMAIN, {r.account.id: [r.domain] if r.domain else []
                                                 for r in page})
            if progress is not None:
                progress(len(page))
        report.cursor = self._advance_cursor(CRM, "Account", started)
        report.records, report.skipped, report.deleted = state.records, state.skipped, \
            state.deleted
        report.skipped_ids = state.skipped_ids
        log.info("Salesforce sync: %d records, %d skipped, %d signal changes", report.records,
                 report.skipped, report.signals_changed)
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

    def sync_related(self, *, full: bool = False,
                     progress: Callable[[int], None] | None = None,
                     objects: list[str] | None = None) -> dict[str, RelatedSync]:
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
            for page in pull_related(self.salesforce, obj, since, state,
                                     overlap=source.overlap,
                                     bulk_threshold=source.bulk_threshold):
                rows = []
                for raw in page:
                    stamp = parse_sf_datetime(str(raw.get("SystemModstamp") or "")) \
                        if raw.get("SystemModstamp") else None
                    if not raw.get("Id") or stamp is None:
                        state.skipped_ids.append(str(raw.get("Id") or "<no Id>"))
                        log.warning("skipped Salesforce %s %s: no Id or SystemModstamp", name,
                                    raw.get("Id"))
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
                for metric, value in obj.aggregate(records, now).items())
            self._advance_cursor(CRM, name, started)
            log.info("Salesforce %s: %d records (%s), %d accounts recomputed", name,
                     state.records, "Bulk 2.0" if state.bulk else "REST", len(touched))
            reports[name] = state
        return reports

    def sync_hubspot_related(self, *, full: bool = False,
                             progress: Callable[[int], None] | None = None,
                             objects: list[str] | None = None) -> HubSpotRelatedReport:
        """Pull HubSpot deals/tickets/contacts changed since their cursors; recompute signals."""
        source = self.config.sources.hubspot
        started = self.clock()
        since: dict[str, datetime | None] = {}
        for name in objects if objects is not None else source.related:
            stored = None if full else self.store.cursor(HUBSPOT, name)
            since[name] = datetime.fromisoformat(stored) if stored else None
        report = sync_hubspot_related(
            self.hubspot, self.store, since_by_object=since, started=started, source=source,
            rules=RelatedRules(learn_contact_domains=source.learn_contact_domains),
            now=self.clock, progress=progress,
            committed=lambda name: self._advance_cursor(HUBSPOT, name, started))
        log.info("HubSpot related: %s in %d requests",
                 {o: r.records for o, r in report.objects.items()}, report.requests)
        return report

    def sync_hubspot(self, *, full: bool = False,
                     progress: Callable[[int], None] | None = None) -> HubSpotSyncReport:
        """Pull companies modified since the cursor (all with ``full``) and match them."""
        stored = None if full else self.store.cursor(HUBSPOT, HUBSPOT_OBJECT)
        since = datetime.fromisoformat(stored) if stored else None
        started = self.clock()
        source = self.config.sources.hubspot
        # as the CRM of record, each company's owner becomes the account's owner (mentions)
        owners = pull_owners(self.hubspot) if source.record_system else None
        report, _newest = sync_hubspot(self.hubspot, source, self.store, since,
                                       started=started, progress=progress, owners=owners)
        report.cursor = self._advance_cursor(HUBSPOT, HUBSPOT_OBJECT, started)
        log.info("HubSpot sync: %d companies (%d matched, %d unmatched, %d ambiguous) in %d "
                 "requests", report.records, report.matched, report.unmatched,
                 report.ambiguous, report.requests)
        return report

    def compute(self, as_of: datetime | None = None, *,
                accounts: list[Account] | None = None,
                previous: dict[str, Score] | None = None,
                live: bool | None = None) -> ScoreBatch:
        """Score every live account as of ``as_of`` (now by default; nothing is stored).

        A moment in the past (over a minute before the clock) is scored point-in-time: each
        metric as last observed by then, usage windows ending then, accounts that had started
        by then (``healthscore.history``).
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
            prior = np.array([previous[a].grade if a in previous else None for a in ids],
                             dtype=object)
        return score(card, table, as_of, previous_grades=prior)

    def _live_table(self, as_of: datetime, accounts: list[Account]) -> SignalTable:
        """Current signals (``signal_latest``), history-derived values, usage windows."""
        card = self.config.scorecard
        ids = [a.id for a in accounts]
        table = SignalTable.from_rows(ids, self.store.latest_signals(), card.source_metrics(),
                                      attributes={a.id: a.attributes for a in accounts})
        needs = card.history_needs()
        if needs:
            table = table.with_history(
                needs, self.store.history_rows({m for _, m, _ in needs}, until=as_of), as_of)
        windows = card.usage_windows()
        if windows:
            usage = load_usage(self.store, card, ids, until=day_of(as_of), recent=True)
            table = SignalTable(table.account_ids, table.columns, table.observed, table.labels,
                                {**table.history, **window_columns(windows, usage, as_of)})
        return table

    # -- point in time -------------------------------------------------------------------------
    @property
    def start_attribute(self) -> str | None:
        """The account attribute (or date metric) holding each account's start date."""
        if self.config.scoring.start_field is not None:
            return self.config.scoring.start_field
        source = self.config.sources.accounts_file
        return None if source is None else source.start_column

    def history(self, *, until: datetime | None = None, since: datetime | None = None,
                accounts: list[Account] | None = None,
                include_deleted: bool = False) -> ScoringHistory:
        """Every account's signal and usage history up to ``until``, loaded once, to score
        moments from ``since`` on."""
        return ScoringHistory.load(self.store, self.config.scorecard, accounts=accounts,
                                   until=until, since=since, include_deleted=include_deleted,
                                   start_attribute=self.start_attribute)

    def score_at_dates(self, dates: Iterable[date | datetime], *,
                       outcomes: Mapping[str, Outcome] | None = None,
                       include_deleted: bool = True, hysteresis: bool = True,
                       ) -> Iterator[tuple[datetime, ScoreBatch]]:
        """Score each past snapshot from history loaded once (a date is taken at its end).

        Accounts that churned on or before a snapshot (``outcomes``) or had not started are
        left out of it. Accounts deleted in the CRM since are included by default: they were
        customers back then.
        """
        moments = sorted(snapshot_moment(d) for d in dates)
        if not moments:
            return iter(())
        history = self.history(until=moments[-1], since=moments[0],
                               include_deleted=include_deleted)
        excluded = None if outcomes is None else (lambda m: churned_by(outcomes, m))
        return history.snapshots(moments, excluded=excluded, hysteresis=hysteresis)

    def score(self, *, dry_run: bool = False) -> tuple[ScoreReport, ScoreBatch]:
        now = self.clock()
        card = self.config.scorecard
        accounts = self.store.accounts()
        previous = self.store.scores_as_of(now)
        batch = self.compute(now, accounts=accounts, previous=previous, live=True)
        report = ScoreReport(scored=len(batch.account_ids),
                             grades=dict(Counter(batch.grade.tolist())),
                             scorecard_version=card.version)
        if dry_run:
            return report, batch
        run_id = self.store.start_run(card.version, started_at=now)
        window = self.config.scoring.trend_window
        lookbacks = {"7d": timedelta(days=7), "30d": timedelta(days=30), "trend": window}
        by_window = {ago: self._deltas(batch, now - ago, run_id)  # the trend is usually 7d:
                     for ago in set(lookbacks.values())}           # one history read each
        deltas = {label: by_window[ago] for label, ago in lookbacks.items()}
        by_id = {a.id: a for a in accounts}
        rows, payloads, desired = [], {}, {}
        for i, account_id in enumerate(batch.account_ids):
            value = None if math.isnan(batch.score[i]) else float(batch.score[i])
            grade = str(batch.grade[i])
            reasons = reasons_for(batch, i)
            reason_text = [str(r) for r in reasons]
            if grade == INSUFFICIENT:
                reason_text = ["Insufficient data: missing " + ", ".join(
                    missing_measures(batch, i))]
            delta = deltas["trend"].get(account_id)
            rows.append({
                "account_id": account_id, "scored_at": now, "score": value, "grade": grade,
                "coverage": float(batch.coverage[i]),
                "groups": {g: (None if math.isnan(v[i]) else round(float(v[i]), 2))
                           for g, v in batch.groups.items()},
                "reasons": {"top": [r.as_dict() for r in reasons],
                            "segment": batch.segment_name(i),
                            "delta_7d": deltas["7d"].get(account_id),
                            "delta_30d": deltas["30d"].get(account_id)},
            })
            account = by_id[account_id]
            payloads[account_id] = {
                "name": account.name, "score": value, "grade": grade,
                "previous_grade": previous[account_id].grade if account_id in previous else None,
                "delta": delta, "delta_window": format_duration(window),
                "reasons": reason_text, "owner_email": account.owner_email,
                "owner_name": account.owner_name,
                "crm_url": self._record_url(account_id),
                "renewal_date": account.attributes.get("renewal_date"),
                "arr": account.attributes.get("arr"),
            }
            desired[account_id] = {
                "score": None if value is None else float(round(value)),
                "grade": CRM_GRADES[grade],
                "trend": trend_text(delta, format_duration(window)),
                "reasons": "; ".join(reason_text)[:REASONS_MAX] or None,
                "updated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        intents, states = self._fire_rules(batch, now, payloads, run_id)
        self.store.save_scores(run_id, rows, [
            {"key": i.key, "rule": i.rule, "kind": i.kind, "account_id": i.account_id,
             "target": i.target, "payload": i.payload} for i in intents], [
            {"rule": r, "account_id": a, "true_since": st.true_since, "active": st.active,
             "episode": st.episode, "last_fired": st.last_fired}
            for (r, a), st in states.items()])
        report.run_id = run_id
        report.entered_red = sum(1 for i in intents if i.rule == ENTERED_RED.name)
        report.alerts = dict(Counter(i.rule for i in intents))
        if self.config.sources.salesforce.enabled:
            report.writes_queued = queue_changes(self.store, CRM, desired)
        hubspot = self.config.sources.hubspot
        if hubspot.enabled and hubspot.write_back.enabled:
            matched = {a for _, _, a in self.store.account_keys(COMPANY_KEY)}
            report.writes_queued += queue_changes(self.store, HUBSPOT, {
                a: {**v, "grade": payloads[a]["grade"]}  # HubSpot's options: red, yellow …
                for a, v in desired.items() if a in matched})
        log.info("scored %d accounts (%s); %d entered red; %d CRM writes queued", report.scored,
                 report.grades, report.entered_red, report.writes_queued)
        return report, batch

    def explain(self, account: str) -> tuple[Account, Explanation]:
        """Explain one account (by id or exact, case-insensitive name) as the batch scores it.

        The whole batch is scored, so percentile ranks and hysteresis match a real run.
        """
        accounts = self.store.accounts()
        wanted = account.casefold()
        matches = [a for a in accounts if a.id == account] or [
            a for a in accounts if a.name.casefold() == wanted]
        if not matches:
            raise ConfigError(f"no account with id or name {account!r} in the store "
                              "(run `healthscore sync` first?)")
        if len(matches) > 1:
            raise ConfigError(f"{len(matches)} accounts are named {account!r}; use the id: "
                              + ", ".join(a.id for a in matches))
        now = self.clock()
        batch = self.compute(now, accounts=accounts, previous=self.store.scores_as_of(now),
                             live=True)
        return matches[0], explain(batch, batch.index(matches[0].id))

    def _fire_rules(self, batch: ScoreBatch, now: datetime, payloads: dict[str, dict[str, Any]],
                    run_id: int) -> tuple[list[Intent], dict[tuple[str, str], RuleState]]:
        """Evaluate every alert rule on this run's scores (see ``actions.rules``)."""
        rules = self.config.active_rules
        if not rules:
            return [], {}
        windows = {r.when.score_dropped.within for r in rules if r.when.score_dropped}
        scores_then = {}
        for window in windows:
            old = self.store.scores_as_of(now - window, exclude_run=run_id)
            scores_then[window.total_seconds()] = {a: s.score for a, s in old.items()
                                                   if s.score is not None}
        states = {k: RuleState(v.true_since, v.active, v.episode, v.last_fired)
                  for k, v in self.store.rule_states().items()}
        return evaluate(rules, batch, RuleContext(now, scores_then), states, payloads,
                        self.alert_channel)

    def _deltas(self, batch: ScoreBatch, at: datetime, run_id: int) -> dict[str, float]:
        """Score now minus the score at ``at`` (accounts scored both times only)."""
        then = self.store.scores_as_of(at, exclude_run=run_id)
        out = {}
        for i, account_id in enumerate(batch.account_ids):
            old = then.get(account_id)
            if old is not None and old.score is not None and not math.isnan(batch.score[i]):
                out[account_id] = round(float(batch.score[i]) - old.score, 2)
        return out

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
            instance_url=base.rstrip("/"), id=account_id)

    def write_back(self, *, dry_run: bool = False) -> WriteReport:
        source = self.config.sources.salesforce
        if not source.enabled:
            return WriteReport()
        writer = SalesforceWriter(self.salesforce, source.write_back, source.batch_size)
        report = flush_pending(self.store, writer, dry_run=dry_run)
        log.info("CRM write-back: %d records in %d requests, %d pending", report.records_updated,
                 report.requests, report.pending)
        return report

    def deliver(self, *, dry_run: bool = False) -> DeliveryReport:
        return deliver_pending(self.store, None if dry_run else self.slack,
                               default_channel=self.alert_channel, dry_run=dry_run)

    def write_back_hubspot(self, *, dry_run: bool = False) -> WriteReport | None:
        """Mirror the health fields onto matched HubSpot companies (when configured)."""
        source = self.config.sources.hubspot
        if not (source.enabled and source.write_back.enabled):
            return None
        company_of = {a: v for _, v, a in self.store.account_keys(COMPANY_KEY)}
        writer = HubSpotWriter(self.hubspot, source.write_back, company_of, source.batch_size)
        report = flush_pending(self.store, writer, dry_run=dry_run)
        log.info("HubSpot write-back: %d records in %d requests, %d pending",
                 report.records_updated, report.requests, report.pending)
        return report

    def score_and_act(self) -> ActReport:
        scoring, _ = self.score()
        write = self.write_back()
        hubspot_write = self.write_back_hubspot()
        return ActReport(scoring, write, self.deliver(), hubspot_write)

    def import_accounts(self, path: Path | None = None, *, dry_run: bool = False
                        ) -> ImportReport:
        """Read the accounts file (``sources.accounts_file``) into the store."""
        spec = self.config.sources.accounts_file
        if spec is None:
            raise ConfigError("no sources.accounts_file in the configuration: add one to "
                              "import accounts from a file")
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
        return sync, hubspot_sync

    def run_cycle(self) -> CycleReport:
        started = time.perf_counter()
        sync, hubspot_sync = self.sync_all()
        act = self.score_and_act()
        return CycleReport(sync, act.scoring, act.write, act.delivery,
                           time.perf_counter() - started, hubspot_sync, act.hubspot_write)
