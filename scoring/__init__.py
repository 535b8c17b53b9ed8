"""The shared scorer: a YAML scorecard applied to every account at once."""

from .card_checks import reference_problems
from .explain import Explanation, Reason, explain, format_value, missing_measures, reasons_for
from .grades import INSUFFICIENT, assign_grades
from .scorecard import (
    Derived,
    Grades,
    Group,
    Measure,
    Scorecard,
    Segment,
    describe_measure,
)
from .scorer import GRADES, PercentileReference, ScoreBatch, score
from .table import LabelColumn, SignalTable

__all__ = [
    "GRADES",
    "INSUFFICIENT",
    "Derived",
    "Explanation",
    "Grades",
    "Group",
    "LabelColumn",
    "Measure",
    "PercentileReference",
    "Reason",
    "ScoreBatch",
    "Scorecard",
    "Segment",
    "SignalTable",
    "assign_grades",
    "describe_measure",
    "explain",
    "format_value",
    "missing_measures",
    "reasons_for",
    "reference_problems",
    "score",
]
