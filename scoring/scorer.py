"""The vectorized scorer: loops over measures, groups and segments (a handful), never accounts.

Weights renormalize over the measures an account has: a missing measure's weight goes to the
present measures of its group, an empty group's weight to the other groups (as Catalyst
does). Coverage is the share of the segment's nominal weight that was present; below the
scorecard's floor the grade is ``insufficient_data`` rather than red.

Every per-account quantity is a NumPy array aligned with ``account_ids``; sums run along the
measure axis of C-ordered arrays, so one account scored alone gets bit-for-bit the numbers
of its row in a batch (given the same percentile reference and previous grades).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from .critical import cap_limit, worse
from .critical import evaluate as evaluate_critical
from .derived import derive
from .grades import assign_grades
from .normalize import category_points, numeric_points, percentile_rank
from .scorecard import COVERAGE_TOLERANCE, Measure, Scorecard
from .segments import assign_segments
from .table import SignalTable

GRADES = ("red", "yellow", "green", "insufficient_data")
TOP_REASONS = 3
TOP_CHUNK = 1 << 17


@dataclass(frozen=True)
class PercentileReference:
    """Sorted present values per (percentile measure, segment): what a rank is taken against.

    A batch builds it from its own accounts; scoring one account against the batch's
    reference gives that account's batch result.
    """

    values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def get(self, measure: str, segment: str) -> np.ndarray | None:
        return self.values.get((measure, segment))


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of every account in a table; arrays are aligned with ``account_ids``."""

    card: Scorecard
    table: SignalTable  # with derived metrics added
    account_ids: list[str]
    measure_names: list[str]
    segment: np.ndarray  # index into card.segment_names
    raw: np.ndarray  # accounts × measures: the measured value (NaN = missing or stale)
    stale: np.ndarray  # accounts × measures: a value existed but was older than stale_after
    points: np.ndarray  # accounts × measures: 0–100 (NaN = missing)
    weight: np.ndarray  # accounts × measures: effective weight in the score (rows sum to 1)
    lost: np.ndarray  # accounts × measures: points lost against the maximum (0 if missing)
    groups: dict[str, np.ndarray]  # group → sub-score (NaN when the group is empty)
    score: np.ndarray  # full precision; NaN when coverage is below the floor
    coverage: np.ndarray
    grade: np.ndarray  # str (object) array
    top: np.ndarray  # accounts × TOP_REASONS: measure indices, most points lost first
    reference: PercentileReference
    # the critical condition (index into card.critical) that capped each account, −1 for none
    critical: np.ndarray | None = None
    uncapped: np.ndarray | None = None  # the score before a critical condition capped it

    def __len__(self) -> int:
        return len(self.account_ids)

    def index(self, account_id: str) -> int:
        return self.account_ids.index(account_id)

    def segment_name(self, row: int) -> str:
        return self.card.segment_names[int(self.segment[row])]


def _with_derived(card: Scorecard, table: SignalTable, as_of: datetime) -> SignalTable:
    columns, observed = dict(table.columns), dict(table.observed)
    # usage windows first: they read only the usage history, and other derived metrics may
    # read them (logins in 30 days per seat)
    for name, spec in card.derived.items():
        if spec.window is not None:
            columns[name], observed[name] = derive(spec, table, as_of)
    if card.usage_windows():
        table = SignalTable(
            table.account_ids, dict(columns), dict(observed), table.labels, table.history
        )
    for name, spec in card.derived.items():
        if spec.difference is None and spec.window is None:
            columns[name], observed[name] = derive(spec, table, as_of)
    return SignalTable(table.account_ids, columns, observed, table.labels, table.history)


