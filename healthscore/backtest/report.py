"""The backtest as one self-contained HTML file a CS lead can open: plots and tables.

Plots are drawn with matplotlib (Agg) and inlined as SVG, styles are inline: the file loads no
script, font, stylesheet or image from anywhere, so it can be mailed or attached to a ticket.
matplotlib is the ``report`` extra; without it the report says so where the plots would be
and keeps every table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from healthscore.backtest.plots import (
    calibration_plot,
    distribution_plot,
    grade_plot,
    measure_plot,
    number_text,
    pyplot,
    roc_plot,
)

NO_PLOTS = (
    "The plots need matplotlib, which is not installed: pip install 'healthscore[report]'. "
    "The tables below hold the same numbers."
)

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#666}.kpis{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:160px}
.kpi b{display:block;font-size:1.5em}.kpi span{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1em}
figure{margin:0}figcaption{color:#555;font-size:.85em}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
.add{color:#1a7f37}.del{color:#cf222e}.note{color:#666;font-size:.9em}
"""


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rate_rows(rows: list[dict[str, Any]], extra: Sequence[str] = ()) -> list[list[Any]]:
    return [
        [
            r["bucket"],
            *(number_text(r.get(k), 1) for k in extra),
            r["rows"],
            r["churned"],
            _pct(r["churn_rate"]),
            number_text(r["lift"], 2),
        ]
        for r in rows
    ]


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>'


