"""Point-in-time scoring: what the scorecard said, or would have said, at a past moment T.

``ScoringHistory`` loads the signal history and the daily usage of every account *once*
(two queries), then builds the scorer's input table for any T from memory:

- each metric's value is the newest one observed at or before T (``signal_history``);
- usage windows end at T's date (``usage_daily``, see scoring/windows.py);
- "value N days ago" and "count in window" derived metrics read the same history.

The table then goes through the one scorer (``scoring.score``) that live runs use.

Account attributes (plan tier, seats, renewal date …) are read as of T from the attribute
history where it has them (``attributes_as_of.py``), else taken as they are now. The list of
accounts is today's (an account deleted in the CRM since T is scored only when asked for with
``include_deleted``). Accounts whose start date is known — an accounts file's start column,
or the attribute or date metric named by ``scoring.start_field`` (e.g. ``customer_since``) —
are left out of snapshots before they started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from healthscore.pipeline.attributes_as_of import AttributesAsOf
from scoring import LabelColumn, PercentileReference, ScoreBatch, Scorecard, SignalTable, score
from scoring.table import history_key
from scoring.windows import NONE, UsageHistory, day_of, window_columns
from store import Store
from store.models import Account

log = logging.getLogger(__name__)


def snapshot_moment(day: date | datetime) -> datetime:
    """A snapshot dated D is taken at the end of D (UTC): it sees everything observed on D."""
    if isinstance(day, datetime):
        return day if day.tzinfo else day.replace(tzinfo=UTC)
    return datetime.combine(day, time.max, tzinfo=UTC)


@dataclass(frozen=True)
class SignalSeries:
    """One metric's history, sorted by (account row, observed_at, insertion)."""

    rows: np.ndarray  # int64 account row
    at: np.ndarray  # float64 epoch seconds
    values: np.ndarray  # float64, NaN where the value was cleared

    def as_of(self, n: int, moment: float) -> tuple[np.ndarray, np.ndarray]:
        """(value, observed_at) per account: the newest entry at or before ``moment``."""
        values, observed = np.full(n, np.nan), np.full(n, np.nan)
        upto = np.flatnonzero(self.at <= moment)
        if len(upto):
            rows = self.rows[upto]
            last = upto[np.r_[rows[1:] != rows[:-1], True]]  # the last entry of each account
            values[self.rows[last]] = self.values[last]
            observed[self.rows[last]] = self.at[last]
        observed[np.isnan(values)] = np.nan
        return values, observed

    def count(self, n: int, start: float, end: float) -> np.ndarray:
        """Values observed in (start, end] per account (cleared values not counted)."""
        hit = (self.at > start) & (self.at <= end) & ~np.isnan(self.values)
        return np.bincount(self.rows[hit], minlength=n).astype(float)


def signal_series(
    account_ids: Sequence[str],
    rows: Iterable[tuple[str, str, float | None, datetime]],
    metrics: Iterable[str],
) -> dict[str, SignalSeries]:
    """Group (account_id, metric, value, observed_at) history rows (oldest first) by metric."""
    index = {a: i for i, a in enumerate(account_ids)}
    wanted = set(metrics)
    grouped: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for account_id, metric, value, observed_at in rows:
        i = index.get(account_id)
        if i is None or metric not in wanted:
            continue
        r, t, v = grouped.setdefault(metric, ([], [], []))
        r.append(i)
        t.append(observed_at.timestamp())
        v.append(np.nan if value is None else value)
    out = {}
    for metric, (r, t, v) in grouped.items():
        rows_, at, values = np.array(r, np.int64), np.array(t), np.array(v, dtype=float)
        order = np.lexsort((np.arange(len(at)), at, rows_))  # stable on insertion order
        out[metric] = SignalSeries(rows_[order], at[order], values[order])
    return out