def _raw_values(
    measure: Measure, table: SignalTable, as_of: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """(raw values, stale mask) of a measure whose metric is a column or a label."""
    if measure.categories is not None:
        label = table.label(measure.metric)
        raw = label.codes.astype(float)
        raw[label.codes < 0] = np.nan
    else:
        raw = table.column(measure.metric).astype(float, copy=True)
        raw[~np.isfinite(raw)] = np.nan
    stale = np.zeros(len(table), dtype=bool)
    if measure.stale_after is not None:
        age = as_of.timestamp() - table.observed_at(measure.metric)
        with np.errstate(invalid="ignore"):
            stale = (age > measure.stale_after.total_seconds()) & ~np.isnan(raw)
        raw[stale] = np.nan
    return raw, stale


def _measure_points(
    card: Scorecard,
    table: SignalTable,
    as_of: datetime,
    segment: np.ndarray,
    reference: PercentileReference | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, PercentileReference]:
    """raw, stale, points: accounts × measures, column-major (each measure contiguous)."""
    names = list(card.measures)
    n, m = len(table), len(names)
    raw = np.empty((n, m), order="F")
    points = np.empty((n, m), order="F")
    stale = np.zeros((n, m), dtype=bool, order="F")
    refs: dict[tuple[str, str], np.ndarray] = {}
    used = [(s, name) for s, name in enumerate(card.segment_names) if (segment == s).any()]
    # measures on a `difference` metric read other measures' points: score them last
    order = sorted(range(m), key=lambda j: _is_difference(card, card.measures[names[j]]))
    for j in order:
        measure = card.measures[names[j]]
        spec = card.derived.get(measure.metric)
        if spec is not None and spec.difference is not None:
            a, b = (names.index(x) for x in spec.difference)
            values = points[:, a] - points[:, b]
        else:
            values, stale[:, j] = _raw_values(measure, table, as_of)
        raw[:, j] = values
        if measure.categories is not None:
            points[:, j] = category_points(measure, table.label(measure.metric))
        elif measure.percentile:
            for s, seg_name in used:
                rows = slice(None) if len(used) == 1 else segment == s
                given = reference.get(names[j], seg_name) if reference is not None else None
                ref, pct = percentile_in(values[rows], given)
                refs[(names[j], seg_name)] = ref
                points[rows, j] = 100.0 - pct if measure.better == "lower" else pct
        else:
            points[:, j] = numeric_points(measure, values)
    return raw, stale, points, PercentileReference(refs)


def _is_difference(card: Scorecard, measure: Measure) -> bool:
    spec = card.derived.get(measure.metric)
    return spec is not None and spec.difference is not None


@dataclass
class _Combined:
    score: np.ndarray
    coverage: np.ndarray
    weight: np.ndarray  # accounts × measures, column-major
    lost: np.ndarray  # accounts × measures, column-major
    groups: list[np.ndarray]  # a sub-score per group (NaN when empty)


class _Weights:
    """Each measure's and group's weight per account: a scalar when one segment is in play,
    else a small per-segment table gathered by the account's segment index."""

    def __init__(self, card: Scorecard, segment: np.ndarray) -> None:
        names = card.segment_names
        used = np.unique(segment)
        self.segment = segment
        tables = [card.weights_for(name) for name in names]
        self.measure = np.array([[t[0][mname] for mname in card.measures] for t in tables])
        self.group = np.array([[t[1][g] for g in card.groups] for t in tables])
        terms = [_coverage_terms(card, name) for name in names]
        self.nominal_sum = np.array([t[0] for t in terms])
        self.nominal_share = np.array([t[1] for t in terms])
        self.index = int(used[0]) if len(used) == 1 else -1

    def _pick(self, table: np.ndarray, j: int) -> float | np.ndarray:
        column = table[:, j]
        if self.index >= 0:
            return float(column[self.index])
        if (column == column[0]).all():  # the same in every segment: no gather needed
            return float(column[0])
        return column[self.segment]

    def of_measure(self, j: int) -> float | np.ndarray:
        return self._pick(self.measure, j)

    def of_group(self, k: int) -> float | np.ndarray:
        return self._pick(self.group, k)

    def coverage_terms(self, k: int) -> tuple[float | np.ndarray, float | np.ndarray]:
        return self._pick(self.nominal_sum, k), self._pick(self.nominal_share, k)

    def any_measure(self, j: int) -> bool:
        return bool((self.measure[:, j] > 0).any())


def _coverage_terms(card: Scorecard, segment: str) -> tuple[list[float], list[float]]:
    """Per group: its nominal weight sum and its nominal share of the score.

    Coverage (the share of the nominal weight present) is then Σ share × present weight /
    nominal weight — one term per group instead of one per measure.
    """
    weights, group_weights = card.weights_for(segment)
    group_sum = [
        sum(weights[n] for n, m in card.measures.items() if m.group == g) for g in card.groups
    ]
    live = [
        group_weights[g] if total > 0 else 0.0
        for g, total in zip(card.groups, group_sum, strict=True)
    ]
    share = [w / sum(live) if sum(live) > 0 else 0.0 for w in live]
    return group_sum, share


def _combine(card: Scorecard, points: np.ndarray, w: _Weights) -> _Combined:
    """Weighted score, coverage, effective weights and points lost — a column at a time."""
    n, m = points.shape
    group_of = [list(card.groups).index(meas.group) for meas in card.measures.values()]
    n_groups = len(card.groups)
    group_sum = [np.zeros(n) for _ in range(n_groups)]
    group_points = [np.zeros(n) for _ in range(n_groups)]
    for j in range(m):
        if not w.any_measure(j):
            continue
        column = points[:, j]
        present = ~np.isnan(column)
        pw = present * w.of_measure(j)
        k = group_of[j]
        group_sum[k] += pw
        group_points[k] += np.where(present, column, 0.0) * pw
    modes = [g.aggregate for g in card.groups.values()]
    chosen = {
        k: _extreme(points, w, group_of, k, modes[k]) for k in range(n_groups) if modes[k] != "mean"
    }
    total = np.zeros(n)
    weighted = np.zeros(n)
    coverage = np.zeros(n)
    group_scores, live_weight = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(n_groups):
            if k in chosen:  # min / max: the chosen measure's points
                sub = np.where(group_sum[k] > 0, chosen[k][1], np.nan)
            else:
                sub = group_points[k] / group_sum[k]  # NaN where the group is empty
            live = (group_sum[k] > 0) * w.of_group(k)
            total += live
            weighted += np.where(group_sum[k] > 0, sub, 0.0) * live
            nominal, nominal_share = w.coverage_terms(k)
            present_share = np.where(group_sum[k] > 0, group_sum[k] / nominal, 0.0)
            coverage += present_share * nominal_share
            group_scores.append(sub)
            live_weight.append(live)
        overall = weighted / total
        share = [live_weight[k] / total for k in range(n_groups)]  # each group's share
    effective = np.zeros((n, m), order="F")
    lost = np.zeros((n, m), order="F")
    # second pass (recomputing beats holding accounts × measures temporaries in memory)
    for j in range(m):
        if not w.any_measure(j):
            continue
        column = points[:, j]
        present = ~np.isnan(column)
        k = group_of[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            if k in chosen:  # min / max: the chosen measure carries the group's whole share
                col = (chosen[k][0] == j) * share[k]
            else:
                # (share of the group) × (group's share of the score); ratio first, so tiny
                # weights cannot overflow
                col = present * w.of_measure(j) / group_sum[k] * share[k]
        col[~np.isfinite(col)] = 0.0
        effective[:, j] = col
        lost[:, j] = col * np.where(present, 100.0 - column, 0.0)
    return _Combined(overall, coverage, effective, lost, group_scores)


def _extreme(
    points: np.ndarray, w: _Weights, group_of: list[int], k: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """(measure index, points) of each account's lowest (``min``) or highest (``max``)
    present, weighted measure in group ``k``; ties go to the earlier measure, index −1 and
    NaN points when the group is empty."""
    n = points.shape[0]
    members = [j for j, g in enumerate(group_of) if g == k and w.any_measure(j)]
    pick = np.full(n, -1, dtype=np.int32)
    best = np.full(n, np.nan)
    for j in members:
        column = points[:, j]
        usable = ~np.isnan(column) & (np.asarray(w.of_measure(j)) > 0)
        with np.errstate(invalid="ignore"):
            better = column < best if mode == "min" else column > best
        take = usable & ((pick < 0) | better)
        pick[take] = j
        best[take] = column[take]
    return pick, best


def percentile_in(
    values: np.ndarray, reference: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted reference, mid-rank percentile of each value); the batch is its own reference
    unless one is given (ranking one account against a batch)."""
    if reference is not None:
        return reference, percentile_rank(values, reference)
    present = ~np.isnan(values)
    picked = values[present]
    order = np.argsort(picked)  # ties get the same mid-rank whatever their order
    ref = picked[order]
    # ranks of sorted values against themselves: monotone queries, cache-friendly
    pct_sorted = percentile_rank(ref, ref)
    pct = np.full(len(values), np.nan)
    ranked = np.empty(len(picked))
    ranked[order] = pct_sorted
    pct[present] = ranked
    return ref, pct


def top_reasons(lost: np.ndarray, k: int = TOP_REASONS) -> np.ndarray:
    """Column indices of each account's ``k`` most costly measures, most costly first.

    Ties go to the earlier measure (argmax takes the first), row by row, so an account
    ranks its reasons the same alone or in a batch.
    """
    n, m = lost.shape
    k = min(k, m)
    out = np.empty((n, k), dtype=np.int16)
    if k == 0 or n == 0:
        return out
    for start in range(0, n, TOP_CHUNK):  # chunks bound the working copy's memory
        work = np.array(lost[start : start + TOP_CHUNK], order="C")  # rows contiguous
        rows = np.arange(len(work))
        for r in range(k):
            best = work.argmax(axis=1)
            out[start : start + len(work), r] = best
            work[rows, best] = -np.inf
    return out


def score(
    card: Scorecard,
    table: SignalTable,
    as_of: datetime,
    *,
    previous_grades: np.ndarray | None = None,
    reference: PercentileReference | None = None,
) -> ScoreBatch:
    """Score every account of ``table`` as of ``as_of``.

    ``previous_grades`` (aligned with the table, None for none) enables hysteresis;
    ``reference`` ranks percentile measures against another batch's accounts.
    """
    table = _with_derived(card, table, as_of)
    segment = assign_segments(card, table)
    raw, stale, points, refs = _measure_points(card, table, as_of, segment, reference)
    combined = _combine(card, points, _Weights(card, segment))
    lost = combined.lost
    overall = combined.score
    floor = card.coverage_floor - COVERAGE_TOLERANCE
    insufficient = (combined.coverage < floor) | ~np.isfinite(overall)
    # a weighted mean of 0–100 points; clip the last-bit float error (100.00000000000001)
    overall = np.where(insufficient, np.nan, np.clip(overall, 0.0, 100.0))
    uncapped = overall
    critical = evaluate_critical(card.critical, table)
    if card.critical:
        limits = np.array(
            [cap_limit(c.cap, card.grades.red, card.grades.yellow) for c in card.critical]
            + [np.inf]
        )
        overall = np.minimum(overall, limits[critical])  # index −1 picks the +inf
    grade = assign_grades(card.grades, overall, previous_grades)
    for k, cond in enumerate(card.critical):
        rows = critical == k
        better = [g for g in ("red", "yellow", "green") if worse(g, cond.cap) != g]
        grade[rows & np.isin(grade, better)] = cond.cap  # hysteresis may have kept one
        if cond.grade is not None:  # a forced grade needs no score
            grade[rows & (grade == "insufficient_data")] = cond.cap
    return ScoreBatch(
        card=card,
        table=table,
        account_ids=list(table.account_ids),
        measure_names=list(card.measures),
        segment=segment,
        raw=raw,
        stale=stale,
        points=points,
        weight=combined.weight,
        lost=lost,
        groups=dict(zip(card.groups, combined.groups, strict=True)),
        score=overall,
        coverage=combined.coverage,
        grade=grade,
        top=top_reasons(lost),
        reference=refs,
        critical=critical,
        uncapped=uncapped,
    )
