"""A deliberately plain, per-account implementation of the scorer, in pure Python.

It exists as an independent oracle: the tests check the vectorized scorer against it, and
``benchmarks/bench_scoring.py`` times it as the baseline. It shares only the scorecard model
with the vectorized code, so a mistake in one shows up as a disagreement.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .critical import Critical
from .scorecard import COVERAGE_TOLERANCE, WINDOWED, Condition, Measure, Scorecard, Window
from .scorer import PercentileReference
from .table import SignalTable, history_key
from .windows import window_key


@dataclass
class AccountRow:
    """One account's inputs as plain Python values."""

    numbers: dict[str, float]  # NaN-free: a missing metric is absent
    observed: dict[str, float]
    labels: dict[str, str]
    history: dict[str, float]


def row_of(table: SignalTable, i: int) -> AccountRow:
    numbers = {k: float(v[i]) for k, v in table.columns.items() if not math.isnan(v[i])}
    observed = {k: float(v[i]) for k, v in table.observed.items() if not math.isnan(v[i])}
    labels = {}
    for k, col in table.labels.items():
        text = col.text(i)
        if text is not None:
            labels[k] = text
    history = {k: float(v[i]) for k, v in table.history.items() if not math.isnan(v[i])}
    return AccountRow(numbers, observed, labels, history)


def _number(row: AccountRow, name: str) -> float | None:
    if name in row.numbers:
        value = row.numbers[name]
        return value if math.isfinite(value) else None
    if name in row.labels:
        try:
            return float(row.labels[name])
        except ValueError:
            return None
    return None


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    out = a / b
    return out if math.isfinite(out) else None


def _derive(card: Scorecard, row: AccountRow, now: float) -> None:
    windows_first = sorted(card.derived.items(), key=lambda item: item[1].window is None)
    for name, d in windows_first:
        value: float | None = None
        observed = None
        if d.window:
            value = row.history.get(window_key(d.window))
            observed = now
        elif d.ratio:
            value = _div(_number(row, d.ratio[0]), _number(row, d.ratio[1]))
            obs = [row.observed.get(m) for m in d.ratio]
            observed = min((o for o in obs if o is not None), default=None)
        elif d.change:
            cur = _number(row, d.change.of)
            if d.change.vs:
                prior = _number(row, d.change.vs)
                obs = [row.observed.get(d.change.of), row.observed.get(d.change.vs)]
                observed = min((o for o in obs if o is not None), default=None)
            else:
                assert d.change.over is not None
                prior = row.history.get(history_key("as_of", d.change.of, d.change.over))
                observed = row.observed.get(d.change.of)
            if cur is not None and prior is not None and prior != 0:
                value = (cur - prior) / abs(prior) * 100.0
        elif d.days_since:
            when = _number(row, d.days_since)
            value = None if when is None else float(math.floor((now - when) / 86400.0))
            observed = now
        elif d.count:
            value = row.history.get(history_key("count", d.count.metric, d.count.within))
            observed = now
        elif d.days_until:
            when = _number(row, d.days_until)
            if when is None and d.days_until in row.labels:
                when = _iso_day_seconds(row.labels[d.days_until])
            value = None if when is None else float(_day(when) - _day(now))
            observed = now
        elif d.sum:
            parts = {m: _number(row, m) for m in d.sum}
            present = [m for m, v in parts.items() if v is not None]
            value = sum(parts[m] or 0.0 for m in present) if present else None
            seen = [row.observed[m] for m in present if m in row.observed]
            observed = min(seen, default=None)
        else:
            continue  # a difference is computed from measures' points
        if value is not None and math.isfinite(value):
            row.numbers[name] = value
            if observed is not None:
                row.observed[name] = observed


def _day(seconds: float) -> int:
    return math.floor(seconds / 86400.0)


def _iso_day_seconds(text: str) -> float | None:
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    return (day - date(1970, 1, 1)).days * 86400.0


