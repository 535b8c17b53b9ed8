"""Snapshots scored a chunk of accounts at a time, joined back into one per date.

A chunked scorer (``healthscore.pipeline.chunks``) yields each date once per chunk; the
backtest keeps only what it reads of each piece — scores, grades, points, coverage — and
joins a date's pieces in the order they came (the store's account order, as one batch of
every account would have them). Batches kept for re-scoring with another card stay pieces:
each is re-scored against the population's percentile reference it was scored with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np

from scoring import LabelColumn, ScoreBatch, Scorecard, SignalTable, score
from scoring.backtest import Snapshot

Kept = ScoreBatch | Sequence[ScoreBatch]  # one batch of a date, or its chunks' batches


def snapshot_of(day: date, batch: ScoreBatch) -> Snapshot:
    return Snapshot(day, batch.account_ids, batch.score, batch.grade, batch.points, batch.coverage)


def join(pieces: Sequence[Snapshot]) -> Snapshot:
    """One date's snapshot pieces (chunks of accounts) as one snapshot, in their order."""
    if len(pieces) == 1:
        return pieces[0]
    coverage = None
    if all(p.coverage is not None for p in pieces):
        coverage = np.concatenate([p.coverage for p in pieces])  # type: ignore[misc]
    return Snapshot(
        pieces[0].date,
        [a for p in pieces for a in p.account_ids],
        np.concatenate([p.score for p in pieces]),
        np.concatenate([p.grade for p in pieces]),
        np.concatenate([p.points for p in pieces], axis=0),
        coverage,
    )


def rescore_kept(
    card: Scorecard, batches: Mapping[date, Kept], moment: Callable[[date], datetime]
) -> list[Snapshot]:
    """The kept accounts and signals scored by another card with the same measures (the
    scorer's own code path on the kept tables), grades carried for hysteresis; chunks are
    ranked against the reference their first scoring had (the whole population's)."""
    out = []
    previous: dict[str, str] = {}
    for day in sorted(batches):
        kept = batches[day]
        pieces = [kept] if isinstance(kept, ScoreBatch) else list(kept)
        done, grades = [], {}
        for batch in pieces:
            prior = np.array([previous.get(a) for a in batch.account_ids], dtype=object)
            new = score(
                card,
                batch.table,
                moment(day),
                previous_grades=prior if previous else None,
                reference=batch.reference if len(pieces) > 1 else None,
            )
            grades.update(zip(new.account_ids, new.grade.tolist(), strict=True))
            done.append(snapshot_of(day, new))
        previous = grades
        out.append(join(done))
    return out


def join_batches(pieces: Sequence[ScoreBatch]) -> ScoreBatch:
    """One date's batches (chunks of accounts, in order) as one batch of them all.

    The joined table keeps columns, observation times and labels; the raw history the
    chunks derived their columns from (usage windows, values days ago) is not kept. A column
    or label one chunk has not (no account of it had the metric) is missing for its rows."""
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    sizes = [len(p) for p in pieces]

    def numbers(get: Callable[[ScoreBatch], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        names = dict.fromkeys(k for p in pieces for k in get(p))
        return {
            k: np.concatenate(
                [get(p).get(k, np.full(n, np.nan)) for p, n in zip(pieces, sizes, strict=True)]
            )
            for k in names
        }

    def joined(get: Callable[[ScoreBatch], Any]) -> Any:
        parts = [get(p) for p in pieces]
        return None if any(x is None for x in parts) else np.concatenate(parts, axis=0)

    labels = {}
    for name in dict.fromkeys(k for p in pieces for k in p.table.labels):
        columns = [p.table.labels.get(name) for p in pieces]
        labels[name] = _join_labels(columns, sizes)
    ids = [a for p in pieces for a in p.account_ids]
    table = SignalTable(
        ids, numbers(lambda p: p.table.columns), numbers(lambda p: p.table.observed), labels
    )
    return ScoreBatch(
        card=first.card,
        table=table,
        account_ids=ids,
        measure_names=first.measure_names,
        segment=joined(lambda p: p.segment),
        raw=joined(lambda p: p.raw),
        stale=joined(lambda p: p.stale),
        points=joined(lambda p: p.points),
        weight=joined(lambda p: p.weight),
        lost=joined(lambda p: p.lost),
        groups={g: np.concatenate([p.groups[g] for p in pieces]) for g in first.groups},
        score=joined(lambda p: p.score),
        coverage=joined(lambda p: p.coverage),
        grade=joined(lambda p: p.grade),
        top=joined(lambda p: p.top),
        reference=first.reference,
        critical=joined(lambda p: p.critical),
        uncapped=joined(lambda p: p.uncapped),
    )


def _join_labels(columns: Sequence[LabelColumn | None], sizes: Sequence[int]) -> LabelColumn:
    values: dict[str, int] = {}
    codes = []
    for column, n in zip(columns, sizes, strict=True):
        if column is None:
            codes.append(np.full(n, -1, np.int32))
            continue
        remap = np.array([values.setdefault(v, len(values)) for v in column.values] + [-1])
        codes.append(remap[column.codes].astype(np.int32))
    return LabelColumn(np.concatenate(codes), tuple(values))
