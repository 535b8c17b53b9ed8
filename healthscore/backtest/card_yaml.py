"""Write a learned card as a copy of the live YAML, changed only where the fit changed it.

Edits are made in the text, at the places the YAML parser marks, so comments, order and every
value the fit did not touch stay byte for byte as they were and the unified diff shows only
what changed:

- a re-learned measure gets its normalization (``linear``, ``percentile`` …) replaced by
  ``bands`` (or ``categories``), its ``better`` set and its weight changed — its label, unit,
  staleness limit, lock and comments stay;
- every other measure and group weight is rewritten in place (0 for what the fit left out);
- new measures are appended to ``measures``, their derived metrics to ``derived``, and a new
  group (``learned``) to ``groups`` when a new measure belongs to none of the card's.

Each band line carries a comment with its share of the fitting rows and their churn rate, so
a person reading the proposal sees why the points fall where they do. The churn model (the
fitted score calibrated as a probability on held-out snapshots) is written as the scorecard's
``churn_model`` section (see scoring/churn_model.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import yaml

from healthscore.core.errors import ConfigError
from healthscore.core.yaml_edit import (
    WeightChanges,
    format_number,
    scalar_spans,
    segment_changes,
)
from scoring import Scorecard
from scoring.learn.card import NEW_GROUP, NEW_GROUP_LABEL, LearnedMeasure

NORMALIZATIONS = ("linear", "bands", "percentile", "boolean", "categories")


@dataclass
class CardEdits:
    """What the fit changes in the card."""

    measures: list[LearnedMeasure]  # chosen by the fit (re-learned or new)
    weights: dict[str, float]  # every measure's new weight
    group_weights: dict[str, float]  # every group's (with a new one, if any)
    grades: dict[str, float] = field(default_factory=dict)
    horizon_days: int = 30


def scalar(value: Any) -> str:
    """A value as one line of YAML (plain where it can be, quoted where it must)."""
    if isinstance(value, float) and value == int(value):
        value = int(value)
    if isinstance(value, float):
        return f"{value:g}"
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return text.removesuffix("\n...\n").strip()


def _mapping(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if k.value == key:
            return k, v
    return None


def _end(node: yaml.Node) -> int:
    """Where a node's text ends (a block collection's own end mark is the next line's)."""
    block = isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style
    if block and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(last, tuple) else last)
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    """The end of the line holding ``index`` (before its newline; comments included)."""
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _band_lines(m: LearnedMeasure, indent: str, horizon: int) -> list[str]:
    if m.bins is None:
        return []
    if m.bins.categories is not None:
        cats = ", ".join(f"{scalar(c)}: {p}" for c, p in m.categories().items())
        return [f"{indent}categories: {{{cats}}}"]
    rows = m.table()
    lines = [f"{indent}bands:  # share of accounts · churned within {horizon}d (fitting snapshots)"]
    for band, row in zip(m.bands(), rows, strict=True):
        item = ", ".join(f"{k}: {scalar(v)}" for k, v in band.items())
        lines.append(
            f"{indent}  - {{{item}}}  # {row['band']}: {100 * row['share']:.0f}% · "
            f"{100 * row['churn_rate']:.1f}%"
        )
    return lines


def _new_measure(m: LearnedMeasure, weight: float, indent: str, horizon: int) -> str:
    inner = indent + "  "
    lines = [
        f"{indent}{m.name}:",
        f"{inner}label: {scalar(m.candidate.label)}",
        f"{inner}group: {m.group}",
        f"{inner}weight: {format_number(weight)}",
        f"{inner}metric: {m.candidate.metric}",
    ]
    if m.better is not None:
        lines.append(f"{inner}better: {m.better}")
    lines += _band_lines(m, inner, horizon)
    if m.candidate.unit:
        lines.append(f"{inner}unit: {scalar(m.candidate.unit)}")
    return "\n".join(lines)