def _holds(cond: Condition, row: AccountRow) -> bool:
    number = _number(row, cond.field)
    text = row.labels.get(cond.field)
    if cond.is_ is not None or cond.in_ is not None:
        wanted = [cond.is_] if cond.is_ is not None else list(cond.in_ or [])
        hit = False
        for w in wanted:
            if isinstance(w, bool):
                hit |= number == (1.0 if w else 0.0)
            elif isinstance(w, (int, float)):
                hit |= number == float(w)
            else:
                hit |= text is not None and text.casefold() == w.casefold()
        if not hit:
            return False
    if cond.below is not None and not (number is not None and number < cond.below):
        return False
    return not (cond.at_least is not None and not (number is not None and number >= cond.at_least))


def plain_reference(reference: PercentileReference) -> dict[tuple[str, str], list[float]]:
    """A batch's percentile reference as plain sorted lists (converted once, not per account)."""
    return {key: values.tolist() for key, values in reference.values.items()}


def segment_of(card: Scorecard, row: AccountRow) -> str:
    for seg in card.segments:
        if all(_holds(c, row) for c in seg.when):
            return seg.name
    return card.segment_names[-1]


def _points(measure: Measure, value: float, ref: Sequence[float] | None) -> float:
    if measure.linear is not None:
        lo, hi, x = measure.linear.start, measure.linear.end, value
        if measure.linear.log:
            lo, hi, x = math.log(lo), math.log(hi), math.log(value if value > 0 else lo)
        share = min(1.0, max(0.0, (x - lo) / (hi - lo)))
        return (1.0 - share if measure.better == "lower" else share) * 100.0
    if measure.bands is not None:
        for band in measure.bands:
            if band.below is None or value < band.below:
                return band.points
    if measure.boolean is not None:
        return measure.boolean.if_true if value != 0 else measure.boolean.if_false
    assert ref is not None
    if not ref:
        return math.nan
    below = bisect.bisect_left(ref, value)
    upto = bisect.bisect_right(ref, value)
    pct = (below + (upto - below) / 2.0) / len(ref) * 100.0
    return 100.0 - pct if measure.better == "lower" else pct


