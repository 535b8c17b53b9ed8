"""Scoring every account at one moment: live (current signals, usage windows ending now) or
point in time (what was known by a past moment), by the same scorer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from healthscore.governance.apply import hysteresis_grade
from healthscore.pipeline.attributes_as_of import AttributesAsOf
from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory, load_usage, snapshot_moment
from scoring import ScoreBatch, SignalTable, score
from scoring.windows import day_of, window_columns
from store.models import Account, Score

if TYPE_CHECKING:
    from healthscore.config import Config
    from store import Store

# compute(as_of) within this of the clock is a live run (signal_latest), else point-in-time
LIVE_SLACK = timedelta(minutes=1)


class Compute:
    """The scoring of one moment (a mixin of ``Pipeline``)."""

    config: Config
    store: Store
    clock: Callable[[], datetime]

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
        """Current signals (``signal_latest``), attributes as of today (their history, where
        loaded), history-derived values, usage windows."""
        card = self.config.scorecard
        ids = [a.id for a in accounts]
        table = SignalTable.from_rows(
            ids,
            self.store.latest_signals(),
            card.source_metrics(),
            attributes={a.id: a.attributes for a in accounts},
        )
        today = day_of(as_of)
        history = AttributesAsOf.load(self.store, accounts, card.source_metrics(), today=today)
        if history.series:  # attributes with a history: their value as of today
            labels = history.overlay(table.labels, today)
            table = SignalTable(table.account_ids, table.columns, table.observed, labels)
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
