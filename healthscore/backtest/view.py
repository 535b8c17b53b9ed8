"""The backtest and fit summaries in the terminal (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

GRADE_STYLE = {"red": "red", "yellow": "yellow", "green": "green", "insufficient_data": "dim"}


def _n(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def render_backtest(console: Console, report: dict[str, Any]) -> None:
    s = report["summary"]
    ci = s["roc_auc_ci"] or [None, None]
    pr = s["pr_auc_ci"] or [None, None]
    head = Table(
        title=f"backtest — {s['snapshots']} snapshots {s['first_snapshot']} → "
        f"{s['last_snapshot']}, horizon {s['horizon_days']}d",
        show_header=False,
    )
    head.add_column("")
    head.add_column("", justify="right")
    ins = s.get("insufficient") or {}
    for label, value in (
        (
            "ROC AUC, every row — insufficient data ranked riskiest (95% CI, accounts resampled)",
            f"{_n(s['roc_auc'])} ({_n(ci[0])}–{_n(ci[1])})",
        ),
        ("ROC AUC, scored rows only", _n(s.get("roc_auc_scored_only"))),
        (
            "PR AUC, every row (95% CI) vs churn rate",
            f"{_n(s['pr_auc'])} ({_n(pr[0])}–{_n(pr[1])}) vs {_n(s['pr_auc_baseline'])}",
        ),
        ("accounts / churned", f"{s['accounts']} / {s['churners']}"),
        ("rows (snapshot × account) / churned in horizon", f"{s['rows']} / {s['churn_rows']}"),
        (
            "insufficient data: rows / accounts ever",
            f"{ins.get('rows', '–')} ({_p(s['insufficient_share'])}) / "
            f"{ins.get('accounts', '–')} ({_p(s['insufficient_accounts_share'])})",
        ),
        (
            "churn rate: insufficient-data rows vs all rows",
            f"{_p(ins.get('churn_rate'))} vs {_p(ins.get('base_churn_rate'))}",
        ),
        ("grade changes between snapshots", f"{_p(report['flapping']['change_rate'])}"),
        (
            "accounts flapping (change undone next snapshot)",
            f"{report['flapping']['accounts_flapping']}",
        ),
        ("rows left out: churned before the snapshot", str(s["excluded_already_churned"])),
    ):
        head.add_row(label, value)
    console.print(head)
    grades = Table(title="churn by grade")
    for col in ("grade", "rows", "churned", "churn rate", "lift"):
        grades.add_column(col, justify="right" if col != "grade" else "left")
    for g in report["grades"]:
        style = GRADE_STYLE.get(g["bucket"], "")
        grades.add_row(
            f"[{style}]{g['bucket']}[/]" if style else g["bucket"],
            str(g["rows"]),
            str(g["churned"]),
            _p(g["churn_rate"]),
            _n(g["lift"], 2),
        )
    console.print(grades)
    deciles = Table(title="churn by score decile (1 = lowest scores)")
    for col in ("decile", "scores", "rows", "churn rate", "lift"):
        deciles.add_column(col, justify="right")
    for d in report["deciles"]:
        deciles.add_row(
            d["bucket"],
            f"{d['score_min']:.0f}–{d['score_max']:.0f}",
            str(d["rows"]),
            _p(d["churn_rate"]),
            _n(d["lift"], 2),
        )
    console.print(deciles)
    measures = Table(title="which measures predict churn here (AUC of each measure alone)")
    for col in ("measure", "weight", "present", "AUC", "direction"):
        measures.add_column(col, justify="left" if col in ("measure", "direction") else "right")
    for m in sorted(report["measures"], key=lambda m: -(m["strength"] or 0)):
        direction = (
            "–"
            if m["lower_points_more_churn"] is None
            else (
                "fewer points → more churn"
                if m["lower_points_more_churn"]
                else "[red]reversed: more points → more churn[/]"
            )
        )
        measures.add_row(m["label"], _n(m["weight"], 2), _p(m["present"]), _n(m["auc"]), direction)
    console.print(measures)
    render_snapshots(console, report["snapshots"])
    expected = report.get("expected_churn") or {}
    if expected.get("deciles"):
        render_calibration(
            console,
            expected,
            "calibration — expected vs observed churn per score decile (1 = lowest scores; "
            "each snapshot's expectation fitted on the others)",
        )


def render_snapshots(console: Console, snapshots: list[dict[str, Any]]) -> None:
    """Per snapshot: the headline AUC, the AUC without the insufficient rows, and those rows."""
    table = Table(title="per snapshot (AUC: every row, insufficient data ranked riskiest)")
    for col in (
        "date",
        "accounts",
        "churned",
        "AUC",
        "AUC scored only",
        "insufficient",
        "their churn",
        "churn",
    ):
        table.add_column(col, justify="left" if col == "date" else "right")
    for x in snapshots:
        table.add_row(
            x["date"],
            str(x["accounts"]),
            str(x["churned"]),
            _n(x["roc_auc"]),
            _n(x.get("roc_auc_scored_only")),
            str(x.get("insufficient_rows", "–")),
            _p(x.get("insufficient_churn_rate")),
            _p(x.get("churn_rate")),
        )
    console.print(table)


def render_calibration(console: Console, calibration: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for col in ("decile", "scores", "rows", "expected", "observed", "gap"):
        table.add_column(col, justify="right")
    for d in calibration["deciles"]:
        gap = d["gap"]
        style = "red" if gap is not None and abs(gap) > 0.02 else "dim"
        table.add_row(
            str(d["decile"]),
            f"{d['score_min']:.0f}–{d['score_max']:.0f}",
            str(d["rows"]),
            _p(d["expected"]),
            _p(d["observed"]),
            f"[{style}]{100 * gap:+.1f} pts[/]" if gap is not None else "–",
        )
    console.print(table)


def render_fit(console: Console, fit: dict[str, Any]) -> None:
    _auc_head(console, fit)
    changes = Table(title="weight changes")
    for col in ("weight", "current", "fitted", "change"):
        changes.add_column(col, justify="left" if col == "weight" else "right")
    for c in fit["weight_changes"]:
        d = c["new"] - c["old"]
        style = "green" if d > 0 else "red" if d < 0 else "dim"
        changes.add_row(c["measure"], f"{c['old']:g}", f"{c['new']:g}", f"[{style}]{d:+.2f}[/]")
    console.print(changes)


def _auc_head(console: Console, fit: dict[str, Any]) -> None:
    detail = fit.get("held_out") or {}
    rows = detail.get("rows", fit.get("rows_compared"))
    churned = detail.get("churned", fit.get("test_churned"))
    head = Table(
        title=f"held-out ROC AUC ({len(fit['test_snapshots'])} later snapshots, "
        f"{rows} rows, {churned} churned in horizon; every row counted, insufficient data "
        "ranked riskiest)"
    )
    head.add_column("", justify="left")
    head.add_column("current scorecard", justify="right")
    head.add_column("fitted scorecard", justify="right")
    head.add_column("change", justify="right")
    delta = (
        fit["auc_fitted"] - fit["auc_default"]
        if fit["auc_fitted"] is not None and fit["auc_default"] is not None
        else None
    )
    head.add_row(
        "AUC, every row",
        _n(fit["auc_default"]),
        _n(fit["auc_fitted"]),
        "–" if delta is None else f"{delta:+.3f}",
    )
    if detail:
        cur, new = detail["insufficient_default"], detail["insufficient_fitted"]
        head.add_row(
            "AUC, scored rows only",
            _n(detail.get("auc_default_scored_only")),
            _n(detail.get("auc_fitted_scored_only")),
            "",
        )
        head.add_row(
            "insufficient rows (their churn vs all)",
            f"{cur['rows']} ({_p(cur['churn_rate'])} vs {_p(cur['base_churn_rate'])})",
            f"{new['rows']} ({_p(new['churn_rate'])} vs {_p(new['base_churn_rate'])})",
            "",
        )
    console.print(head)
    _split_notes(console, fit)


def _split_notes(console: Console, fit: dict[str, Any]) -> None:
    """Which snapshots fitted and which judged; any whose labels overlap the judged ones."""
    console.print(
        f"fitted on {', '.join(fit['train_snapshots'])}; judged on "
        f"{', '.join(fit['test_snapshots'])}",
        highlight=False,
    )
    if fit.get("dropped_snapshots"):
        console.print(
            f"left out of the fit (their horizon reaches the judged period): "
            f"{', '.join(fit['dropped_snapshots'])}",
            highlight=False,
        )
    if fit.get("overlap_snapshots"):
        console.print(
            f"[yellow]note[/]: the churn labels of {', '.join(fit['overlap_snapshots'])} reach "
            "into the judged period (kept: the split was given by date)",
            highlight=False,
        )


def render_learned(console: Console, fit: dict[str, Any]) -> None:
    """A learned card: held-out AUC, each measure explained as points lost, calibration."""
    _auc_head(console, fit)
    table = Table(
        title=f"the fitted card, explained as points lost ({fit['candidates']} candidates, "
        f"fitted on {fit['train_rows']} rows of {len(fit['train_snapshots'])} earlier snapshots)"
    )
    for col in (
        "measure",
        "what changed",
        "better",
        "max loss now → fitted",
        "points lost by band",
    ):
        table.add_column(col, justify="right" if col.startswith("max") else "left")
    for m in fit["measures"]:
        if m["status"] == "unchanged" and not m["max_loss"]:
            continue
        bands = "; ".join(
            f"{b['band']}: −{b['points_lost']:g} ({100 * b['churn_rate']:.1f}% churn)"
            for b in m["bands"]
        )
        status = m["status"] + (" (direction flipped)" if m["flipped"] else "")
        style = {"new": "green", "left out": "dim", "re-learned": "cyan"}.get(m["status"], "")
        table.add_row(
            m["label"],
            f"[{style}]{status}[/]" if style else status,
            m["better"] if m["bands"] and m["better"] else "–",
            f"{m['old_max_loss']:g} → {m['max_loss']:g}",
            bands or (m["new"] if m["max_loss"] else "–"),
        )
    console.print(table)
    calibration = fit.get("calibration") or {}
    if calibration.get("deciles"):
        c = calibration["map"]
        render_calibration(
            console,
            calibration,
            f"churn probability within {c['horizon_days']}d = σ({c['intercept']:.3f} "
            f"{c['slope']:+.4f} × score), calibrated on the later snapshots — expected vs "
            "observed per decile (each snapshot fitted on the others)",
        )
