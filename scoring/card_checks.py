"""What a scorecard names must exist: metrics the sources provide or the card derives,
measures a difference or a rule refers to, weights that leave something to score. Each
problem carries its location in the YAML, so the error points at the line."""

from __future__ import annotations

from .scorecard import DEFAULT_SEGMENT, Scorecard

Loc = tuple[str | int, ...]


def reference_problems(
    card: Scorecard, known_fields: set[str] | None = None
) -> list[tuple[Loc, str]]:
    """Cross-field mistakes, each with the field path it belongs to (for ``file:line``).

    ``known_fields`` are the metrics and attributes the configured sources provide; when
    given, every metric a measure, derived metric or segment rule names must be one of them
    (or a derived metric).
    """
    problems: list[tuple[Loc, str]] = []
    if not card.measures:
        problems.append((("measures",), "at least one measure is needed"))
    provided = None if known_fields is None else set(known_fields) | set(card.derived)

    def unknown(name: str, loc: Loc, what: str = "metric") -> None:
        if provided is not None and name not in provided:
            problems.append(
                (
                    loc,
                    f"unknown {what} {name!r}; the configured sources provide: "
                    f"{', '.join(sorted(known_fields or ()))}"
                    + (f"; derived: {', '.join(card.derived)}" if card.derived else ""),
                )
            )

    for name, measure in card.measures.items():
        if measure.group not in card.groups:
            problems.append(
                (
                    ("measures", name, "group"),
                    f"group {measure.group!r} is not under 'groups' "
                    f"(known: {', '.join(card.groups)})",
                )
            )
        unknown(measure.metric, ("measures", name, "metric"))
    for name, d in card.derived.items():
        loc: Loc = ("derived", name, d.kind)
        for metric in d.inputs():
            if metric in card.derived and card.derived[metric].window is not None:
                continue  # windows are computed first, from usage: other derived may read them
            if metric in card.derived:
                problems.append(
                    (loc, f"{metric!r} is itself derived; derive from source metrics only")
                )
            else:
                unknown(metric, loc)
        if d.difference is not None:
            for ref in d.difference:
                if ref not in card.measures:
                    problems.append(
                        (
                            loc,
                            f"{ref!r} is not a measure (a difference compares "
                            f"two measures' points; known: "
                            f"{', '.join(card.measures)})",
                        )
                    )
                elif _is_difference(card, card.measures[ref].metric):
                    problems.append((loc, f"measure {ref!r} is itself a difference"))
    problems += _weight_problems(card)
    for k, seg in enumerate(card.segments):
        if seg.name == DEFAULT_SEGMENT:
            problems.append(
                (
                    ("segments", k, "name"),
                    f"{DEFAULT_SEGMENT!r} is reserved for accounts no segment matches",
                )
            )
        for c, cond in enumerate(seg.when):
            if provided is not None and cond.field not in provided:
                problems.append(
                    (
                        ("segments", k, "when", c, "field"),
                        f"segment rule references a missing field {cond.field!r}; "
                        f"known: {', '.join(sorted(provided))}",
                    )
                )
        for m in seg.weights:
            if m not in card.measures:
                problems.append((("segments", k, "weights", m), f"no measure named {m!r}"))
        for g in seg.group_weights:
            if g not in card.groups:
                problems.append((("segments", k, "group_weights", g), f"no group named {g!r}"))
    names = [s.name for s in card.segments]
    for k, name in enumerate(names):
        if name in names[:k]:
            problems.append((("segments", k, "name"), f"segment {name!r} is defined twice"))
    critical = [c.name for c in card.critical]
    for k, cond in enumerate(card.critical):
        if cond.name in critical[:k]:
            problems.append(
                (("critical", k, "name"), f"critical condition {cond.name!r} is defined twice")
            )
        if _is_difference(card, cond.when.metric):
            problems.append(
                (
                    ("critical", k, "when", "metric"),
                    f"{cond.when.metric!r} is a difference of measures' points; "
                    "a critical condition tests a metric",
                )
            )
        else:
            unknown(cond.when.metric, ("critical", k, "when", "metric"))
    arr = card.churn_model.arr_attribute if card.churn_model is not None else None
    if arr is not None and known_fields is not None and arr not in known_fields:
        problems.append(
            (
                ("churn_model", "arr_attribute"),
                f"unknown attribute {arr!r}; the configured sources provide: "
                f"{', '.join(sorted(known_fields))}",
            )
        )
    return problems


def _is_difference(card: Scorecard, metric: str) -> bool:
    d = card.derived.get(metric)
    return d is not None and d.difference is not None


def _weight_problems(card: Scorecard) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for segment in card.segment_names:
        measures, groups = card.weights_for(segment)
        where = "" if segment == DEFAULT_SEGMENT else f" in segment {segment!r}"
        loc: Loc = (
            ("groups",)
            if segment == DEFAULT_SEGMENT
            else ("segments", card.segment_names.index(segment))
        )
        live_groups = [
            g
            for g, w in groups.items()
            if w > 0 and sum(measures[n] for n, m in card.measures.items() if m.group == g) > 0
        ]
        if not live_groups:
            problems.append(
                (
                    loc,
                    f"weights sum to 0{where}: give at least one group and "
                    "one of its measures a weight",
                )
            )
    return problems
