"""Turn a ScoreBatch row into words: reasons as points lost, a full per-measure breakdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .scorecard import Measure, describe_measure
from .scorer import ScoreBatch
from .segments import segment_matches

MIN_POINTS_LOST = 1.0  # a reason costing less than a point is noise on the Account page


@dataclass(frozen=True)
class Reason:
    measure: str
    label: str
    value: str
    points_lost: float
    kind: str = "measure"  # or "critical" (a critical condition), "override" (a CSM's)

    def __str__(self) -> str:
        if self.kind == "critical":
            lost = f" (−{round(self.points_lost)})" if self.points_lost >= MIN_POINTS_LOST else ""
            return f"Critical: {self.label} — {self.value}{lost}"
        if self.kind != "measure":
            return f"{self.label}: {self.value}"
        return f"{self.label} {self.value} (−{round(self.points_lost)})"

    def as_dict(self) -> dict[str, object]:
        return {
            "measure": self.measure,
            "label": self.label,
            "value": self.value,
            "points_lost": round(self.points_lost, 2),
            "kind": self.kind,
        }


def format_value(measure: Measure, raw: float, text: str | None = None) -> str:
    if math.isnan(raw):
        return "missing"
    if text is not None:
        return text
    if measure.unit == "%":
        return f"{raw * 100:.0f}%"
    if measure.unit == "pct":
        return f"{raw:.0f}%"
    if measure.unit == "days":
        return f"{raw:.0f} days"
    if measure.unit == "x":
        return f"{raw:.2f}×"
    return f"{raw:.3g}"


def _value_text(batch: ScoreBatch, row: int, j: int) -> str:
    measure = batch.card.measures[batch.measure_names[j]]
    raw = float(batch.raw[row, j])
    if batch.stale[row, j]:
        return "stale"
    text = batch.table.label(measure.metric).text(row) if measure.categories is not None else None
    return format_value(measure, raw, text)


def critical_reason(batch: ScoreBatch, row: int) -> Reason | None:
    """The critical condition that capped this account, as a reason (None if none did)."""
    if batch.critical is None or batch.critical[row] < 0:
        return None
    cond = batch.card.critical[int(batch.critical[row])]
    value = batch.table.column(cond.when.metric)[row]
    text = batch.table.label(cond.when.metric).text(row) if np.isnan(value) else f"{value:g}"
    effect = f"forced {cond.cap}" if cond.grade is not None else f"at most {cond.cap}"
    lost = 0.0
    if batch.uncapped is not None and not np.isnan(batch.uncapped[row]):
        lost = float(batch.uncapped[row] - batch.score[row])
    return Reason(
        f"critical:{cond.name}",
        cond.title,
        f"{cond.when.metric} {text} ({cond.when.describe()}), {effect}",
        lost,
        kind="critical",
    )


def reasons_for(batch: ScoreBatch, row: int) -> list[Reason]:
    """The account's top reasons (most points lost first), each costing at least a point;
    a critical condition that capped the account comes first."""
    first = critical_reason(batch, row)
    out = [first] if first is not None else []
    for j in batch.top[row]:
        lost = float(batch.lost[row, j])
        if lost < MIN_POINTS_LOST:
            break
        name = batch.measure_names[j]
        out.append(Reason(name, batch.card.measures[name].label, _value_text(batch, row, j), lost))
    return out


def missing_measures(batch: ScoreBatch, row: int) -> list[str]:
    """Labels of the measures this account's segment weighs but the account lacks."""
    weights, _ = batch.card.weights_for(batch.segment_name(row))
    return [
        batch.card.measures[n].label
        for j, n in enumerate(batch.measure_names)
        if math.isnan(batch.points[row, j]) and weights[n] > 0
    ]


@dataclass
class MeasureLine:
    name: str
    label: str
    group: str
    value: str
    points: float | None
    weight_share: float  # effective share of the score, 0–1
    points_lost: float
    how: str


@dataclass
class Explanation:
    account_id: str
    score: float | None
    grade: str
    coverage: float
    segment: str
    segment_why: str
    groups: dict[str, float | None]
    measures: list[MeasureLine] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    critical: str | None = None  # the critical condition that capped the grade
    computed_grade: str | None = None  # the scorecard's grade when an override replaced it
    override: dict[str, object] | None = None  # the CSM override in force (who, why, until)
    # with a churn model on the card: P(churn within the horizon) and, given the account's
    # ARR, that probability × ARR
    churn_probability: float | None = None
    churn_horizon_days: int | None = None
    arr_at_risk: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "score": self.score,
            "grade": self.grade,
            "coverage": round(self.coverage, 4),
            "segment": self.segment,
            "segment_why": self.segment_why,
            "groups": self.groups,
            "measures": [vars(m) for m in self.measures],
            "reasons": [r.as_dict() for r in self.reasons],
            "critical": self.critical,
            "computed_grade": self.computed_grade,
            "override": self.override,
            "churn_probability": self.churn_probability,
            "churn_horizon_days": self.churn_horizon_days,
            "arr_at_risk": self.arr_at_risk,
        }


def segment_reason(batch: ScoreBatch, row: int) -> str:
    """Why the account is in its segment, in words."""
    card = batch.card
    chosen = int(batch.segment[row])
    one = batch.table.take([row])
    if chosen < len(card.segments):
        seg = card.segments[chosen]
        skipped = [s.name for s in card.segments[:chosen]]
        why = "matched: " + "; ".join(c.describe() for c in seg.when)
        return why + (f" (did not match: {', '.join(skipped)})" if skipped else "")
    if not card.segments:
        return "the scorecard has no segments"
    unmatched = [s.name for s in card.segments if not segment_matches(s, one)[0]]
    return "no segment matched (" + ", ".join(unmatched) + ")"


def explain(batch: ScoreBatch, row: int) -> Explanation:
    card = batch.card
    value = float(batch.score[row])
    weights, _ = card.weights_for(batch.segment_name(row))
    model = card.churn_model
    churn = None if model is None else float(model.probability(batch.score[row : row + 1])[0])
    lines = []
    for j, name in enumerate(batch.measure_names):
        measure = card.measures[name]
        pts = float(batch.points[row, j])
        how = describe_measure(measure)
        if weights[name] == 0:
            how += " (off in this segment)"
        lines.append(
            MeasureLine(
                name=name,
                label=measure.label,
                group=measure.group,
                value=_value_text(batch, row, j),
                points=None if np.isnan(pts) else round(pts, 2),
                weight_share=round(float(batch.weight[row, j]), 4),
                points_lost=round(float(batch.lost[row, j]), 2),
                how=how,
            )
        )
    return Explanation(
        account_id=batch.account_ids[row],
        score=None if math.isnan(value) else value,
        grade=str(batch.grade[row]),
        coverage=float(batch.coverage[row]),
        segment=batch.segment_name(row),
        segment_why=segment_reason(batch, row),
        groups={
            g: (None if np.isnan(v[row]) else round(float(v[row]), 2))
            for g, v in batch.groups.items()
        },
        measures=lines,
        reasons=reasons_for(batch, row),
        critical=None
        if batch.critical is None or batch.critical[row] < 0
        else card.critical[int(batch.critical[row])].name,
        churn_probability=None if churn is None or math.isnan(churn) else churn,
        churn_horizon_days=None if model is None else model.horizon_days,
    )
