"""Monotone optimal binning of a candidate: the bands a scorecard will list.

optbinning (the standard of credit scorecards) finds the cut points that separate churners
best under a monotone trend — churn falls (or rises) from band to band, so a band's points
can only go one way and the measure has a direction a CS lead can state. The cut points are
then rounded to numbers a person writes (``below: 14``, not ``below: 13.62``; whole numbers
for counts), bands left empty or out of order by the rounding are merged, and each band's
churners and the rest are counted again on those final edges.

A band's *weight of evidence* is ln(share of the retained in it / share of the churned in
it): positive where accounts churn less than on average. Its spread over the bands is the
*information value* (IV), the usual first screen of a candidate (< 0.02: no use). Missing
values get no band: the scorecard shares a missing measure's weight among the present ones,
so they count for nothing here either (the IV is that of the present rows, times their
share).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from healthscore.core.errors import ConfigError

Better = Literal["higher", "lower"]
MIN_SHARE = 0.05  # of the present rows, per band
MAX_BANDS = 6
SMOOTHING = 0.5  # added to each band's counts (no infinite WoE on a band without churn)
MAX_PVALUE = 0.05  # neighbouring bands must differ at this significance (no band from noise)


@dataclass(frozen=True)
class Bins:
    """A candidate's bands: edges (numbers) or the categories of each band (text)."""

    name: str
    edges: np.ndarray  # ascending "below" edges, one fewer than the bands (numbers)
    rows: np.ndarray  # training rows per band
    events: np.ndarray  # churned rows per band
    better: Better
    missing_rows: int = 0
    categories: tuple[tuple[str, ...], ...] | None = None  # per band (text candidates)
    whole: bool = False  # the values are whole numbers (counts, days)

    @property
    def bands(self) -> int:
        return len(self.rows)

    @property
    def present_share(self) -> float:
        total = self.rows.sum() + self.missing_rows
        return float(self.rows.sum() / total) if total else 0.0

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Each value's band (int16; −1 missing, or a category no band lists)."""
        if self.categories is not None:
            index = {c: b for b, group in enumerate(self.categories) for c in group}
            return np.fromiter(
                (index.get(v, -1) if v is not None else -1 for v in values),
                dtype=np.int16,
                count=len(values),
            )
        values = np.asarray(values, dtype=float)
        out = np.searchsorted(self.edges, values, side="right").astype(np.int16)
        out[np.isnan(values)] = -1
        return out

    def woe(self, rows: np.ndarray | None = None, events: np.ndarray | None = None) -> np.ndarray:
        """Weight of evidence per band (of these counts, or of the training ones)."""
        return woe(self.rows if rows is None else rows, self.events if events is None else events)

    @property
    def iv(self) -> float:
        return information_value(self.rows, self.events) * self.present_share

    def describe(self, b: int, unit: str = "") -> str:
        """A band's range as a person reads it: ``< 5``, ``5–12``, ``≥ 12`` (or its values)."""
        if self.categories is not None:
            return ", ".join(self.categories[b])
        lo = None if b == 0 else self.edges[b - 1]
        hi = None if b == self.bands - 1 else self.edges[b]
        if lo is None and hi is None:
            return "any"
        if self.whole and hi is not None:  # whole numbers: the values the band holds
            top = _num(hi - 1, unit)
            if lo is None:
                return f"≤ {top}"
            return top if hi - 1 == lo else f"{_num(lo, unit)}–{top}"
        if lo is None:
            return f"< {_num(hi, unit)}"
        if hi is None:
            return f"≥ {_num(lo, unit)}"
        return f"{_num(lo, unit)} – {_num(hi, unit)}"


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "%":
        return f"{100 * value:g}%"
    return f"{value:g}"


def woe(rows: np.ndarray, events: np.ndarray) -> np.ndarray:
    rows, events = np.asarray(rows, dtype=float), np.asarray(events, dtype=float)
    good, bad = rows - events, events
    k = len(rows)
    share_good = (good + SMOOTHING) / (good.sum() + SMOOTHING * k)
    share_bad = (bad + SMOOTHING) / (bad.sum() + SMOOTHING * k)
    return np.log(share_good / share_bad)


def information_value(rows: np.ndarray, events: np.ndarray) -> float:
    rows, events = np.asarray(rows, dtype=float), np.asarray(events, dtype=float)
    good, bad = rows - events, events
    if good.sum() <= 0 or bad.sum() <= 0:
        return 0.0
    k = len(rows)
    share_good = (good + SMOOTHING) / (good.sum() + SMOOTHING * k)
    share_bad = (bad + SMOOTHING) / (bad.sum() + SMOOTHING * k)
    return float(((share_good - share_bad) * np.log(share_good / share_bad)).sum())


