"""The scorecard as CS operations write it in YAML, validated with errors that name the field.

A measure turns one metric (optionally divided by another, or read as "days since") into
0–100 points on a clamped linear scale: ``from`` scores 0 and ``to`` scores 100, so
``from: 30, to: 3`` reads "30 days or more is bad, 3 days or less is perfect".
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Scale(_Strict):
    start: float = Field(alias="from", description="value that scores 0 points")
    end: float = Field(alias="to", description="value that scores 100 points")

    @model_validator(mode="after")
    def _distinct(self) -> Scale:
        if self.start == self.end:
            raise ValueError(f"'from' and 'to' must differ; got both {self.start:g}")
        return self


class Measure(_Strict):
    label: str
    group: str
    weight: float = Field(ge=0)
    metric: str
    per: str | None = Field(None, description="divide the metric by this metric (a ratio)")
    days_since: bool = Field(False, description="the metric is a timestamp: use days since it")
    scale: Scale
    unit: Literal["", "%", "pct", "days", "x"] = Field(
        "", description="display: % (a 0–1 ratio), pct (already 0–100), days, x (a multiple)")

    @field_validator("metric", "per")
    @classmethod
    def _known_metric(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = (info.context or {}).get("metrics")
        if value is not None and known is not None and value not in known:
            raise ValueError(
                f"unknown metric {value!r}; the configured sources provide: "
                f"{', '.join(sorted(known))}")
        return value


class Group(_Strict):
    label: str
    weight: float = Field(ge=0)


class Grades(_Strict):
    """Upper bounds (inclusive, on the rounded score): red 0–50, yellow 51–75, green 76–100."""

    red: float = Field(50, ge=0, le=100)
    yellow: float = Field(75, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        if self.red >= self.yellow:
            raise ValueError(f"red ({self.red:g}) must be below yellow ({self.yellow:g})")
        return self


class Scorecard(_Strict):
    name: str = "default"
    coverage_floor: float = Field(0.5, ge=0, le=1,
                                  description="below this share of weight present: insufficient")
    grades: Grades = Grades()
    groups: dict[str, Group]
    measures: dict[str, Measure]

    @property
    def version(self) -> str:
        """A short content hash: two scorecards that score alike share a version."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def metrics(self) -> set[str]:
        return {m.metric for m in self.measures.values()} | {
            m.per for m in self.measures.values() if m.per}


def reference_problems(card: Scorecard) -> list[tuple[tuple[str, ...], str]]:
    """Cross-field mistakes, each with the field path it belongs to (for ``file:line``)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if not card.measures:
        problems.append((("measures",), "at least one measure is needed"))
    for name, measure in card.measures.items():
        if measure.group not in card.groups:
            problems.append(((("measures", name, "group")),
                             f"group {measure.group!r} is not under 'groups' "
                             f"(known: {', '.join(card.groups)})"))
    if sum(g.weight for g in card.groups.values()) <= 0:
        problems.append((("groups",), "group weights sum to 0: give at least one group a weight"))
    for gname, group in card.groups.items():
        members = [m for m in card.measures.values() if m.group == gname]
        if group.weight > 0 and sum(m.weight for m in members) <= 0:
            problems.append((("groups", gname, "weight"),
                             f"group has weight {group.weight:g} but its measures' weights "
                             f"sum to 0"))
    return problems