class _Editor:
    def __init__(self, text: str, path: str) -> None:
        self.text, self.path = text, path
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        found = _mapping(self.root, "scorecard")
        if found is None:
            raise ConfigError(f"{path}: no 'scorecard:' section to write the fitted card into")
        self.card_key, self.card = found
        self.edits: list[tuple[int, int, str]] = []

    def section(self, key: str) -> tuple[yaml.Node, yaml.Node] | None:
        return _mapping(self.card, key)

    def replace(self, start: int, end: int, new: str) -> None:
        self.edits.append((start, end, new))

    def append(self, mapping: yaml.Node, block: str) -> None:
        """Add entries after a block mapping's last one."""
        if mapping.flow_style:
            raise ConfigError(
                f"{self.path}: cannot add to a flow-style mapping; write it as a block"
            )
        at = _line_end(self.text, _end(mapping))
        self.replace(at, at, "\n" + block)

    def indent_of(self, mapping: yaml.Node) -> str:
        return " " * mapping.value[0][0].start_mark.column

    def apply(self) -> str:
        out = self.text
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            out = out[:start] + new + out[end:]
        return out


def _relearn(ed: _Editor, node: yaml.Node, m: LearnedMeasure, horizon: int) -> None:
    """Replace a block-style measure's normalization and direction in place."""
    if node.flow_style:
        raise ConfigError(
            f"{ed.path}: measure {m.name!r} is written in flow style; write it as a block "
            "to let fit replace its normalization"
        )
    keys = [(k, v) for k, v in node.value if k.value in NORMALIZATIONS]
    if m.bins is not None and keys:
        key, value = keys[0]
        indent = " " * key.start_mark.column
        lines = _band_lines(m, indent, horizon)
        start, end = key.start_mark.index, _end(value)
        rest = ed.text[end : _line_end(ed.text, end)]
        if rest.lstrip().startswith("#"):  # the old normalization's comment goes with it
            end += len(rest)
        ed.replace(start, end, "\n".join(lines)[len(indent) :])
    better = _mapping(node, "better")
    if m.better is not None and m.bins is not None:
        if better is not None:
            ed.replace(better[1].start_mark.index, better[1].end_mark.index, m.better)
        elif m.better == "lower":
            metric = _mapping(node, "metric")
            anchor = metric[1] if metric is not None else node.value[0][1]
            indent = " " * node.value[0][0].start_mark.column
            at = _line_end(ed.text, _end(anchor))
            ed.replace(at, at, f"\n{indent}better: lower")


def write_card(
    text: str,
    path: str,
    card: Scorecard,
    edits: CardEdits,
    derived: Mapping[str, Mapping[str, Any]],
) -> str:
    """The fitted card's YAML: ``text`` with the fit's changes made in place."""
    ed = _Editor(text, path)
    measures = ed.section("measures")
    groups = ed.section("groups")
    assert measures is not None and groups is not None  # a validated card has both
    learned = {m.name: m for m in edits.measures}
    for name, node in ((k.value, v) for k, v in measures[1].value):
        if name in learned and not learned[name].kept_normalization:
            _relearn(ed, node, learned[name], edits.horizon_days)
    new = [m for m in edits.measures if m.name not in card.measures]
    if new:
        indent = ed.indent_of(measures[1])
        ed.append(
            measures[1],
            "\n".join(
                _new_measure(m, edits.weights[m.name], indent, edits.horizon_days) for m in new
            ),
        )
    missing = {n: spec for n, spec in derived.items() if n not in card.derived}
    if missing:
        _add_derived(ed, missing)
    if NEW_GROUP in edits.group_weights and NEW_GROUP not in card.groups:
        line = (
            f"{ed.indent_of(groups[1])}{NEW_GROUP}: {{label: {NEW_GROUP_LABEL}, "
            f"weight: {format_number(edits.group_weights[NEW_GROUP])}}}"
        )
        ed.append(groups[1], line)
    old_w = {n: m.weight for n, m in card.measures.items()}
    old_g = {n: g.weight for n, g in card.groups.items()}
    changes = WeightChanges(
        measures={n: v for n, v in edits.weights.items() if n in card.measures},
        groups={g: v for g, v in edits.group_weights.items() if g in card.groups},
        grades=dict(edits.grades),
    )
    changes.segments = segment_changes([s.weights for s in card.segments], old_w, edits.weights)
    changes.segment_groups = segment_changes(
        [s.group_weights for s in card.segments], old_g, edits.group_weights
    )
    spans = scalar_spans(text, path)
    for loc, value in changes.edits().items():
        if loc not in spans:
            raise ConfigError(f"{path}: no scalar at {'.'.join(map(str, loc))} to rewrite")
        ed.replace(*spans[loc], format_number(value))
    return ed.apply()