def recent_days(card: Scorecard) -> int:
    """How many days up to T the scorecard's windows read (``days_since`` and ``last`` with
    no window need only the whole-history facts of ``Store.usage_summary``)."""
    spans = [w.days * (2 if w.vs_previous else 1) for w in card.usage_windows().values()]
    return max([1, *spans])


def load_usage(
    store: Store,
    card: Scorecard,
    account_ids: Sequence[str],
    until: date | None = None,
    *,
    recent: bool = False,
    first_moment: date | None = None,
    bounds: tuple[str, str] | None = None,
) -> UsageHistory | None:
    """The daily usage the scorecard's windows read, as dense arrays (None: no windows).

    Aggregates are asked for at dates from ``first_moment`` (default: ``until`` with
    ``recent``, a live run) to ``until``: then only the days their windows span are held,
    plus one summary row per account and metric of the days before (first day, last active
    day, last value), instead of the whole history — the aggregates come out the same, and
    memory stays bounded however long the history is. ``bounds``: the first and last id of
    ``account_ids`` (a chunk of accounts), so only their range of ``usage_daily`` is read.
    """
    metrics = sorted({w.metric for w in card.usage_windows().values()})
    if not metrics:
        return None
    if recent and first_moment is None:
        first_moment = until
    if first_moment is not None and until is not None:
        since = first_moment - timedelta(days=recent_days(card) - 1)
        usage = _load_span(store, metrics, account_ids, since, until, bounds)
        usage.exact_from = first_moment
        return usage
    index = {a: i for i, a in enumerate(account_ids)}
    chunks: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {m: [] for m in metrics}
    first: np.datetime64 | None = None
    last: np.datetime64 | None = None
    for account_id, metric, days, values in store.usage_series(
        metrics, until=until, accounts=bounds
    ):
        i = index.get(account_id)
        if i is None:
            continue
        chunks[metric].append((i, days, values))
        lo, hi = days.min(), days.max()
        first = lo if first is None or lo < first else first
        last = hi if last is None or hi > last else last
    if first is None or last is None:
        missing = ", ".join(metrics)
        log.warning("no usage rows for %s: the usage window measures are missing", missing)
        return None
    start, end = first.astype(date), last.astype(date)
    if until is not None and until > end:
        end = until
    history = UsageHistory.empty(account_ids, start, end, metrics)
    for metric, items in chunks.items():
        if not items:
            log.warning("no usage rows for metric %r: its window measures are missing", metric)
            continue
        rows = np.concatenate([np.full(len(d), i, np.int64) for i, d, _ in items])
        days = np.concatenate([d for _, d, _ in items])
        values = np.concatenate([v for _, _, v in items])
        history.put(metric, rows, (days - np.datetime64(start, "D")).astype(np.int64), values)
    return history.seal()


def _load_span(
    store: Store,
    metrics: list[str],
    account_ids: Sequence[str],
    since: date,
    until: date,
    bounds: tuple[str, str] | None = None,
) -> UsageHistory:
    history = UsageHistory.empty(account_ids, since, until, metrics)
    index = {a: i for i, a in enumerate(account_ids)}
    start = np.datetime64(since, "D")
    for account_id, metric, days, values in store.usage_series(
        metrics, until=until, since=since, accounts=bounds
    ):
        i = index.get(account_id)
        if i is not None:
            history.put(
                metric, np.full(len(days), i, np.int64), (days - start).astype(np.int64), values
            )
    facts: dict[str, list[tuple[int, int, int, int, float]]] = {m: [] for m in metrics}
    before = since - timedelta(days=1)  # the facts of the days before the held ones
    summary = store.usage_summary(metrics, before, accounts=bounds)
    for account_id, metric, first, active, newest, value in summary:
        i = index.get(account_id)
        if i is not None:
            facts[metric].append(
                (
                    i,
                    (first - since).days,
                    -NONE if active is None else (active - since).days,
                    (newest - since).days,
                    value,
                )
            )
    for metric, items in facts.items():
        if not items and not history.metrics[metric].present.any():
            log.warning("no usage rows for metric %r: its window measures are missing", metric)
        if items:
            rows, first_, active_, newest_, values_ = (
                np.array(c) for c in zip(*items, strict=True)
            )
            history.know(metric, rows, first_, active_, newest_, values_.astype(float))
    return history.seal()


