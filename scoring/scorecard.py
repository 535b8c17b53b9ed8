"""The scorecard as CS operations write it in YAML, validated with errors that name the field.

A scorecard has *groups* (DEAR by default) of weighted *measures*. Each measure reads one
metric — a source metric or a *derived* one declared in the same file — and turns it into
0–100 points with exactly one normalization:

- ``linear: {from: a, to: b}`` — a straight line between two values, clamped at both ends
  (``log: true`` puts the line on a log scale, for things like ARR or logins that span
  orders of magnitude); with ``better: higher`` ``a`` scores 0 and ``b`` scores 100,
  with ``better: lower`` the other way round.
- ``bands`` — value ranges with points each (``below`` is the exclusive upper edge).
- ``percentile: true`` — rank among the accounts of the same segment.
- ``boolean: {if_true: 100, if_false: 0}`` and ``categories: {Enterprise: 100, ...}``.

``stale_after`` treats an old value as missing. *Segments* pick a variant of the weights by
rules on account fields; the first matching segment wins.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import timedelta
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from healthscore.core.durations import Duration

from .churn_model import ChurnModel
from .critical import Critical

Better = Literal["higher", "lower"]
# what `healthscore fit` may not change on a measure: everything (it stays, as written), its
# normalization (bands …) or only its direction (``better``)
Lock = bool | Literal["bands", "direction"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# -- normalizations --------------------------------------------------------------------------
class Linear(_Strict):
    start: float = Field(alias="from", description="the low end of the range")
    end: float = Field(alias="to", description="the high end of the range")
    log: bool = Field(False, description="interpolate on a log scale (both ends must be > 0)")

    @model_validator(mode="after")
    def _ordered(self) -> Linear:
        if self.start >= self.end:
            raise ValueError(
                f"'from' ({self.start:g}) must be below 'to' ({self.end:g}); "
                "say `better: lower` when lower values are better"
            )
        if self.log and self.start <= 0:
            raise ValueError(f"a log scale needs 'from' > 0; got {self.start:g}")
        return self


class Band(_Strict):
    below: float | None = Field(None, description="exclusive upper edge; the last band has none")
    points: float = Field(ge=0, le=100)


class Boolean(_Strict):
    if_true: float = Field(100, ge=0, le=100)
    if_false: float = Field(0, ge=0, le=100)


class Measure(_Strict):
    label: str
    group: str
    weight: float = Field(ge=0)
    metric: str
    better: Better = "higher"
    linear: Linear | None = None
    bands: list[Band] | None = None
    percentile: bool = False
    boolean: Boolean | None = None
    categories: dict[str, float] | None = None
    stale_after: Duration | None = Field(None, description="an older value counts as missing")
    unit: Literal["", "%", "pct", "days", "x"] = Field(
        "", description="display: % (a 0–1 ratio), pct (already 0–100), days, x (a multiple)"
    )
    lock: Lock | None = Field(
        None,
        description="what `healthscore fit` keeps: true (the measure as written, never "
        "dropped), bands (its normalization) or direction (its `better`)",
    )

    @field_validator("bands")
    @classmethod
    def _bands_in_order(cls, bands: list[Band] | None, info: ValidationInfo) -> list[Band] | None:
        if bands is not None:
            _check_bands(bands, info.data.get("better", "higher"))
        return bands

    @model_validator(mode="after")
    def _one_normalization(self) -> Measure:
        chosen = [
            k for k in ("linear", "bands", "boolean", "categories") if getattr(self, k) is not None
        ] + (["percentile"] if self.percentile else [])
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one of linear, bands, percentile, boolean, categories"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.categories is not None:
            bad = {k: v for k, v in self.categories.items() if not 0 <= v <= 100}
            if bad:
                raise ValueError(f"category points must be 0–100; got {bad}")
        return self

    @property
    def kind(self) -> str:
        for k in ("linear", "bands", "boolean", "categories"):
            if getattr(self, k) is not None:
                return k
        return "percentile"


def _check_bands(bands: list[Band], better: Better) -> None:
    if not bands:
        raise ValueError("give at least one band")
    edges = [b.below for b in bands[:-1]]
    if any(e is None for e in edges):
        raise ValueError("every band but the last needs 'below'")
    if bands[-1].below is not None:
        raise ValueError("the last band must have no 'below' (it takes every higher value)")
    for low, high in itertools.pairwise(edges):
        if high <= low:  # type: ignore[operator]
            raise ValueError(
                f"bands overlap: 'below: {high:g}' comes after 'below: {low:g}'; "
                "list bands from the lowest values up"
            )
    points = [b.points for b in bands]
    rising = all(b >= a for a, b in itertools.pairwise(points))
    falling = all(b <= a for a, b in itertools.pairwise(points))
    if better == "higher" and not rising:
        raise ValueError(
            f"with better: higher, band points must not fall as values rise (got {points})"
        )
    if better == "lower" and not falling:
        raise ValueError(
            f"with better: lower, band points must not rise as values rise (got {points})"
        )


# -- derived metrics -------------------------------------------------------------------------
class Change(_Strict):
    of: str = Field(description="the metric now")
    vs: str | None = Field(None, description="the same metric for the prior window")
    over: Duration | None = Field(None, description="compare with its own value this long ago")

    @model_validator(mode="after")
    def _one_baseline(self) -> Change:
        if (self.vs is None) == (self.over is None):
            raise ValueError(
                "change: give either 'vs' (a prior-window metric) or 'over' "
                "(a duration to look back in the history)"
            )
        return self


class Count(_Strict):
    metric: str
    within: Duration


WindowAgg = Literal["sum", "mean", "max", "active_days", "last", "days_since"]
WINDOWED = ("sum", "mean", "max", "active_days")


class Window(_Strict):
    """An aggregate of a daily usage metric (the ``usage_daily`` table) over the days up to T.

    A day without a row counts as 0 for ``sum``, ``mean`` (per day of the window), ``max`` and
    ``active_days`` (days with a value > 0); ``last`` is the latest reported value and
    ``days_since`` the whole days since the latest day with a value > 0. An account with no
    row on or before T has no value (missing), whatever the aggregate. See scoring/windows.py.
    """

    metric: str = Field(description="a daily usage metric")
    agg: WindowAgg
    within: Duration | None = Field(None, description="the window: this many days up to T")
    vs_previous: bool = Field(False, description="% change against the window before")

    @model_validator(mode="after")
    def _window_fits_agg(self) -> Window:
        if self.within is not None:
            seconds = self.within.total_seconds()
            if seconds < 86400 or seconds % 86400:
                raise ValueError(f"within must be whole days (e.g. 30d); got {self.within}")
        if self.agg in WINDOWED and self.within is None:
            raise ValueError(f"agg {self.agg} needs 'within' (e.g. within: 30d)")
        if self.agg == "days_since" and self.within is not None:
            raise ValueError("days_since looks back over the whole history; drop 'within'")
        if self.vs_previous and self.agg not in WINDOWED:
            raise ValueError(
                f"vs_previous compares two windows; agg {self.agg} has none "
                f"(use one of {', '.join(WINDOWED)})"
            )
        return self

    @property
    def days(self) -> int:
        return 0 if self.within is None else int(self.within.total_seconds() // 86400)


class Derived(_Strict):
    """A metric computed from others: exactly one of the forms below."""

    ratio: tuple[str, str] | None = Field(None, description="[numerator, denominator]")
    change: Change | None = Field(None, description="% change vs a prior window")
    days_since: str | None = Field(None, description="a date metric → whole days since it")
    count: Count | None = Field(None, description="how many values were observed in a window")
    difference: tuple[str, str] | None = Field(
        None, description="[measure, measure]: points of the first minus points of the second"
    )
    window: Window | None = Field(None, description="an aggregate of a daily usage metric")
    days_until: str | None = Field(
        None, description="a date metric or attribute → whole days until it (negative once past)"
    )
    sum: list[str] | None = Field(
        None, description="[metric, metric, …]: the sum of those present (missing if none is)"
    )

    @model_validator(mode="after")
    def _one_form(self) -> Derived:
        forms = [k for k in DERIVED_FORMS if getattr(self, k) is not None]
        if len(forms) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(DERIVED_FORMS)}"
                + (f" (got {', '.join(forms)})" if forms else "")
            )
        return self

    @field_validator("sum")
    @classmethod
    def _several(cls, metrics: list[str] | None) -> list[str] | None:
        if metrics is None:
            return None
        if len(metrics) < 2:
            raise ValueError(
                "sum needs at least two metrics, e.g. sum: [logins_30d, api_calls_30d] "
                f"(got {len(metrics)})"
            )
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"sum names {', '.join(map(repr, twice))} twice")
        return metrics

    @property
    def kind(self) -> str:
        return next(k for k in DERIVED_FORMS if getattr(self, k) is not None)

    def inputs(self) -> list[str]:
        """The metrics this one reads (not the measures of a difference, nor the usage metric
        of a window: usage metrics come from the usage_daily table, not from signals)."""
        if self.ratio:
            return list(self.ratio)
        if self.change:
            return [self.change.of] + ([self.change.vs] if self.change.vs else [])
        if self.days_since:
            return [self.days_since]
        if self.count:
            return [self.count.metric]
        if self.days_until:
            return [self.days_until]
        if self.sum:
            return list(self.sum)
        return []


DERIVED_FORMS = (
    "ratio",
    "change",
    "days_since",
    "count",
    "difference",
    "window",
    "days_until",
    "sum",
)


# -- groups, grades, segments ----------------------------------------------------------------
class Group(_Strict):
    label: str
    weight: float = Field(ge=0)
    aggregate: Literal["mean", "min", "max"] = Field(
        "mean",
        description="the group's sub-score: weighted mean of its measures (default), "
        "the lowest (any poor input makes the group poor) or the highest",
    )


class Grades(_Strict):
    """Upper bounds (inclusive, on the rounded score): red 0–50, yellow 51–75, green 76–100.

    ``hysteresis`` keeps an account in its previous grade until its score crosses the border
    by more than this many points, so a score hovering at 50/51 does not flap.
    """

    red: float = Field(50, ge=0, le=100)
    yellow: float = Field(75, ge=0, le=100)
    hysteresis: float = Field(2, ge=0, le=25)

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        if self.red >= self.yellow:
            raise ValueError(f"red ({self.red:g}) must be below yellow ({self.yellow:g})")
        return self


class Condition(_Strict):
    """One test on an account field; a segment's conditions must all hold."""

    field: str
    is_: str | float | bool | None = Field(None, alias="is")
    in_: list[str | float] | None = Field(None, alias="in")
    below: float | None = None
    at_least: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [k for k in ("is_", "in_", "below", "at_least") if getattr(self, k) is not None]
        if not tests:
            raise ValueError("give a test: is, in, below or at_least")
        if self.below is not None and self.at_least is not None and self.at_least >= self.below:
            raise ValueError(
                f"at_least ({self.at_least:g}) must be below 'below' "
                f"({self.below:g}); nothing could match"
            )
        return self

    def describe(self) -> str:
        parts = []
        if self.is_ is not None:
            parts.append(f"{self.field} is {self.is_}")
        if self.in_ is not None:
            parts.append(f"{self.field} in {', '.join(map(str, self.in_))}")
        if self.at_least is not None:
            parts.append(f"{self.field} ≥ {self.at_least:g}")
        if self.below is not None:
            parts.append(f"{self.field} < {self.below:g}")
        return " and ".join(parts)