def _add_derived(ed: _Editor, specs: Mapping[str, Mapping[str, Any]]) -> None:
    found = ed.section("derived")
    if found is not None and isinstance(found[1], yaml.MappingNode) and found[1].value:
        indent = ed.indent_of(found[1])
        ed.append(found[1], "\n".join(f"{indent}{n}: {scalar(dict(s))}" for n, s in specs.items()))
        return
    key_indent = " " * ed.card.value[0][0].start_mark.column
    block = "\n".join(f"{key_indent}  {n}: {scalar(dict(s))}" for n, s in specs.items())
    if found is not None:  # `derived: {}` or empty: replace it
        ed.replace(found[0].start_mark.index, _end(found[1]), f"derived:\n{block}")
        return
    anchor = ed.section("groups") or ed.section("measures")
    assert anchor is not None
    at = anchor[0].start_mark.index
    ed.replace(at, at, f"derived:\n{block}\n{key_indent}")


# -- the churn model ---------------------------------------------------------------------------
def churn_model_lines(model: Mapping[str, Any], indent: str) -> list[str]:
    """The ``churn_model:`` section (at ``indent``), with a comment saying how to read it."""
    inner = indent + "  "
    days = int(model["horizon_days"])
    fitted = model.get("fitted_on") or {}
    lines = [
        f"{indent}churn_model:  # written by `healthscore fit` from held-out snapshots",
        f"{inner}# P(churn within {days}d) = 1/(1+exp(-(intercept + slope·score)))",
        f"{inner}horizon: {days}d",
        f"{inner}intercept: {model['intercept']:.6g}",
        f"{inner}slope: {model['slope']:.6g}",
    ]
    if fitted:
        parts = ", ".join(f"{k}: {scalar(v)}" for k, v in fitted.items() if v is not None)
        lines.append(f"{inner}fitted_on: {{{parts}}}")
    if model.get("arr_attribute"):
        lines.append(f"{inner}arr_attribute: {scalar(model['arr_attribute'])}")
    return lines


def write_churn_model(text: str, path: str, model: Mapping[str, Any]) -> str:
    """``text`` with the scorecard's ``churn_model`` section replaced by ``model`` (added at
    the end of the scorecard when it has none); everything else stays as it was."""
    ed = _Editor(text, path)
    indent = ed.indent_of(ed.card)
    block = "\n".join(churn_model_lines(model, indent))
    found = ed.section("churn_model")
    if found is not None:
        key, value = found
        start = key.start_mark.index - key.start_mark.column  # the line's start
        ed.replace(start, _line_end(text, _end(value)), block)
    else:
        ed.append(ed.card, block)
    return ed.apply()


def with_churn_model(
    text: str,
    path: str,
    card: Scorecard,
    calibration: Mapping[str, Any],
    days: Sequence[date],
) -> str:
    """The fitted YAML with its ``churn_model`` set to the calibration fitted on the held-out
    ``days`` (the live card's ARR attribute kept); unchanged when there is no calibration, or
    one where a higher score means more churn (not a health score worth a probability)."""
    found = calibration.get("map")
    if not found or found["slope"] > 0 or not days:
        return text
    old = card.churn_model
    model = {
        **found,
        "fitted_on": {
            "rows": found["rows"],
            "churned": found["churned"],
            "from": min(days),
            "to": max(days),
        },
        "arr_attribute": old.arr_attribute if old is not None else None,
    }
    return write_churn_model(text, path, model)
