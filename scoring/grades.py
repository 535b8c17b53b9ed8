"""Grades from scores: red/yellow/green bands on the rounded score, with hysteresis.

Without history an account takes the band its rounded score falls in (red ≤ 50 < yellow ≤ 75
< green by default). With a previous grade it keeps that grade until the score leaves the
band by more than ``hysteresis`` points: at margin 2, a yellow account turns red at 48, not
at 50, and a red one turns yellow again at 53, not at 51.
"""

from __future__ import annotations

import numpy as np

from .scorecard import Grades

BANDS = ("red", "yellow", "green")
INSUFFICIENT = "insufficient_data"


def band_limits(grades: Grades) -> dict[str, tuple[float, float]]:
    """(exclusive lower, inclusive upper) limit of each band on the rounded score."""
    return {
        "red": (-np.inf, grades.red),
        "yellow": (grades.red, grades.yellow),
        "green": (grades.yellow, np.inf),
    }


def assign_grades(
    grades: Grades, score: np.ndarray, previous: np.ndarray | None = None
) -> np.ndarray:
    """A grade per account (object array); NaN scores get ``insufficient_data``."""
    names = np.array([*BANDS, INSUFFICIENT], dtype=object)
    rounded = np.round(score)
    code = (rounded > grades.red).astype(np.int8) + (rounded > grades.yellow)
    if previous is not None and grades.hysteresis > 0:
        margin = grades.hysteresis
        prev = np.asarray(previous, dtype=object)
        for c, (band, (low, high)) in enumerate(band_limits(grades).items()):
            with np.errstate(invalid="ignore"):
                keep = (prev == band) & (rounded > low - margin) & (rounded <= high + margin)
            code[keep] = c
    code[np.isnan(score)] = len(BANDS)
    return names[code]