class Segment(_Strict):
    name: str
    label: str | None = None
    when: list[Condition] = Field(min_length=1)
    weights: dict[str, float] = Field(
        default_factory=dict, description="measure → weight here (0 turns it off)"
    )
    group_weights: dict[str, float] = Field(default_factory=dict, description="group → weight here")

    @model_validator(mode="after")
    def _non_negative(self) -> Segment:
        bad = {k: v for k, v in {**self.weights, **self.group_weights}.items() if v < 0}
        if bad:
            raise ValueError(f"weights must be ≥ 0; got {bad}")
        return self


DEFAULT_SEGMENT = "default"
# coverage is a sum of weight shares: 1/3.5 + 1.5/3.5 + 1/3.5 may land a hair under 1.0, and a
# floor of 1.0 ("every measure present") must not then call a complete account insufficient
COVERAGE_TOLERANCE = 1e-9


class Scorecard(_Strict):
    name: str = "default"
    coverage_floor: float = Field(
        0.5, ge=0, le=1, description="below this share of weight present: insufficient"
    )
    grades: Grades = Grades()
    derived: dict[str, Derived] = Field(default_factory=dict)
    groups: dict[str, Group]
    measures: dict[str, Measure]
    segments: list[Segment] = Field(default_factory=list)
    critical: list[Critical] = Field(
        default_factory=list,
        description="conditions that cap or force the grade whatever the weights say",
    )
    churn_model: ChurnModel | None = Field(
        None,
        description="the score as a probability of churn within a horizon (`healthscore fit` "
        "writes it); absent: no probability anywhere",
    )

    @property
    def version(self) -> str:
        """A short content hash: two scorecards that score alike share a version.

        Fields left at their defaults are not hashed, so a new optional setting in a later
        healthscore does not change the version of a file that does not use it; nor is the
        churn model, which turns a score into a probability but never changes the score.
        """
        blob = json.dumps(
            self.model_dump(
                mode="json", by_alias=True, exclude_defaults=True, exclude={"churn_model"}
            ),
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def segment_names(self) -> list[str]:
        return [s.name for s in self.segments] + [DEFAULT_SEGMENT]

    def source_metrics(self) -> set[str]:
        """Metrics the scorecard reads from the store (not derived here)."""
        wanted = {m.metric for m in self.measures.values()}
        wanted |= {c.field for s in self.segments for c in s.when}
        wanted |= {c.when.metric for c in self.critical}
        for d in self.derived.values():
            wanted |= set(d.inputs())
        return wanted - set(self.derived)

    def metrics(self) -> set[str]:
        return self.source_metrics()

    def history_needs(self) -> list[tuple[str, str, timedelta]]:
        """(kind, metric, window) values that must be read from the signal history."""
        needs: list[tuple[str, str, timedelta]] = []
        for d in self.derived.values():
            if d.change is not None and d.change.over is not None:
                needs.append(("as_of", d.change.of, d.change.over))
            if d.count is not None:
                needs.append(("count", d.count.metric, d.count.within))
        return needs

    def usage_windows(self) -> dict[str, Window]:
        """Derived name → window, for the derived metrics read from daily usage."""
        return {n: d.window for n, d in self.derived.items() if d.window is not None}

    def weights_for(self, segment: str) -> tuple[dict[str, float], dict[str, float]]:
        """(measure weights, group weights) in one segment."""
        measures = {n: m.weight for n, m in self.measures.items()}
        groups = {n: g.weight for n, g in self.groups.items()}
        for seg in self.segments:
            if seg.name == segment:
                measures.update(seg.weights)
                groups.update(seg.group_weights)
        return measures, groups


def describe_measure(measure: Measure) -> str:
    """One line on how a measure scores, for `healthscore explain`."""
    arrow = "higher is better" if measure.better == "higher" else "lower is better"
    if measure.linear is not None:
        scale = "log " if measure.linear.log else ""
        return f"{scale}linear {measure.linear.start:g}→{measure.linear.end:g}, {arrow}"
    if measure.bands is not None:
        parts = [
            f"<{b.below:g}: {b.points:g}" if b.below is not None else f"else {b.points:g}"
            for b in measure.bands
        ]
        return "bands " + ", ".join(parts)
    if measure.boolean is not None:
        return f"yes {measure.boolean.if_true:g} / no {measure.boolean.if_false:g}"
    if measure.categories is not None:
        return "categories " + ", ".join(f"{k} {v:g}" for k, v in measure.categories.items())
    return f"percentile in segment, {arrow}"
