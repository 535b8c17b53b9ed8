"""What the store holds for ``healthscore fit`` to build candidates from, and how a card of
them is scored at past snapshots (the point-in-time path of ``Pipeline.score_at_dates``).

- daily usage metrics: every metric in ``usage_daily``;
- signal metrics: those the configured sources provide that have history (a date field,
  held as epoch seconds, becomes days until or since it);
- account attributes (an accounts file's columns, a CRM's mapped attributes): numbers, ISO
  dates and text with few values (plan, region …).

Fields that tell the outcome itself (``churn``, ``lost``, ``cancel`` in the name, the
configured churn metric) are left out: they would predict churn perfectly and never live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import text

from healthscore.backtest.pieces import join_batches
from healthscore.pipeline.chunks import ChunkedScoring
from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory, recent_days, snapshot_moment
from scoring import ScoreBatch, Scorecard
from scoring.learn.candidates import Inventory
from scoring.windows import NONE, MetricDays, UsageHistory

if TYPE_CHECKING:
    from healthscore.config import Config
    from store import Store
    from store.models import Account

# scores every account as of each date with the given card (accounts gone by then left out)
CardScorer = Callable[[Scorecard, Sequence[date]], Iterable[tuple[datetime, ScoreBatch]]]
SAMPLE = 200  # values read per field to tell numbers, dates and text apart
# the distinct metrics of usage_daily through its (metric, day) index: one index seek per
# metric instead of a scan of every row (SQLite and PostgreSQL alike)
DISTINCT_USAGE = text(
    "WITH RECURSIVE m(metric) AS ("
    "SELECT MIN(metric) FROM usage_daily UNION ALL "
    "SELECT (SELECT MIN(metric) FROM usage_daily WHERE metric > m.metric) FROM m "
    "WHERE m.metric IS NOT NULL) SELECT metric FROM m WHERE metric IS NOT NULL"
)
DATE_EPOCH = (3.0e8, 4.2e9)  # epoch seconds from 1979 to 2103: a date held as a number


def pipeline_card_scorer(
    pipeline: Any, outcomes: Mapping[str, Outcome] | None, *, chunk: int | None = None
) -> CardScorer:
    """Score any card at past dates from the store's history of the card's own metrics,
    ``chunk`` accounts at a time (``healthscore.pipeline.chunks``: only one chunk's daily
    usage is held at once); accounts not started or churned by a date are left out of it.

    One chunk: each date's batch as it is scored. Several: a date's chunks joined into one
    batch (``pieces.join_batches``), the dates yielded once every chunk is scored."""

    def run(card: Scorecard, days: Sequence[date]) -> Iterator[tuple[datetime, ScoreBatch]]:
        moments = sorted(snapshot_moment(d) for d in days)
        if not moments:
            return
        scoring = ChunkedScoring(
            pipeline.store, card, chunk=chunk, start_attribute=pipeline.start_attribute
        )
        excluded = None if outcomes is None else (lambda m: churned_by(outcomes, m))
        batches = scoring.snapshots(moments, excluded=excluded)
        if len(scoring.parts()) == 1:
            yield from batches
            return
        found: dict[datetime, list[ScoreBatch]] = {}
        for moment, batch in batches:
            found.setdefault(moment, []).append(batch)
        for moment in moments:
            if moment in found:
                yield moment, join_batches(found.pop(moment))

    return run


def memory_card_scorer(
    accounts: Sequence[Account],
    usage: UsageHistory,
    outcomes: Mapping[str, Outcome] | None,
    *,
    start_attribute: str | None = None,
) -> CardScorer:
    """Any card at past dates over usage already held in memory (a population generated
    for a test or a benchmark), by the same point-in-time scorer; only the card's usage
    metrics are read, and their running sums are freed after each call."""

    def run(card: Scorecard, days: Sequence[date]) -> Iterator[tuple[datetime, ScoreBatch]]:
        wanted = sorted({w.metric for w in card.usage_windows().values()} & set(usage.metrics))
        since = min(days) - timedelta(days=recent_days(card) - 1)
        held = held_span(usage, wanted, since, max(days))
        held.exact_from = min(days)
        history = ScoringHistory(card, accounts, {}, held, start_attribute=start_attribute)
        excluded = None if outcomes is None else (lambda m: churned_by(outcomes, m))
        yield from history.snapshots([snapshot_moment(d) for d in days], excluded=excluded)

    return run


def held_span(
    usage: UsageHistory, metrics: Sequence[str], since: date, until: date
) -> UsageHistory:
    """The days from ``since`` to ``until`` of some metrics (views, not copies) and the facts
    of the days before them — what ``load_usage`` reads from the store for the same span."""
    lo = min(max(0, (since - usage.start).days), usage.days)
    hi = max(lo, min(usage.days, (until - usage.start).days + 1))
    out = UsageHistory(
        usage.account_ids,
        usage.start + timedelta(days=lo),
        hi - lo,
        {
            m: MetricDays(usage.metrics[m].values[:, lo:hi], usage.metrics[m].present[:, lo:hi])
            for m in metrics
        },
    )
    for m in metrics:
        before = usage.metrics[m]
        present, active = before.present[:, :lo], before.values[:, :lo] > 0
        rows = np.flatnonzero(present.any(axis=1))
        if not len(rows):
            continue
        first = present[rows].argmax(axis=1)
        last = lo - 1 - present[rows, ::-1].argmax(axis=1)
        any_active = active[rows].any(axis=1)
        last_active = lo - 1 - active[rows, ::-1].argmax(axis=1)
        out.know(
            m,
            rows,
            first - lo,
            np.where(any_active, last_active - lo, -NONE),
            last - lo,
            before.values[rows, last].astype(float),
        )
    return out.seal()


def inventory_of(config: Config, store: Store, start: str | None) -> Inventory:
    """The usage metrics, fields and their kinds in the store (see the module docstring)."""
    with store.engine.connect() as conn:
        usage = [row[0] for row in conn.execute(DISTINCT_USAGE)]
        provided = config.fields | config.scorecard.source_metrics()
        leak = {config.outcomes.churn_metric} - {None}
        signals = [
            row[0]
            for row in conn.execute(text("SELECT DISTINCT metric FROM signal_history"))
            if row[0] in provided and row[0] not in leak
        ]
        samples: dict[str, list[Any]] = {}
        dated = set()
        for metric in signals:
            values = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT value FROM signal_history WHERE metric = :m "
                        "AND value IS NOT NULL LIMIT :n"
                    ),
                    {"m": metric, "n": SAMPLE},
                )
            ]
            samples[metric] = values
            if values and all(_is_day(v) for v in values):
                dated.add(metric)
    for account in store.accounts()[: SAMPLE * 5]:
        for name, value in (account.attributes or {}).items():
            samples.setdefault(name, []).append(value)
    for name, values in store.attribute_samples(SAMPLE).items():  # attribute history
        samples.setdefault(name, []).extend(str(v) for v in values)
    return inventory_from(usage, samples, start=start, dated=dated)


def _is_day(value: float) -> bool:
    return DATE_EPOCH[0] <= value <= DATE_EPOCH[1] and value % 86400 == 0


# -- where candidates come from -----------------------------------------------------------------
SEAT_WORDS = ("seat", "licen")
LEAKS = ("churn", "lost", "cancel")  # a field telling the outcome itself is no predictor


def _kind(values: Sequence[Any]) -> str | None:
    """number, date or text: what most of the non-empty values of a field are."""
    present = [v for v in values if v not in (None, "")]
    if not present:
        return None
    dates = numbers = 0
    for v in present:
        text = str(v)
        try:
            float(text)
            numbers += 1
            continue
        except ValueError:
            pass
        try:
            date.fromisoformat(text[:10])
            dates += 1
        except ValueError:
            pass
    if numbers >= 0.9 * len(present):
        return "number"
    if dates >= 0.9 * len(present):
        return "date"
    return "text" if len(set(map(str, present))) <= 20 else None


def inventory_from(
    usage_metrics: Iterable[str],
    fields: Mapping[str, Sequence[Any]],
    *,
    start: str | None = None,
    dated: Iterable[str] = (),
) -> Inventory:
    """An inventory from the usage metrics and sample values of each field (attributes and
    signal metrics); ``dated`` names numeric fields that hold dates (epoch seconds)."""
    numbers, dates, texts = [], [], []
    dated = set(dated)
    for name, values in sorted(fields.items()):
        if name == start or any(w in name.lower() for w in LEAKS):
            continue
        kind = "date" if name in dated else _kind(values)
        {"number": numbers, "date": dates, "text": texts}.get(kind or "", []).append(name)
    seats = next((n for n in numbers if any(w in n.lower() for w in SEAT_WORDS)), None)
    return Inventory(
        tuple(sorted(usage_metrics)), tuple(numbers), tuple(dates), tuple(texts), seats, start
    )