def nice(value: float, digits: int = 2) -> float:
    """``value`` to ``digits`` significant digits: 13.62 → 14, 0.2345 → 0.23, 1234 → 1200."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return round(value * scale) / scale


def nice_edges(splits: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Cut points a person writes; for whole-number values, the next whole number (a value
    below 4.5 is one below 5)."""
    whole = bool(np.all(values == np.round(values)))
    out: list[float] = []
    for s in splits:
        edge = float(math.ceil(s)) if whole else nice(float(s))
        if not out or edge > out[-1]:
            out.append(edge)
    return np.array(out)


def _counts(edges: np.ndarray, values: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    band = np.searchsorted(edges, values, side="right")
    k = len(edges) + 1
    return np.bincount(band, minlength=k), np.bincount(band, weights=y, minlength=k)


def _monotone(
    edges: np.ndarray, rows: np.ndarray, events: np.ndarray, better: Better
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge empty bands and neighbours out of order (WoE must rise with ``better: higher``,
    fall with ``lower``) until every band holds rows and the order holds."""
    edges, rows, events = list(edges), list(rows), list(events)
    sign = 1.0 if better == "higher" else -1.0
    while len(rows) > 1:
        w = woe(np.array(rows), np.array(events)) * sign
        bad = [b for b in range(len(rows) - 1) if rows[b] == 0 or rows[b + 1] == 0]
        bad += [b for b in range(len(rows) - 1) if w[b + 1] < w[b] - 1e-12]
        if not bad:
            break
        b = min(bad)
        rows[b : b + 2] = [rows[b] + rows[b + 1]]
        events[b : b + 2] = [events[b] + events[b + 1]]
        del edges[b]
    return np.array(edges, dtype=float), np.array(rows), np.array(events)


def fit_bins(
    name: str,
    values: np.ndarray,
    y: np.ndarray,
    *,
    category: bool = False,
    direction: Better | None = None,
    min_share: float = MIN_SHARE,
    max_bands: int = MAX_BANDS,
) -> Bins | None:
    """The monotone optimal bands of one candidate on the training rows (None when it
    splits nothing: a single band predicts nothing). ``direction`` fixes the trend (a locked
    ``better``); otherwise optbinning picks the better of rising and falling churn."""
    try:
        from optbinning import OptimalBinning  # heavy import, only when fitting
    except ImportError:
        raise ConfigError(
            "learning bands needs optbinning, the fit extra: pip install 'healthscore[fit]' "
            "(or re-weight the current measures with --weights-only)"
        ) from None

    y = np.asarray(y, dtype=int)
    if category:
        present = np.array([v is not None for v in values], dtype=bool)
    else:
        values = np.asarray(values, dtype=float)
        present = ~np.isnan(values)
    x, yy = values[present], y[present]
    if len(x) < 20 or yy.sum() < 2 or yy.sum() == len(yy):
        return None
    trend = {None: "auto_asc_desc", "higher": "descending", "lower": "ascending"}[direction]
    binning = OptimalBinning(
        name=name,
        dtype="categorical" if category else "numerical",
        solver="cp",
        monotonic_trend=None if category else trend,
        min_bin_size=min_share,
        max_n_bins=max_bands,
        max_n_prebins=20,
        max_pvalue=MAX_PVALUE,
        cat_cutoff=min_share / 2 if category else None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binning.fit(x.astype(str) if category else x, yy)
    if category:
        return _category_bins(name, binning.splits, x, yy, len(values) - len(x))
    if binning.status not in ("OPTIMAL", "FEASIBLE") or not len(binning.splits):
        return None
    edges = nice_edges(binning.splits, x)
    whole = bool(np.all(x == np.round(x)))
    rows, events = _counts(edges, x, yy)
    w = woe(rows, events)
    better = direction or ("higher" if w[-1] >= w[0] else "lower")
    edges, rows, events = _monotone(edges, rows, events, better)
    if len(rows) < 2:
        return None
    return Bins(name, edges, rows, events, better, int(len(values) - len(x)), whole=whole)


def _category_bins(
    name: str, splits: Sequence[Sequence[str]], x: np.ndarray, y: np.ndarray, missing: int
) -> Bins | None:
    groups = tuple(tuple(str(c) for c in group) for group in splits if len(group))
    if len(groups) < 2:
        return None
    index = {c: b for b, group in enumerate(groups) for c in group}
    band = np.fromiter((index.get(str(v), -1) for v in x), dtype=np.int64, count=len(x))
    known = band >= 0
    rows = np.bincount(band[known], minlength=len(groups))
    events = np.bincount(band[known], weights=y[known], minlength=len(groups))
    order = np.argsort(woe(rows, events), kind="stable")  # listed from the riskiest up
    return Bins(
        name,
        np.empty(0),
        rows[order],
        events[order],
        "higher",
        missing + int((~known).sum()),
        tuple(groups[b] for b in order),
    )
