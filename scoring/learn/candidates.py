"""Candidate measures, written in the scorecard's own language.

Every candidate is a derived metric (or a metric as it stands) a scorecard could name, so a
selected one goes into the fitted YAML as it is, and its values at a past snapshot come from
the same point-in-time scorer as a live run's (:func:`candidate_card` builds the temporary
card that reads them). From each daily usage metric, over windows of 7, 30 and 90 days:

- the sum (``{metric}_{w}d``), the days with any (``{metric}_active_days_{w}d``), the change
  against the window before (``{metric}_change_{w}d``) and, where a seat count exists, the sum
  per seat (``{metric}_per_seat_{w}d``);
- the days since the last day with any (``days_since_{metric}``).

Beside them: the account's age (from its start date), every date field as days until (or
since) it, every numeric field as it stands, text fields as categories — and the card's own
measures, each re-learned under its own name (``measure``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..scorecard import Derived, Scorecard
from ..scorer import ScoreBatch

WINDOWS = (7, 30, 90)
CANDIDATE_GROUP = "candidates"


@dataclass(frozen=True)
class Inventory:
    """What the store holds to build candidates from."""

    usage_metrics: tuple[str, ...] = ()  # daily usage (usage_daily)
    numbers: tuple[str, ...] = ()  # numeric metrics and attributes
    dates: tuple[str, ...] = ()  # date metrics and attributes
    texts: tuple[str, ...] = ()  # text attributes with few values (plan, region …)
    seats: str | None = None  # a seat count, to divide usage by
    start: str | None = None  # the account's start date (its age)


@dataclass(frozen=True)
class Candidate:
    name: str  # the measure's name in a fitted card
    metric: str  # what the measure reads: a derived metric or a source metric
    label: str
    family: str  # the usage metric or field it comes from (which group it joins)
    derived: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name → YAML spec
    kind: Literal["number", "category"] = "number"
    unit: str = ""
    measure: str | None = None  # the card's measure it re-learns; None for a new one


def humanize(name: str) -> str:
    """``support_tickets`` → ``Support tickets``."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def canonical(spec: Mapping[str, Any] | Derived) -> str:
    """One text per meaning: two specs that compute the same values compare equal."""
    model = spec if isinstance(spec, Derived) else Derived.model_validate(spec)
    return json.dumps(
        model.model_dump(mode="json", by_alias=True, exclude_defaults=True), sort_keys=True
    )


def spec_of(derived: Derived) -> dict[str, Any]:
    """A derived metric as the mapping that validates into it again."""
    return derived.model_dump(by_alias=True, exclude_defaults=True)


def _window(metric: str, agg: str, days: int | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"metric": metric, "agg": agg}
    if days is not None:
        spec["within"] = f"{days}d"
    return {"window": {**spec, **extra}}


def usage_candidates(metric: str, seats: str | None) -> list[Candidate]:
    label = humanize(metric)
    out = []
    for w in WINDOWS:
        total = f"{metric}_{w}d"
        out.append(
            Candidate(total, total, f"{label} ({w}d)", metric, {total: _window(metric, "sum", w)})
        )
        days = f"{metric}_active_days_{w}d"
        out.append(
            Candidate(
                days,
                days,
                f"Days with {label.lower()} ({w}d)",
                metric,
                {days: _window(metric, "active_days", w)},
            )
        )
        change = f"{metric}_change_{w}d"
        out.append(
            Candidate(
                change,
                change,
                f"{label} vs prior {w} days",
                metric,
                {change: _window(metric, "sum", w, vs_previous=True)},
                unit="pct",
            )
        )
        if seats is not None:
            per = f"{metric}_per_seat_{w}d"
            out.append(
                Candidate(
                    per,
                    per,
                    f"{label} per seat ({w}d)",
                    metric,
                    {total: _window(metric, "sum", w), per: {"ratio": [total, seats]}},
                    unit="x",
                )
            )
    since = f"days_since_{metric}"
    out.append(
        Candidate(
            since,
            since,
            f"Days since last {label.lower()}",
            metric,
            {since: _window(metric, "days_since")},
            unit="days",
        )
    )
    return out


def field_candidates(inventory: Inventory) -> list[Candidate]:
    out = []
    if inventory.start is not None:
        out.append(
            Candidate(
                "account_age_days",
                "account_age_days",
                "Account age",
                inventory.start,
                {"account_age_days": {"days_since": inventory.start}},
                unit="days",
            )
        )
    for name in inventory.dates:  # days to it (renewal date …), negative once past
        if name == inventory.start:
            continue
        derived = f"days_to_{name}"
        label = f"Days to {humanize(name).lower()}"
        spec = {"days_until": name}
        out.append(Candidate(derived, derived, label, name, {derived: spec}, unit="days"))
    for name in inventory.numbers:
        out.append(Candidate(name, name, humanize(name), name))
    for name in inventory.texts:
        out.append(Candidate(name, name, humanize(name), name, kind="category"))
    return out


