"""Scoring past snapshots a chunk of accounts at a time, so a backtest's memory is bounded.

``ScoringHistory`` holds every account's daily usage as dense arrays (accounts × days per
metric, plus running sums): 500k accounts × a year × 6 metrics is ~9 GB per float64 copy.
Here the accounts (in the store's id order) are cut into chunks; each chunk's history is read
from the store (only its range of ids), every snapshot is scored, and the history is freed
before the next chunk is read. What the caller keeps of each batch is its business (a backtest
keeps scores, grades and points: accounts × measures per snapshot).

An account's score depends on its own rows only — usage windows, signals, attributes, start
date, the grade it had at the previous snapshot — with one exception: a percentile measure
ranks the account among the accounts of its segment at that snapshot. With several chunks
the ranks are taken against the whole population: a first pass over the chunks keeps only
those measures' values (accounts × percentile measures per snapshot), sorted per segment,
and the second pass scores each chunk against them, exactly as one batch of every account
would have been scored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

import numpy as np

from healthscore.pipeline.point_in_time import ScoringHistory
from scoring import PercentileReference, ScoreBatch, Scorecard
from store import Store
from store.models import Account

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 50_000  # accounts per chunk: ~1.4 GB of daily usage for a year of 6 metrics
CHUNK_ENV = "HEALTHSCORE_CHUNK_ACCOUNTS"  # the operator's override of the default

Excluded = Callable[[datetime], set[str]]


def chunk_size(given: int | None = None) -> int:
    """``given``, else ``$HEALTHSCORE_CHUNK_ACCOUNTS``, else :data:`DEFAULT_CHUNK`."""
    if given is not None:
        size = given
    else:
        raw = os.environ.get(CHUNK_ENV, "").strip()
        try:
            size = int(raw) if raw else DEFAULT_CHUNK
        except ValueError:
            raise ValueError(f"{CHUNK_ENV}: not a whole number of accounts: {raw!r}") from None
    if size < 1:
        raise ValueError(f"chunk of accounts must be at least 1; got {size}")
    return size


def ranks_in_population(card: Scorecard) -> bool:
    """Whether the card has a percentile measure (ranked among a segment's accounts)."""
    return any(m.percentile for m in card.measures.values())


def _ranks_points(card: Scorecard) -> bool:
    """A percentile measure on a ``difference`` of points ranks values that themselves depend
    on ranks: no single pass gathers them. Such a card is scored in one chunk."""
    for m in card.measures.values():
        spec = card.derived.get(m.metric)
        if m.percentile and spec is not None and spec.difference is not None:
            return True
    return False


class ChunkedScoring:
    """Score every account of the store at some moments, ``chunk`` accounts at a time."""

    def __init__(
        self,
        store: Store,
        card: Scorecard,
        *,
        chunk: int | None = None,
        include_deleted: bool = True,
        start_attribute: str | None = None,
        accounts: Sequence[Account] | None = None,
    ) -> None:
        self.store = store
        self.card = card
        self.chunk = chunk_size(chunk)
        self.start_attribute = start_attribute
        # the store's id order: a chunk is a range of ids in the database's own collation
        self.accounts = (
            list(accounts)
            if accounts is not None
            else store.accounts(include_deleted=include_deleted)
        )
        if _ranks_points(card) and self.chunk < len(self.accounts):
            log.warning("a percentile measure ranks a difference of points: scoring in one chunk")
            self.chunk = max(1, len(self.accounts))

    def parts(self) -> list[list[Account]]:
        n = len(self.accounts)
        return [self.accounts[i : i + self.chunk] for i in range(0, n, self.chunk)] or [[]]

    def history(self, part: Sequence[Account], moments: Sequence[datetime]) -> ScoringHistory:
        whole = len(part) == len(self.accounts)
        return ScoringHistory.load(
            self.store,
            self.card,
            accounts=part,
            until=moments[-1],
            since=moments[0],
            start_attribute=self.start_attribute,
            bounds=None if whole or not part else (part[0].id, part[-1].id),
        )

    def snapshots(
        self,
        moments: Sequence[datetime],
        *,
        excluded: Excluded | None = None,
        hysteresis: bool = True,
    ) -> Iterator[tuple[datetime, ScoreBatch]]:
        """(moment, batch) for each chunk in turn, each chunk's moments oldest first; the
        chunks' batches of one moment, joined in order, are the batch of every account."""
        moments = sorted(moments)
        if not moments:
            return
        parts = self.parts()
        references = None
        if len(parts) > 1 and ranks_in_population(self.card):
            references = self.references(parts, moments, excluded)
        for k, part in enumerate(parts, 1):
            history = self.history(part, moments)
            log.info("chunk %d/%d: %d accounts", k, len(parts), len(part))
            yield from history.snapshots(
                moments, excluded=excluded, hysteresis=hysteresis, references=references
            )
            del history  # freed before the next chunk is read

    def references(
        self,
        parts: Sequence[Sequence[Account]],
        moments: Sequence[datetime],
        excluded: Excluded | None,
    ) -> dict[datetime, PercentileReference]:
        """The whole population's sorted values of each percentile measure per segment, at
        each moment: what one batch of every account would rank against."""
        names = list(self.card.measures)
        ranked = [j for j, n in enumerate(names) if self.card.measures[n].percentile]
        segments = self.card.segment_names
        found: dict[datetime, dict[tuple[str, str], list[np.ndarray]]] = {m: {} for m in moments}
        for part in parts:
            history = self.history(part, moments)
            for moment, batch in history.snapshots(moments, excluded=excluded, hysteresis=False):
                for j in ranked:
                    values = batch.raw[:, j]
                    present = ~np.isnan(values)
                    for s, segment in enumerate(segments):
                        picked = values[present & (batch.segment == s)]
                        found[moment].setdefault((names[j], segment), []).append(picked)
            del history
        return {
            moment: PercentileReference(
                {key: np.sort(np.concatenate(pieces)) for key, pieces in by_key.items()}
            )
            for moment, by_key in found.items()
        }