def _plots(report: dict[str, Any], fit: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(name, SVG, caption) of each plot; needs matplotlib."""
    s = report["summary"]
    return [
        (
            "ROC curve",
            roc_plot(report["roc"], s["roc_auc"], fit),
            "How many churners the score catches for each share of healthy accounts it flags.",
        ),
        (
            "Churn rate by grade",
            grade_plot(report["grades"], s["churn_rate"]),
            "A working card shows red well above the dashed line and green well below.",
        ),
        (
            "Score distribution over time",
            distribution_plot(report["snapshots"]),
            "Score percentiles per snapshot; bars: accounts that churned within the horizon.",
        ),
        (
            "Per-measure AUC",
            measure_plot(report["measures"]),
            "Each measure on its own; bars near 0.5 carry little signal.",
        ),
        (
            "Calibration",
            calibration_plot(report["calibration"], s["churn_rate"]),
            "Observed churn rate per score bin: it should fall as the score rises.",
        ),
    ]


def render_html(report: dict[str, Any], *, title: str = "Does the score predict churn?") -> str:
    """The whole report from the backtest JSON (``report``, see ``backtest_json``)."""
    s = report["summary"]
    card = report.get("scorecard", {})
    ci = s.get("roc_auc_ci") or [None, None]
    pr_ci = s.get("pr_auc_ci") or [None, None]
    flap = report["flapping"]
    fit = report.get("fit")
    ins = s.get("insufficient") or {}
    kpis = "".join(
        [
            _kpi(
                f"{number_text(s['roc_auc'])}",
                f"ROC AUC, every row counted — insufficient data ranked riskiest (95% CI "
                f"{number_text(ci[0])}–{number_text(ci[1])}); 0.5 is a coin toss, 1.0 a "
                "perfect ranking",
            ),
            _kpi(
                f"{number_text(s.get('roc_auc_scored_only'))}",
                "ROC AUC on the scored rows only (insufficient data left out)",
            ),
            _kpi(
                f"{number_text(s['pr_auc'])}",
                f"PR AUC, every row (CI {number_text(pr_ci[0])}–{number_text(pr_ci[1])}); "
                f"baseline {number_text(s['pr_auc_baseline'])}",
            ),
            _kpi(f"{s['churners']} / {s['accounts']}", "accounts that churned / accounts"),
            _kpi(_pct(s["churn_rate"]), f"churned within {s['horizon_days']} days of a snapshot"),
            _kpi(
                f"{ins.get('rows', '–')} rows / {ins.get('accounts', '–')} accounts",
                f"insufficient data ({_pct(s['insufficient_share'])} of rows): churn "
                f"{_pct(ins.get('churn_rate'))} against {_pct(ins.get('base_churn_rate'))} "
                "for every row",
            ),
            _kpi(_pct(flap.get("change_rate")), "grade changes between consecutive snapshots"),
        ]
    )
    plots = _plots(report, fit) if pyplot() is not None else []
    figures = "".join(
        f'<figure data-plot="{html.escape(name)}">{svg}<figcaption><b>{html.escape(name)}.'
        f"</b> {html.escape(cap)}</figcaption></figure>"
        for name, svg, cap in plots
    )
    plots_section = (
        f'<h2>Plots</h2><div class="plots">{figures}</div>'
        if plots
        else f"<h2>Plots</h2><p class=note>{html.escape(NO_PLOTS)}</p>"
    )
    measures = table(
        ["measure", "weight", "present", "AUC alone", "direction"],
        [
            [
                m["label"],
                number_text(m["weight"], 2),
                _pct(m["present"]),
                number_text(m["auc"]),
                "–"
                if m["lower_points_more_churn"] is None
                else (
                    "fewer points → more churn"
                    if m["lower_points_more_churn"]
                    else "MORE points → more churn (reversed)"
                ),
            ]
            for m in sorted(report["measures"], key=lambda m: -(m["strength"] or 0))
        ],
    )
    snaps = table(
        [
            "date",
            "accounts",
            "churned in horizon",
            "AUC (every row)",
            "AUC (scored only)",
            "insufficient",
            "their churn rate",
            "churn rate",
            "median score",
            "red",
            "yellow",
            "green",
        ],
        [
            [
                x["date"],
                x["accounts"],
                x["churned"],
                number_text(x["roc_auc"]),
                number_text(x.get("roc_auc_scored_only")),
                f"{x.get('insufficient_rows', '–')} ({_pct(x['insufficient_share'])})",
                _pct(x.get("insufficient_churn_rate")),
                _pct(x.get("churn_rate")),
                number_text(x["score_quantiles"]["p50"], 1),
                x["grades"]["red"],
                x["grades"]["yellow"],
                x["grades"]["green"],
            ]
            for x in report["snapshots"]
        ],
    )
    flap_table = table(
        ["", "value"],
        [
            ["consecutive snapshot pairs compared", flap["pairs"]],
            ["grade changes", f"{flap['changes']} ({_pct(flap['change_rate'])})"],
            ["reversals (a change undone at the next snapshot)", flap["reversals"]],
            [
                "accounts that flapped",
                f"{flap['accounts_flapping']} of "
                f"{flap['accounts_compared']} ({_pct(flap['flapping_share'])})",
            ],
        ],
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">Scorecard <b>{html.escape(str(card.get("name", "")))}</b> '
        f"(version {html.escape(str(card.get('version', '')))}) — {s['snapshots']} snapshots "
        f"from {s['first_snapshot']} to {s['last_snapshot']}, horizon {s['horizon_days']} days. "
        f"Each account is scored as of each snapshot date with only the data known then, and "
        f"labelled churned when it churned within the horizon after it; accounts already gone "
        f"by a snapshot are left out of it. The headline AUC counts every row: accounts the "
        f"card could not score (insufficient data) are ranked riskiest, tied among "
        f"themselves; the AUC on the scored rows alone stands beside it.</p>",
        f'<div class="kpis">{kpis}</div>',
        _fit_section(fit) if fit else "",
        plots_section,
        "<h2>Churn by grade</h2>"
        + table(["grade", "rows", "churned", "churn rate", "lift"], rate_rows(report["grades"])),
        "<h2>Churn by score decile</h2><p class=note>Decile 1 holds the lowest scores.</p>"
        + table(
            ["decile", "score from", "score to", "rows", "churned", "churn rate", "lift"],
            rate_rows(report["deciles"], ("score_min", "score_max")),
        ),
        "<h2>Calibration</h2>"
        + table(
            ["score bin", "rows", "churned", "churn rate", "lift"], rate_rows(report["calibration"])
        )
        + _expected_section(report.get("expected_churn") or {}, s["horizon_days"]),
        "<h2>Which measures predict churn here</h2>" + measures,
        "<h2>Grade flapping</h2>" + flap_table,
        "<h2>Snapshots</h2>" + snaps,
    ]
    if s.get("censored_snapshots"):
        sections.append(
            f"<p class=note>Left out (outcomes not known for the whole horizon "
            f"yet): {html.escape(', '.join(s['censored_snapshots']))}</p>"
        )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _expected_table(calibration: dict[str, Any]) -> str:
    return table(
        ["decile", "score from", "score to", "rows", "expected churn", "observed churn", "gap"],
        [
            [
                d["decile"],
                number_text(d["score_min"], 1),
                number_text(d["score_max"], 1),
                d["rows"],
                _pct(d["expected"]),
                _pct(d["observed"]),
                f"{100 * d['gap']:+.1f} pts",
            ]
            for d in calibration.get("deciles", [])
        ],
    )


def _expected_section(calibration: dict[str, Any], horizon_days: int) -> str:
    """Expected (the score as a churn probability) against observed churn per decile."""
    found = calibration.get("map")
    if not found or not calibration.get("deciles"):
        return ""
    return (
        f"<h3>Expected against observed churn per score decile</h3><p class=note>The score "
        f"read as a probability of churn within {horizon_days} days: "
        f"σ({found['intercept']:.3f} {found['slope']:+.4f} × score), a logistic curve fitted "
        "by maximum likelihood; each snapshot's expected churn comes from the curve fitted on "
        "the other snapshots. Decile 1 holds the lowest scores.</p>" + _expected_table(calibration)
    )


def _learned_section(fit: dict[str, Any]) -> str:
    """A learned card's measures explained as points lost, and its calibration."""
    rows = [
        [
            m["label"],
            m["status"] + (" (direction flipped)" if m["flipped"] else ""),
            m["better"] if m["bands"] else "–",
            f"{m['old_max_loss']:g} → {m['max_loss']:g}",
            "; ".join(
                f"{b['band']}: −{b['points_lost']:g} ({_pct(b['churn_rate'])} churn, "
                f"{_pct(b['share'])} of accounts)"
                for b in m["bands"]
            )
            or (m["new"] if m["max_loss"] else "–"),
        ]
        for m in fit["measures"]
        if m["status"] != "unchanged" or m["max_loss"]
    ]
    calibration = fit.get("calibration") or {}
    return (
        f"<p>{fit['candidates']} candidate measures were binned and selected on the "
        f"{fit['train_rows']} rows of the fitting snapshots. A measure's <i>max loss</i> is "
        "its share of the score: what an account in its worst band loses.</p>"
        + table(
            ["measure", "what changed", "better", "max loss now → fitted", "points lost by band"],
            rows,
        )
        + (
            "<h3>The fitted score as a churn probability (calibrated on the judged snapshots)"
            "</h3>" + _expected_table(calibration)
            if calibration.get("deciles")
            else ""
        )
    )


def _fit_section(fit: dict[str, Any]) -> str:
    rows = [
        [
            c["measure"],
            number_text(c["old"], 2),
            number_text(c["new"], 2),
            f"{c['new'] - c['old']:+.2f}",
        ]
        for c in fit["weight_changes"]
    ]
    diff = "".join(
        f'<span class="{"add" if line.startswith("+") else "del"}">{html.escape(line)}</span>'
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
        else html.escape(line)
        for line in fit["diff"].splitlines(keepends=True)
    )
    return (
        "<h2>Fitted scorecard (proposal)</h2>"
        f"<p>{'Measures, bands and weights' if fit.get('learned') else 'Weights'} learned on "
        f"{len(fit['train_snapshots'])} earlier snapshots, judged on the "
        f"{len(fit['test_snapshots'])} later ones it never saw. Held-out ROC AUC, every "
        f"row counted (insufficient data ranked riskiest): current "
        f"<b>{number_text(fit['auc_default'])}</b>, fitted "
        f"<b>{number_text(fit['auc_fitted'])}</b>{_scored_only(fit.get('held_out'))}. "
        f"Written to "
        f"<code>{html.escape(fit['path'])}</code>; the live scorecard is unchanged.</p>"
        + (
            "<p><b>The outcomes do not pay for other weights:</b> no reweighting beat the "
            "current proportions on the last fitting snapshots, so the proposal keeps them.</p>"
            if fit.get("kept_current")
            else ""
        )
        + (
            _learned_section(fit)
            if fit.get("learned")
            else table(["weight", "current", "fitted", "change"], rows)
        )
        + (f"<pre>{diff}</pre>" if diff else "<p class=note>No line of the YAML changes.</p>")
    )


def _scored_only(detail: dict[str, Any] | None) -> str:
    """The fit's AUCs without the insufficient rows, and how many each card had."""
    if not detail:
        return ""
    cur, new = detail["insufficient_default"], detail["insufficient_fitted"]
    return html.escape(
        f" (scored rows only: current {number_text(detail['auc_default_scored_only'])}, "
        f"fitted {number_text(detail['auc_fitted_scored_only'])}; insufficient data: "
        f"{cur['rows']} rows current, {new['rows']} fitted, of {detail['rows']}; their churn "
        f"{_pct(cur['churn_rate'])} and {_pct(new['churn_rate'])} against "
        f"{_pct(cur['base_churn_rate'])})"
    )
