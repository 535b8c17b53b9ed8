"""The shared scorer: a YAML scorecard applied to every account at once."""

from .explain import Reason, format_value, missing_measures, reasons_for, top_reason_indices
from .scorecard import Grades, Group, Measure, Scale, Scorecard, reference_problems
from .scorer import GRADES, ScoreBatch, score
from .table import SignalTable

__all__ = [
    "GRADES",
    "Grades",
    "Group",
    "Measure",
    "Reason",
    "Scale",
    "ScoreBatch",
    "Scorecard",
    "SignalTable",
    "format_value",
    "missing_measures",
    "reasons_for",
    "reference_problems",
    "score",
    "top_reason_indices",
]