def _needs(card: Scorecard, metric: str) -> dict[str, dict[str, Any]]:
    """The card's derived metrics a measure on ``metric`` reads (windows feeding a ratio first)."""
    spec = card.derived.get(metric)
    if spec is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in spec.inputs():
        if name in card.derived:
            out[name] = spec_of(card.derived[name])
    out[metric] = spec_of(spec)
    return out


def family_of(card: Scorecard, metric: str) -> str:
    """The usage metric (or field) a card metric reads first."""
    spec = card.derived.get(metric)
    if spec is None:
        return metric
    if spec.window is not None:
        return spec.window.metric
    inputs = spec.inputs()
    return family_of(card, inputs[0]) if inputs else metric


def card_candidates(card: Scorecard) -> list[Candidate]:
    """The card's own measures, each to be re-learned under its name (a measure on a
    ``difference`` of other measures' points stays as it is)."""
    out = []
    for name, m in card.measures.items():
        spec = card.derived.get(m.metric)
        if spec is not None and spec.difference is not None:
            continue
        out.append(
            Candidate(
                name,
                m.metric,
                m.label,
                family_of(card, m.metric),
                _needs(card, m.metric),
                kind="category" if m.categories is not None else "number",
                unit=m.unit,
                measure=name,
            )
        )
    return out


def generate(inventory: Inventory, card: Scorecard) -> list[Candidate]:
    """The card's own measures, then every generated candidate the card does not have yet.

    A generated candidate computing what a card measure already reads is left out (the card's
    measure stands for it); a derived metric the card already has under another name keeps
    the card's name; a name the card uses for something else gets a ``_fit`` suffix.
    """
    own = card_candidates(card)
    read = {
        canonical(card.derived[c.metric]) if c.metric in card.derived else c.metric for c in own
    }
    existing = {canonical(spec): name for name, spec in card.derived.items()}
    taken = set(card.measures) | set(card.derived) | card.source_metrics()
    out = list(own)
    generated: list[Candidate] = []
    for metric in inventory.usage_metrics:
        generated += usage_candidates(metric, inventory.seats)
    generated += field_candidates(inventory)
    for cand in generated:
        if cand.metric not in cand.derived:  # a field as it stands
            if cand.metric not in read:
                out.append(cand)
            continue
        renamed = _renamed(cand, existing, taken, set(card.measures))
        if canonical(renamed.derived[renamed.metric]) not in read:
            out.append(renamed)
    return out


def _renamed(
    cand: Candidate, existing: Mapping[str, str], taken: set[str], measures: set[str]
) -> Candidate:
    """The candidate with its derived metrics named as the card names the same ones, and
    its other names clear of the card's."""
    rename: dict[str, str] = {}
    derived: dict[str, Mapping[str, Any]] = {}
    for name, spec in cand.derived.items():  # inputs come before what reads them
        resolved = _resolved(spec, rename)
        same = existing.get(canonical(resolved))
        new = same or (f"{name}_fit" if name in taken else name)
        rename[name] = new
        derived[new] = resolved
    measure = f"{cand.name}_fit" if cand.name in measures else cand.name
    return Candidate(
        measure,
        rename[cand.metric],
        cand.label,
        cand.family,
        derived,
        cand.kind,
        cand.unit,
        cand.measure,
    )


def _resolved(spec: Mapping[str, Any], rename: Mapping[str, str]) -> dict[str, Any]:
    if "ratio" in spec:
        return {"ratio": [rename.get(x, x) for x in spec["ratio"]]}
    return dict(spec)


# -- reading the values ------------------------------------------------------------------------
def candidate_card(candidates: Sequence[Candidate]) -> Scorecard:
    """A card whose measures read the candidates (one group, no coverage floor): scoring it
    computes every candidate's derived metrics the live way."""
    derived: dict[str, Any] = {}
    for cand in candidates:
        derived.update(cand.derived)
    measures = {
        cand.name: {
            "label": cand.label,
            "group": CANDIDATE_GROUP,
            "weight": 1,
            "metric": cand.metric,
            **({"categories": {}} if cand.kind == "category" else {"linear": {"from": 0, "to": 1}}),
        }
        for cand in candidates
    }
    return Scorecard.model_validate(
        {
            "name": "candidates",
            "coverage_floor": 0,
            "derived": derived,
            "groups": {CANDIDATE_GROUP: {"label": "Candidates", "weight": 1}},
            "measures": measures,
        }
    )


def values_of(
    batch: ScoreBatch, candidates: Iterable[Candidate]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(numbers: accounts × numeric candidates, float32, NaN missing; texts: name → object
    array of the text candidates' values, None missing) of a batch of the candidate card."""
    numbers, texts = [], {}
    for cand in candidates:
        if cand.kind == "category":
            column = batch.table.label(cand.metric)
            lookup = np.array([*column.values, None], dtype=object)
            texts[cand.name] = lookup[column.codes]
        else:
            numbers.append(batch.table.column(cand.metric).astype(np.float32))
    matrix = np.column_stack(numbers) if numbers else np.empty((len(batch), 0), np.float32)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix, texts


def chunks(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by what they read, so one chunk's usage is held at a time."""
    out: dict[str, list[Candidate]] = {}
    for cand in candidates:
        out.setdefault(cand.family, []).append(cand)
    return list(out.values())
