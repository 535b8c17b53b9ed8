"""Write a fitted scorecard as a copy of the live file with only its weights changed.

The weights are replaced where they stand in the text (found through the YAML parser's marks),
so comments, ordering, flow mappings and every other value stay byte for byte as they were,
and a unified diff shows exactly the weight lines that changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from healthscore.core.errors import ConfigError

Loc = tuple[str | int, ...]
ROOT: Loc = ("scorecard",)


@dataclass
class WeightChanges:
    """New values for the scorecard's weights (and grade borders); absent keys stay."""

    measures: dict[str, float] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)
    segments: dict[int, dict[str, float]] = field(default_factory=dict)  # index → measure → w
    segment_groups: dict[int, dict[str, float]] = field(default_factory=dict)
    grades: dict[str, float] = field(default_factory=dict)  # red / yellow

    def edits(self) -> dict[Loc, float]:
        out: dict[Loc, float] = {}
        out.update({(*ROOT, "measures", n, "weight"): v for n, v in self.measures.items()})
        out.update({(*ROOT, "groups", g, "weight"): v for g, v in self.groups.items()})
        for i, ws in self.segments.items():
            out.update({(*ROOT, "segments", i, "weights", n): v for n, v in ws.items()})
        for i, ws in self.segment_groups.items():
            out.update({(*ROOT, "segments", i, "group_weights", g): v for g, v in ws.items()})
        out.update({(*ROOT, "grades", k): v for k, v in self.grades.items()})
        return out


def scalar_spans(text: str, path: str = "<scorecard>") -> dict[Loc, tuple[int, int]]:
    """(start, end) character offsets of every scalar value, by its path in the document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    spans: dict[Loc, tuple[int, int]] = {}

    def walk(node: yaml.Node, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*loc, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))
        else:
            spans[loc] = (node.start_mark.index, node.end_mark.index)

    if root is not None:
        walk(root, ())
    return spans


def format_number(value: float) -> str:
    """3.0 → 3, 2.5 → 2.5, 0.333333 → 0.33 (weights are relative: two decimals suffice)."""
    rounded = round(float(value), 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


def rewrite(text: str, changes: WeightChanges, path: str = "<scorecard>") -> str:
    """``text`` with the changed values written in place of the old ones."""
    spans = scalar_spans(text, path)
    edits = []
    for loc, value in changes.edits().items():
        if loc not in spans:
            raise ConfigError(f"{path}: no scalar at {'.'.join(map(str, loc))} to rewrite")
        edits.append((spans[loc], format_number(value)))
    out = text
    for (start, end), new in sorted(edits, reverse=True):  # from the end: offsets stay valid
        out = out[:start] + new + out[end:]
    return out


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
    )


def segment_changes(
    segments: Sequence[Mapping[str, Mapping[str, float]]],
    old: Mapping[str, float],
    new: Mapping[str, float],
) -> dict[int, dict[str, float]]:
    """A segment's override keeps its ratio to the base weight (0 stays 0: a measure turned
    off in a segment stays off); an override of a base weight of 0 is kept as it is."""
    out: dict[int, dict[str, float]] = {}
    for i, overrides in enumerate(segments):
        changed = {}
        for name, value in overrides.items():
            base = old.get(name, 0.0)
            if value and base:
                changed[name] = value * new[name] / base
        if changed:
            out[i] = changed
    return out