def score_account(
    card: Scorecard,
    row: AccountRow,
    as_of: datetime,
    *,
    previous_grade: str | None = None,
    reference: Mapping[tuple[str, str], Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Score, grade, coverage, group sub-scores and points of one account.

    ``reference`` holds the sorted values percentile measures rank against, per
    (measure, segment) — see ``plain_reference``.
    """
    now = as_of.timestamp()
    _derive(card, row, now)
    segment = segment_of(card, row)
    points: dict[str, float | None] = {}
    later = [
        n
        for n, m in card.measures.items()
        if (d := card.derived.get(m.metric)) is not None and d.difference is not None
    ]
    for name in [n for n in card.measures if n not in later] + later:
        measure = card.measures[name]
        d = card.derived.get(measure.metric)
        if d is not None and d.difference is not None:
            a, b = points.get(d.difference[0]), points.get(d.difference[1])
            value = None if a is None or b is None else a - b
        elif measure.categories is not None:
            text = row.labels.get(measure.metric)
            mapping = {k.casefold(): v for k, v in measure.categories.items()}
            points[name] = None if text is None else mapping.get(text.casefold())
            continue
        else:
            value = _number(row, measure.metric)
            if value is not None and measure.stale_after is not None:
                seen = row.observed.get(measure.metric)
                if seen is not None and now - seen > measure.stale_after.total_seconds():
                    value = None
        if value is None:
            points[name] = None
            continue
        ref = None
        if measure.percentile:
            ref = (reference or {}).get((name, segment), [])
        p = _points(measure, value, ref)
        points[name] = None if math.isnan(p) else p

    weights, group_weights = card.weights_for(segment)
    groups: dict[str, float | None] = {}
    nominal_groups: dict[str, float] = {}
    for gname in card.groups:
        members = [n for n, m in card.measures.items() if m.group == gname]
        nominal_groups[gname] = sum(weights[n] for n in members)
        present = [
            (points[n], weights[n]) for n in members if points[n] is not None and weights[n] > 0
        ]
        wsum = sum(w for _, w in present)
        mode = card.groups[gname].aggregate
        if wsum <= 0:
            groups[gname] = None
        elif mode == "min":
            groups[gname] = min(p for p, _ in present)
        elif mode == "max":
            groups[gname] = max(p for p, _ in present)
        else:
            groups[gname] = sum(p * w for p, w in present) / wsum
    live = {g: group_weights[g] for g, v in groups.items() if v is not None}
    total = sum(live.values())
    overall = sum(groups[g] * w for g, w in live.items()) / total if total > 0 else None  # type: ignore[operator]

    nominal_total = sum(group_weights[g] for g, s in nominal_groups.items() if s > 0)
    coverage = 0.0
    for name, measure in card.measures.items():
        g = measure.group
        if points[name] is not None and nominal_groups[g] > 0 and nominal_total > 0:
            coverage += weights[name] / nominal_groups[g] * group_weights[g] / nominal_total

    critical = _critical_of(card, row)
    if overall is None or coverage < card.coverage_floor - COVERAGE_TOLERANCE:
        overall, grade = None, "insufficient_data"
        if critical is not None and critical.grade is not None:
            grade = critical.grade  # a forced grade needs no score
    else:
        overall = min(100.0, max(0.0, overall))
        if critical is not None:
            limit = {"red": card.grades.red, "yellow": card.grades.yellow, "green": 100.0}
            overall = min(overall, limit[critical.cap])
        grade = _grade(card, overall, previous_grade)
        if critical is not None and _RANK[critical.cap] < _RANK[grade]:
            grade = critical.cap
    return {
        "score": overall,
        "grade": grade,
        "coverage": coverage,
        "segment": segment,
        "groups": groups,
        "points": points,
        "critical": None if critical is None else critical.name,
    }


_RANK = {"red": 0, "yellow": 1, "green": 2}


def _critical_of(card: Scorecard, row: AccountRow) -> Critical | None:
    """The strictest critical condition that holds (the first listed among equals)."""
    found: Critical | None = None
    for cond in card.critical:
        w = cond.when
        number = _number(row, w.metric)
        if w.is_ is not None and isinstance(w.is_, str):
            text = row.labels.get(w.metric)
            if text is None or text.casefold() != w.is_.casefold():
                continue
        elif number is None:
            continue
        if w.is_ is not None and not isinstance(w.is_, str) and number != float(w.is_):
            continue
        if any(
            bound is not None and not (number is not None and test(number, bound))
            for bound, test in (
                (w.above, lambda a, b: a > b),
                (w.at_least, lambda a, b: a >= b),
                (w.below, lambda a, b: a < b),
                (w.at_most, lambda a, b: a <= b),
            )
        ):
            continue
        if found is None or _RANK[cond.cap] < _RANK[found.cap]:
            found = cond
    return found


def _grade(card: Scorecard, value: float, previous: str | None) -> str:
    g = card.grades
    rounded = round(value)
    grade = "red" if rounded <= g.red else "yellow" if rounded <= g.yellow else "green"
    limits = {"red": (-math.inf, g.red), "yellow": (g.red, g.yellow), "green": (g.yellow, math.inf)}
    if previous in limits and g.hysteresis > 0:
        low, high = limits[previous]
        if low - g.hysteresis < rounded <= high + g.hysteresis:
            return previous
    return grade


def plain_window(window: Window, days: Mapping[date, float | None], as_of: date) -> float | None:
    """One account's window aggregate from its reported days (day → value), day by day.

    The oracle for ``scoring.windows.UsageHistory``: the rules are in that module's docstring.
    """
    reported = {d: v for d, v in days.items() if v is not None and d <= as_of}
    if not reported:
        return None

    def over(end: date) -> float | None:
        if not any(d <= end for d in reported):
            return None  # nothing reported by the end of this window
        span = [end - timedelta(days=k) for k in range(window.days)]
        values = [reported.get(d, 0.0) for d in span]
        if window.agg == "sum":
            return sum(values)
        if window.agg == "mean":
            return sum(values) / window.days
        if window.agg == "max":
            return max(values)
        return float(sum(1 for v in values if v > 0))

    if window.agg in WINDOWED:
        now = over(as_of)
        if not window.vs_previous:
            return now
        before = over(as_of - timedelta(days=window.days))
        if now is None or before is None or before == 0:
            return None
        return (now - before) / abs(before) * 100.0
    if window.agg == "last":
        start = as_of - timedelta(days=window.days - 1) if window.days else date.min
        recent = [d for d in reported if d >= start]
        return reported[max(recent)] if recent else None
    active = [d for d, v in reported.items() if v > 0]
    if active:
        return float((as_of - max(active)).days)
    return float((as_of - min(reported)).days + 1)
