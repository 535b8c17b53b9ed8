"""Each measure's raw values → 0–100 points, for a whole column at once (NaN stays missing)."""

from __future__ import annotations

import numpy as np

from .scorecard import Measure
from .table import LabelColumn


def linear_points(measure: Measure, raw: np.ndarray) -> np.ndarray:
    spec = measure.linear
    assert spec is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        if spec.log:
            low, high = np.log(spec.start), np.log(spec.end)
            # values ≤ 0 sit below any positive 'from': they clamp to the low end
            x = np.log(np.where(raw > 0, raw, spec.start))
        else:
            low, high, x = spec.start, spec.end, raw
        share = np.clip((x - low) / (high - low), 0.0, 1.0)
    if measure.better == "lower":
        share = 1.0 - share
    return np.where(np.isnan(raw), np.nan, share * 100.0)


def band_points(measure: Measure, raw: np.ndarray) -> np.ndarray:
    bands = measure.bands
    assert bands is not None
    edges = np.array([b.below for b in bands[:-1]], dtype=float)
    points = np.array([b.points for b in bands], dtype=float)
    slot = np.searchsorted(edges, raw, side="right")  # value == edge belongs to the upper band
    out = points[np.minimum(slot, len(points) - 1)]
    return np.where(np.isnan(raw), np.nan, out)


def boolean_points(measure: Measure, raw: np.ndarray) -> np.ndarray:
    spec = measure.boolean
    assert spec is not None
    out = np.where(raw != 0, spec.if_true, spec.if_false)
    return np.where(np.isnan(raw), np.nan, out)


def category_points(measure: Measure, labels: LabelColumn) -> np.ndarray:
    """Text values → points; a value not listed counts as missing (and shows in `explain`)."""
    assert measure.categories is not None
    return labels.lookup(measure.categories)


def percentile_rank(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mid-rank percentile (0–100) of each value within a sorted, NaN-free reference."""
    n = len(reference)
    if n == 0:
        return np.full(len(values), np.nan)
    below = np.searchsorted(reference, values, side="left")
    upto = np.searchsorted(reference, values, side="right")
    with np.errstate(invalid="ignore"):
        pct = (below + (upto - below) / 2.0) / n * 100.0
    return np.where(np.isnan(values), np.nan, pct)


def numeric_points(measure: Measure, raw: np.ndarray) -> np.ndarray:
    """Points for every normalization but percentile and categories."""
    if measure.linear is not None:
        return linear_points(measure, raw)
    if measure.bands is not None:
        return band_points(measure, raw)
    if measure.boolean is not None:
        return boolean_points(measure, raw)
    raise ValueError(f"{measure.label}: {measure.kind} is not a numeric normalization")