def _labels(accounts: Sequence[Account], wanted: set[str]) -> dict[str, LabelColumn]:
    table = SignalTable.from_rows(
        [a.id for a in accounts], [], wanted, attributes={a.id: a.attributes for a in accounts}
    )
    return table.labels


def _start_epochs(accounts: Sequence[Account], attribute: str | None) -> np.ndarray:
    """Each account's start (epoch seconds at the start of its start day; NaN unknown)."""
    out = np.full(len(accounts), np.nan)
    if attribute is None:
        return out
    for i, a in enumerate(accounts):
        raw = a.attributes.get(attribute)
        if raw in (None, ""):
            continue
        try:
            day = date.fromisoformat(str(raw)[:10])
        except ValueError:
            continue
        out[i] = datetime.combine(day, time.min, tzinfo=UTC).timestamp()
    return out


class ScoringHistory:
    """Every account's signal and usage history, held in memory, scored at any moment."""

    def __init__(
        self,
        card: Scorecard,
        accounts: Sequence[Account],
        signals: Mapping[str, SignalSeries],
        usage: UsageHistory | None,
        *,
        start_attribute: str | None = None,
        start_series: SignalSeries | None = None,
        attributes: AttributesAsOf | None = None,
    ) -> None:
        self.card = card
        self.attributes = attributes  # their history: read as of each moment
        self.accounts = list(accounts)
        self.account_ids = [a.id for a in self.accounts]
        self.signals = dict(signals)
        self.usage = usage
        self.labels = _labels(self.accounts, card.source_metrics())
        self.starts = _start_epochs(self.accounts, start_attribute)
        start_signal = start_series or self.signals.get(start_attribute or "")
        if start_signal is not None:  # a start-date metric (e.g. customer_since from the CRM):
            # its latest value, whenever observed — a start date is a fact about the past
            latest = start_signal.as_of(len(self.accounts), np.inf)[0]
            self.starts = np.where(np.isnan(self.starts), latest, self.starts)

    @classmethod
    def load(
        cls,
        store: Store,
        card: Scorecard,
        *,
        accounts: Sequence[Account] | None = None,
        until: datetime | None = None,
        since: datetime | None = None,
        include_deleted: bool = False,
        start_attribute: str | None = None,
        bounds: tuple[str, str] | None = None,
    ) -> ScoringHistory:
        """Read the history the scorecard needs, up to ``until`` (everything by default).

        ``since``: the earliest moment that will be scored (the usage arrays then hold only
        the days from there, see ``load_usage``). ``bounds``: the first and last id of
        ``accounts`` in the store's order (a chunk of them): only that range is read."""
        accounts = store.accounts(include_deleted=include_deleted) if accounts is None else accounts
        ids = [a.id for a in accounts]
        wanted = card.source_metrics() | {m for _, m, _ in card.history_needs()}
        rows = store.history_rows(wanted, until=until, accounts=bounds)
        start_series = None
        if start_attribute is not None:  # its whole history: a start date seen later counts
            start_series = signal_series(
                ids, store.history_rows([start_attribute], accounts=bounds), [start_attribute]
            ).get(start_attribute)
        signals = signal_series(ids, rows, wanted)
        usage = load_usage(
            store,
            card,
            ids,
            until=None if until is None else day_of(until),
            first_moment=None if since is None else day_of(since),
            bounds=bounds,
        )
        # all of it (not only up to ``until``): a row after T still says the account's
        # value on T is not today's
        attributes = AttributesAsOf.load(store, accounts, card.source_metrics())
        log.info(
            "history loaded: %d accounts, %d signal rows, %d usage values, %d attribute rows",
            len(ids),
            len(rows),
            0 if usage is None else usage.cells,
            len(attributes),
        )
        return cls(
            card,
            accounts,
            signals,
            usage,
            start_attribute=start_attribute,
            start_series=start_series,
            attributes=attributes,
        )

    def __len__(self) -> int:
        return len(self.accounts)

    @property
    def signal_rows(self) -> int:
        return sum(len(s.at) for s in self.signals.values())

    def started(self, moment: datetime) -> np.ndarray:
        """Accounts that had started by ``moment`` (unknown start: yes)."""
        with np.errstate(invalid="ignore"):
            return ~(self.starts > moment.timestamp())

    def table_at(self, moment: datetime, rows: np.ndarray | None = None) -> SignalTable:
        """The scorer's input at ``moment``, for all accounts or the given rows."""
        n = len(self.accounts)
        t = moment.timestamp()
        cut = None if self.usage is None else self.usage.exact_from
        if cut is not None and day_of(moment) < cut:
            raise ValueError(
                f"usage history loaded for moments from {cut}; load it with an "
                f"earlier 'since' to score {moment:%Y-%m-%d}"
            )
        columns, observed = {}, {}
        for metric in self.card.source_metrics():
            series = self.signals.get(metric)
            if series is not None:
                columns[metric], observed[metric] = series.as_of(n, t)
        history: dict[str, np.ndarray] = {}
        for kind, metric, window in self.card.history_needs():
            series = self.signals.get(metric)
            key = history_key(kind, metric, window)
            if series is None:
                continue
            if kind == "count":
                history[key] = series.count(n, t - window.total_seconds(), t)
            else:
                history[key] = series.as_of(n, t - window.total_seconds())[0]
        history.update(window_columns(self.card.usage_windows(), self.usage, moment))
        labels = self.labels
        if self.attributes is not None:
            labels = self.attributes.overlay(labels, day_of(moment))
        table = SignalTable(self.account_ids, columns, observed, labels, history)
        return table if rows is None else table.take(rows)

    def score_at(
        self,
        moment: datetime,
        *,
        rows: np.ndarray | None = None,
        previous_grades: np.ndarray | None = None,
        reference: PercentileReference | None = None,
    ) -> ScoreBatch:
        return score(
            self.card,
            self.table_at(moment, rows),
            moment,
            previous_grades=previous_grades,
            reference=reference,
        )

    def snapshots(
        self,
        days: Iterable[date | datetime],
        *,
        excluded: Callable[[datetime], set[str]] | None = None,
        hysteresis: bool = True,
        references: Mapping[datetime, PercentileReference] | None = None,
    ) -> Iterator[tuple[datetime, ScoreBatch]]:
        """Score each snapshot (dates are taken at their end: ``snapshot_moment``), oldest
        first. ``excluded(moment)`` names accounts to leave out (e.g. churned by then);
        accounts that had not started yet are left out too. With ``hysteresis`` each
        snapshot's grades stick as a run's would, given the previous snapshot's grades.
        ``references``: what percentile measures rank against at each moment, when these
        accounts are a chunk of the population (``healthscore.pipeline.chunks``)."""
        previous: dict[str, str] = {}
        for moment in sorted(snapshot_moment(d) for d in days):
            keep = self.started(moment)
            if excluded is not None:
                gone = excluded(moment)
                if gone:  # a set lookup per account (np.isin on strings is quadratic)
                    keep &= np.fromiter(
                        (a not in gone for a in self.account_ids), bool, len(self.account_ids)
                    )
            rows = np.flatnonzero(keep)
            prior = None
            if hysteresis and previous:
                prior = np.array([previous.get(self.account_ids[i]) for i in rows], dtype=object)
            reference = None if references is None else references[moment]
            batch = self.score_at(moment, rows=rows, previous_grades=prior, reference=reference)
            if hysteresis:
                previous = dict(zip(batch.account_ids, batch.grade.tolist(), strict=True))
            yield moment, batch
