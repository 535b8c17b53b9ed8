"""`healthscore explain` as a readable terminal breakdown."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scoring import Explanation, Scorecard
from scoring.churn_model import describe_risk


def render_explanation(console: Console, name: str, exp: Explanation, card: Scorecard) -> None:
    score = "–" if exp.score is None else f"{exp.score:.0f} ({exp.score:.2f})"
    console.print(
        f"[bold]{name}[/] ({exp.account_id}): score {score}, grade "
        f"[bold]{exp.grade}[/], coverage {exp.coverage:.0%}",
        highlight=False,
    )
    if exp.override:
        o = exp.override
        console.print(
            f"[bold magenta]override[/]: {o['grade']} by {o['set_by']} until "
            f"{str(o['expires_at'])[:16]} ({o['origin']}) — computed grade "
            f"{exp.computed_grade}; reason: {o['reason'] or '–'}",
            highlight=False,
        )
    if exp.churn_horizon_days is not None:
        console.print(
            "churn risk: "
            + describe_risk(exp.churn_probability, exp.churn_horizon_days, exp.arr_at_risk),
            highlight=False,
        )
    if exp.critical:
        console.print(f"[bold red]critical condition[/]: {exp.critical}", highlight=False)
    console.print(f"segment [bold]{exp.segment}[/] — {exp.segment_why}", highlight=False)
    modes = {
        g: "" if grp.aggregate == "mean" else f" ({grp.aggregate})"
        for g, grp in card.groups.items()
    }
    groups = ", ".join(
        f"{card.groups[g].label}{modes[g]} {'–' if v is None else f'{v:.0f}'}"
        for g, v in exp.groups.items()
    )
    console.print(f"groups: {groups}", highlight=False)
    table = Table(title=f"scorecard {card.name} (version {card.version})")
    for col in ("measure", "group", "value", "points", "weight", "points lost", "how it scores"):
        table.add_column(
            col, justify="right" if col in ("points", "weight", "points lost") else "left"
        )
    for m in sorted(exp.measures, key=lambda m: -m.points_lost):
        table.add_row(
            m.label,
            card.groups[m.group].label,
            m.value,
            "–" if m.points is None else f"{m.points:.0f}",
            f"{m.weight_share:.1%}",
            f"−{m.points_lost:.1f}" if m.points_lost else "0",
            m.how,
        )
    console.print(table)
    if exp.reasons:
        console.print("top reasons: " + "; ".join(str(r) for r in exp.reasons), highlight=False)
